// Tokenizer tests: llama.cpp's test-tokenizer-0 vectors (.inp/.out) for every vocab in
// ../shared/golden, the llama-tokenize cases of the golden manifest, the BERT prompts, plus unit
// tests of the API.
#include "si/model/tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "golden_util.h"
#include "model/unicode.h"
#include "si/model/gguf.h"

namespace si {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// .inp: strings separated by lines "__ggml_vocab_test__"; the newline before each separator line
// belongs to the separator (test-tokenizer-0 strips it), so an entry "x\n" in the file means the
// string "x".
std::vector<std::string> ReadInp(const std::string& path) {
  const std::string text = ReadFile(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t next = text.find(sep, pos);
    if (next == std::string::npos) break;
    out.push_back(text.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

std::vector<std::vector<int32_t>> ReadOut(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<int32_t>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (ls >> id) ids.push_back(id);
    out.push_back(std::move(ids));
  }
  return out;
}

std::string Ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::unique_ptr<Tokenizer> LoadVocab(const std::string& golden_dir, const std::string& name) {
  auto file = GgufFile::Open(golden_dir + "/tokenizer/ggml-vocab-" + name + ".gguf");
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  if (!file.ok()) return nullptr;
  auto tok = Tokenizer::FromGguf(**file);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  if (!tok.ok()) return nullptr;
  return std::move(tok).value();
}

class TokenizerVectorsTest : public ::testing::TestWithParam<std::string> {};

// llama.cpp's test-tokenizer-0: add_special = false, parse_special = true; exact ids.
TEST_P(TokenizerVectorsTest, MatchesLlamaCpp) {
  SI_REQUIRE_GOLDEN(golden_dir);
  const std::string name = GetParam();
  auto tok = LoadVocab(golden_dir, name);
  ASSERT_NE(tok, nullptr);
  const std::string base = golden_dir + "/tokenizer/ggml-vocab-" + name + ".gguf";
  const auto inputs = ReadInp(base + ".inp");
  const auto expected = ReadOut(base + ".out");
  ASSERT_EQ(inputs.size(), expected.size());
  ASSERT_GT(inputs.size(), 0u);
  int pass = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto got = tok->Encode(inputs[i], /*add_special=*/false, /*parse_special=*/true);
    if (got == expected[i]) {
      ++pass;
    } else {
      ADD_FAILURE() << name << " case " << i << " '" << Escape(inputs[i])
                    << "'\n  want:" << Ids(expected[i]) << "\n  got: " << Ids(got);
    }
  }
  std::printf("[ vectors  ] %-13s %d/%zu\n", name.c_str(), pass, inputs.size());
}

INSTANTIATE_TEST_SUITE_P(Vocabs, TokenizerVectorsTest,
                         ::testing::Values("llama-spm", "gpt-2", "falcon", "bert-bge", "phi-3",
                                           "deepseek-llm", "starcoder", "mpt"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

// Manifest: llama-tokenize --ids (add_special = true, parse_special = true).
TEST(TokenizerGoldenTest, ManifestCases) {
  SI_REQUIRE_GOLDEN(golden_dir);
  const auto manifest = nlohmann::json::parse(ReadFile(golden_dir + "/manifest.json"));
  ASSERT_TRUE(manifest.contains("tokenizer"));
  for (const auto& [vocab, entry] : manifest["tokenizer"].items()) {
    auto tok = LoadVocab(golden_dir, vocab);
    ASSERT_NE(tok, nullptr) << vocab;
    int pass = 0, total = 0;
    for (const auto& c : entry["cases"]) {
      const std::string text = c["text"];
      const std::vector<int32_t> want = c["ids"];
      const auto got = tok->Encode(text, /*add_special=*/true, /*parse_special=*/true);
      ++total;
      if (got == want) {
        ++pass;
      } else {
        ADD_FAILURE() << vocab << " '" << Escape(text) << "'\n  want:" << Ids(want)
                      << "\n  got: " << Ids(got);
      }
    }
    std::printf("[ manifest ] %-13s %d/%d\n", vocab.c_str(), pass, total);
  }
}

TEST(TokenizerGoldenTest, BertPrompts) {
  SI_REQUIRE_GOLDEN(golden_dir);
  const auto manifest = nlohmann::json::parse(ReadFile(golden_dir + "/manifest.json"));
  auto tok = LoadVocab(golden_dir, "bert-bge");
  ASSERT_NE(tok, nullptr);
  int n = 0;
  if (manifest.contains("prompts") && manifest["prompts"].contains("bert-bge")) {
    for (const auto& [key, p] : manifest["prompts"]["bert-bge"].items()) {
      if (!p.is_object() || !p.contains("text") || !p.contains("token_ids")) continue;
      const std::vector<int32_t> want = p["token_ids"];
      EXPECT_EQ(tok->Encode(p["text"].get<std::string>(), true, true), want) << "prompt " << key;
      ++n;
    }
  }
  const std::string ref_path = golden_dir + "/refs/bert-f32.ref.json";
  const std::string ref_text = ReadFile(ref_path);
  if (!ref_text.empty()) {
    const auto ref = nlohmann::json::parse(ref_text);
    if (ref.contains("token_ids") && ref.contains("text")) {
      const std::vector<int32_t> want = ref["token_ids"];
      EXPECT_EQ(tok->Encode(ref["text"].get<std::string>(), true, true), want) << ref_path;
      ++n;
    }
  }
  EXPECT_GT(n, 0);
}

// Pieces: concatenating TokenToPiece over a plain-text encoding gives the text back (byte-level BPE
// and SPM are lossless for this input), and Decode removes SPM's space prefix.
TEST(TokenizerGoldenTest, PiecesRoundTrip) {
  SI_REQUIRE_GOLDEN(golden_dir);
  const std::string text = "Hello world! Grüße, 你好 🙂 x=1+2\n\tend";
  for (const char* name : {"gpt-2", "falcon", "starcoder", "mpt", "deepseek-llm"}) {
    auto tok = LoadVocab(golden_dir, name);
    ASSERT_NE(tok, nullptr);
    const auto ids = tok->Encode(text, false, false);
    std::string joined;
    for (int32_t id : ids) joined += tok->TokenToPiece(id);
    EXPECT_EQ(joined, text) << name;
    StreamDecoder stream(*tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.Push(id);
    streamed += stream.Flush();
    EXPECT_EQ(streamed, text) << name;
  }
  auto spm = LoadVocab(golden_dir, "llama-spm");
  ASSERT_NE(spm, nullptr);
  const auto ids = spm->Encode(text, true, false);
  EXPECT_EQ(ids[0], spm->bos_id());
  EXPECT_EQ(spm->Decode(std::span<const int32_t>(ids).subspan(1)), text);
  EXPECT_EQ(spm->TokenToPiece(spm->bos_id(), /*special=*/false), "");
  EXPECT_EQ(spm->TokenToPiece(spm->bos_id(), /*special=*/true), "<s>");
  EXPECT_TRUE(spm->IsEog(spm->eos_id()));
  EXPECT_EQ(spm->model_type(), "llama");
}

TEST(TokenizerTest, RejectsUnknownModelAndPre) {
  TokenizerVocab v;
  v.model = "t5";
  v.tokens = {"a", "b"};
  auto r = Tokenizer::FromVocab(v);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("t5"), std::string::npos);
  v.model = "gpt2";
  v.pre = "no-such-pre";
  r = Tokenizer::FromVocab(v);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no-such-pre"), std::string::npos);
  v.model = "";
  EXPECT_FALSE(Tokenizer::FromVocab(v).ok());
}

// llama.cpp runs hand-written splitters for the GPT-2 and LLaMA-3 patterns; they must split exactly
// as the regex engine does on the same pattern (wrapping it in a group forces the std::regex path).
TEST(TokenizerTest, CustomSplittersAgreeWithRegex) {
  const std::string llama3 =
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{"
      "N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const std::string gpt2 =
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
  const unicode::RegexSplitter custom3({llama3}), regex3({"(?:" + llama3 + ")"});
  const unicode::RegexSplitter custom2({gpt2}), regex2({"(?:" + gpt2 + "|\\s+)"});
  std::vector<std::string> texts = {
      "Hello WORLD'S it's I'M  x\r\n\r\n  \t y 12345 \u0661\u0662\u0663 \u00bd ...!! 'Ll 'LL he'd",
      "\xF0\x9F\x99\x82\xF0\x9F\x99\x82 h\u00e9llo\u00a0there\u3000a\n   ",
      "   leading and trailing   ",
      "a\xff\xfe b",  // invalid UTF-8 becomes U+FFFD
  };
  const std::string golden = ::si::testing::GoldenDirOrEmpty();
  if (!golden.empty()) {
    for (auto& t : ReadInp(golden + "/tokenizer/ggml-vocab-gpt-2.gguf.inp")) texts.push_back(t);
  }
  for (const std::string& t : texts) {
    EXPECT_EQ(custom3.Split(t), regex3.Split(t)) << Escape(t);
    EXPECT_EQ(custom2.Split(t), regex2.Split(t)) << Escape(t);
  }
  EXPECT_EQ(custom2.Split("Hello world's  12"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " 12"}));
}

// A tiny SPM vocabulary: merges by score, byte fallback, special-token parsing with and without
// parse_special.
TEST(TokenizerTest, TinySpm) {
  TokenizerVocab v;
  v.model = "llama";
  v.tokens = {"<unk>",
              "<s>",
              "</s>",
              "\xE2\x96\x81",
              "a",
              "b",
              "ab",
              "\xE2\x96\x81"
              "ab",
              "<0x63>",
              "<ctl>"};
  v.scores = {0, 0, 0, -1, -2, -2, -1, -0.5f, 0, 0};
  v.token_types = {2, 3, 3, 1, 1, 1, 1, 1, 6, 3};
  auto r = Tokenizer::FromVocab(v);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Tokenizer& t = **r;
  EXPECT_EQ(t.Encode("ab", true, false), (std::vector<int32_t>{1, 7}));
  EXPECT_EQ(t.Encode("abc", false, false), (std::vector<int32_t>{7, 8}));  // 'c' via byte fallback
  // After a special token the space prefix is added again, as llama.cpp does.
  EXPECT_EQ(t.Encode("ab<ctl>ab", false, true), (std::vector<int32_t>{7, 9, 7}));
  // Not parsed: "<ctl>" is plain text (bytes without a token become <unk>).
  EXPECT_EQ(t.Encode("ab<ctl>ab", false, false), (std::vector<int32_t>{7, 0, 8, 0, 0, 0, 6}));
  EXPECT_EQ(t.TokenToPiece(8), "c");
  EXPECT_EQ(t.TokenToPiece(7), " ab");
  // llama_detokenize strips the prefix space only when the text does not start with BOS.
  EXPECT_EQ(t.Decode(std::vector<int32_t>{7, 8}), "abc");
  EXPECT_EQ(t.Decode(std::vector<int32_t>{1, 7, 8}, true), " abc");
}

}  // namespace
}  // namespace si
