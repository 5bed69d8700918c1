// scaleinfer logits -m FILE --tokens 1,2,3 [--all] --out OUT: one batched prefill; float32 LE logits.
#include <cstdio>

#include "args.h"
#include "command.h"
#include "si/base/mmap_file.h"
#include "si/runtime/engine.h"

namespace si::cli {
namespace {

struct Options {
  std::string model, tokens, out;
  bool all = false;
  int threads = 0;
};

int Run(const Options& o) {
  auto ids = ParseIds(o.tokens);
  if (!ids.ok()) return PrintError("logits", ids.status());
  auto model = Model::Load(o.model);
  if (!model.ok()) return PrintError("logits", model.status());
  if ((*model)->config().is_encoder()) {
    return PrintError("logits", InvalidArgumentError(o.model, " is an encoder (", ArchName((*model)->config().arch),
                                                     "): it has no logits; use 'scaleinfer embed'"));
  }
  auto engine = Engine::Create(std::shared_ptr<const Model>(std::move(*model)), {.num_threads = o.threads});
  if (!engine.ok()) return PrintError("logits", engine.status());
  const int seq = (*engine)->NewSequence();
  SeqTokens batch{seq, *ids, o.all};
  std::vector<float> logits;
  Status st = (*engine)->Forward({&batch, 1}, &logits);
  if (!st.ok()) return PrintError("logits", st);
  st = WriteFileAtomic(o.out, logits.data(), logits.size() * sizeof(float));
  if (!st.ok()) return PrintError("logits", st);
  const int64_t V = (*engine)->config().vocab_size;
  std::printf("wrote %s: float32 [%lld, %lld]\n", o.out.c_str(), static_cast<long long>(logits.size() / V),
              static_cast<long long>(V));
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(logits, "logits", "Run one batched prefill and write the logits (float32, row-major)", 30,
                    [](CLI::App& sub) -> CommandRunner {
                      auto o = std::make_shared<Options>();
                      sub.add_option("-m,--model", o->model, "GGUF model file")->required();
                      sub.add_option("--tokens", o->tokens, "comma-separated token ids")->required();
                      sub.add_flag("--all", o->all, "logits of every position [n_tokens, n_vocab], else the last row");
                      sub.add_option("--out", o->out, "output file")->required();
                      sub.add_option("-t,--threads", o->threads, "threads (0: all cores)");
                      return [o] { return Run(*o); };
                    });

}  // namespace si::cli
