// scaleinfer tokenize -m FILE --text STR: ids as llama.cpp's llama-tokenize gives them with default settings
// (BOS/EOS/CLS/SEP as the vocabulary asks, special-token text parsed), comma-separated on one line.
#include <cstdio>

#include "args.h"
#include "command.h"
#include "si/base/mmap_file.h"
#include "si/model/gguf.h"
#include "si/model/tokenizer.h"

namespace si::cli {
namespace {

struct Options {
  std::string model, text, file;
  bool no_bos = false, no_parse_special = false, pieces = false;
};

int Run(const Options& o) {
  std::string text = o.text;
  if (!o.file.empty()) {
    auto content = ReadFileToString(o.file);
    if (!content.ok()) return PrintError("tokenize", content.status());
    text = *content;
  }
  auto gguf = GgufFile::Open(o.model);
  if (!gguf.ok()) return PrintError("tokenize", gguf.status());
  auto tok = Tokenizer::FromGguf(**gguf);
  if (!tok.ok()) return PrintError("tokenize", tok.status().WithContext(o.model));
  const std::vector<int32_t> ids = (*tok)->Encode(text, !o.no_bos, !o.no_parse_special);
  if (o.pieces) {
    for (int32_t id : ids) std::printf("%6d -> '%s'\n", id, (*tok)->TokenToPiece(id).c_str());
  } else {
    std::printf("%s\n", JoinIds(ids).c_str());
  }
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(tokenize, "tokenize", "Tokenize text with a model's vocabulary (ids as llama-tokenize)", 20,
                    [](CLI::App& sub) -> CommandRunner {
                      auto o = std::make_shared<Options>();
                      sub.add_option("-m,--model", o->model, "GGUF model or vocabulary file")->required();
                      auto* text = sub.add_option("--text,-p", o->text, "text to tokenize");
                      auto* file = sub.add_option("-f,--file", o->file, "read the text from a file (exact bytes)");
                      text->excludes(file);
                      sub.add_flag("--no-bos", o->no_bos, "do not add BOS/EOS/CLS/SEP");
                      sub.add_flag("--no-parse-special", o->no_parse_special, "treat special-token text as text");
                      sub.add_flag("--pieces", o->pieces, "print one id and its piece per line");
                      return [o, text, file] {
                        if (text->count() == 0 && file->count() == 0) {
                          return PrintError("tokenize", InvalidArgumentError("give --text or --file"));
                        }
                        return Run(*o);
                      };
                    });

}  // namespace si::cli
