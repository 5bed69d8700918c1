// End-to-end runs of the scaleinfer binary: every command on a synthetic model, and bad input giving one
// clear error line with a non-zero exit (never a crash).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "golden_util.h"
#include "si/perf/roofline.h"

namespace {

struct Out {
  int code;
  std::string out, err;
};

// env: "NAME=value " assignments put before the command (empty: none).
Out RunCli(const std::string& args, const std::string& env = "") {
  const std::string dir = ::testing::TempDir();
  const std::string err_file = dir + "/cli_stderr.txt";
  const std::string cmd = env + std::string(SI_BINARY) + " " + args + " 2>" + err_file;
  FILE* p = popen(cmd.c_str(), "r");
  Out o;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) o.out.append(buf.data(), n);
  const int status = pclose(p);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream in(err_file);
  o.err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return o;
}

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = ::testing::TempDir() + "/si_cli";
    std::filesystem::create_directories(dir_);
    model_ = dir_ + "/llama.gguf";
    Out o = RunCli("make-model --arch llama --dims layers=2,dim=64,heads=4,kv_heads=2,ff=96,vocab=500,ctx=64 "
                "--dtype q8_0 --seed 3 --out " + model_);
    ASSERT_EQ(o.code, 0) << o.err;
  }
  static std::string dir_, model_;
};
std::string Cli::dir_, Cli::model_;

// An error is exactly one line on stderr starting with "scaleinfer <command>:" and a non-zero exit.
void ExpectCleanError(const Out& o, const std::string& needle) {
  EXPECT_NE(o.code, 0);
  EXPECT_LT(o.code, 128) << "crashed: " << o.err;
  EXPECT_NE(o.err.find(needle), std::string::npos) << o.err;
  EXPECT_LE(std::count(o.err.begin(), o.err.end(), '\n'), 2) << o.err;
}

TEST_F(Cli, InfoTokenizeRunLogits) {
  Out info = RunCli("info -m " + model_);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("architecture   llama"), std::string::npos);
  EXPECT_NE(info.out.find("2 kv (grouped-query)"), std::string::npos) << info.out;

  Out tok = RunCli("tokenize -m " + model_ + " --text 'abc def'");
  ASSERT_EQ(tok.code, 0) << tok.err;
  EXPECT_EQ(tok.out.rfind("1,", 0), 0u) << tok.out;  // BOS first

  Out a = RunCli("run -m " + model_ + " --tokens 1,5,9 -n 8 --ids -q --ignore-eos");
  Out b = RunCli("run -m " + model_ + " --tokens 1,5,9 -n 8 --ids -q --ignore-eos -t 1");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out) << "greedy output depends on thread count";
  EXPECT_EQ(std::count(a.out.begin(), a.out.end(), ','), 7) << a.out;
  Out s1 = RunCli("run -m " + model_ + " --tokens 1,5,9 -n 8 --ids -q --ignore-eos --temp 0.9 --top-k 40 --top-p 0.95 --min-p 0.05 --seed 11");
  Out s2 = RunCli("run -m " + model_ + " --tokens 1,5,9 -n 8 --ids -q --ignore-eos --temp 0.9 --top-k 40 --top-p 0.95 --min-p 0.05 --seed 11");
  EXPECT_EQ(s1.out, s2.out);
  Out text = RunCli("run -m " + model_ + " -p 'hello world' -n 4 --ignore-eos");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.err.find("tokens/s"), std::string::npos);

  const std::string out = dir_ + "/logits.f32";
  Out l = RunCli("logits -m " + model_ + " --tokens 1,5,9 --all --out " + out);
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_EQ(std::filesystem::file_size(out), 3u * 500u * 4u);
  l = RunCli("logits -m " + model_ + " --tokens 1,5,9 --out " + out);
  EXPECT_EQ(std::filesystem::file_size(out), 500u * 4u);
}

TEST_F(Cli, BadInputGivesOneClearError) {
  ExpectCleanError(RunCli("info -m /nonexistent.gguf"), "cannot open /nonexistent.gguf");
  const std::string junk = dir_ + "/junk.gguf";
  std::ofstream(junk) << "this is not a model";
  ExpectCleanError(RunCli("info -m " + junk), "bad magic");
  // Truncated copy of a real model.
  const std::string cut = dir_ + "/cut.gguf";
  std::filesystem::copy_file(model_, cut, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(cut, std::filesystem::file_size(model_) / 2);
  ExpectCleanError(RunCli("run -m " + cut + " --tokens 1 -n 1"), "runs past the end of the file");
  ExpectCleanError(RunCli("run -m " + model_ + " --tokens 1,2,x -n 1"), "'x' is not a token id");
  ExpectCleanError(RunCli("run -m " + model_ + " --tokens 1,99999 -n 1"), "out of range");
  ExpectCleanError(RunCli("run -m " + model_ + " --tokens 1,2 -n 100"), "exceeds the context length of 64");
  ExpectCleanError(RunCli("run -m " + model_ + " --tokens 1 --top-p 2"), "--top-p");
  ExpectCleanError(RunCli("run -m " + model_), "give -p TEXT or --tokens IDS");
  ExpectCleanError(RunCli("make-model --arch mamba --out " + dir_ + "/x.gguf"), "unknown architecture 'mamba'");
  ExpectCleanError(RunCli("make-model --dims layers=2,dim=65,heads=4 --out " + dir_ + "/x.gguf"), "not a multiple");
  ExpectCleanError(RunCli("make-model --dtype q3_k --out " + dir_ + "/x.gguf"), "unknown dtype");
  ExpectCleanError(RunCli("make-model --dtype q5_k --out " + dir_ + "/x.gguf"), "not a multiple of the q5_K block");
  ExpectCleanError(RunCli("quantize " + dir_ + "/missing.gguf " + dir_ + "/y.gguf --type q4_k"), "missing.gguf");
  ExpectCleanError(RunCli("quantize " + dir_ + "/missing.gguf " + dir_ + "/y.gguf --type q9"),
                   "unknown quantization type 'q9'");
  Out flag = RunCli("run --no-such-flag");
  EXPECT_NE(flag.code, 0);
  EXPECT_LT(flag.code, 128);
  Out none = RunCli("");
  EXPECT_NE(none.code, 0);
  EXPECT_LT(none.code, 128);
  // The existing output file survives a failed write: make-model validates before writing.
  std::ofstream(dir_ + "/keep.gguf") << "precious";
  RunCli("make-model --dims layers=2,dim=65,heads=4 --out " + dir_ + "/keep.gguf");
  std::ifstream keep(dir_ + "/keep.gguf");
  std::string kept((std::istreambuf_iterator<char>(keep)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, "precious");
}

// A roofline cache written by older probes (version 2: read bandwidth from four streams only) is
// measured again,
// not reused; the new cache says which probes wrote it, and is then reused.
TEST(CliRoofline, StaleCacheIsMeasuredAgain) {
  const std::string home = ::testing::TempDir() + "/si_roofline_cache";
  std::filesystem::create_directories(home + "/scaleinfer");
  const std::string path = home + "/scaleinfer/roofline.json";
  {
    std::ofstream f(path);
    f << R"({"version": 2, "cpu": "old", "measured_at": "2026-01-01T00:00:00Z",
             "threads": [{"threads": 1, "mem_bw": 1e10, "peak_flops": {"f32": 1e11, "int8_avx2": 1}}]})";
  }
  const std::string env = "XDG_CACHE_HOME=" + home + " ";
  Out o = RunCli("roofline --threads 1 --json", env);
  ASSERT_EQ(o.code, 0) << o.err;
  auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["version"].get<int>(), si::kRooflineProbeVersion);
  EXPECT_NE(j["measured_at"].get<std::string>(), "2026-01-01T00:00:00Z");
  EXPECT_NE(j["threads"][0]["peak_flops"]["f32"].get<double>(), 1e11);
  Out again = RunCli("roofline --threads 1", env);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("cached"), std::string::npos) << again.out;
}

TEST(CliGolden, TokenizeMatchesLlamaTokenizeAndEmbedPrints) {
  SI_REQUIRE_GOLDEN(dir);
  // The CLI path of the manifest's llama-tokenize cases (text passed through a file, exact bytes).
  nlohmann::json m = nlohmann::json::parse(std::ifstream(dir + "/manifest.json"));
  const std::map<std::string, std::string> model_of = {{"llama-spm", "llama-mha-f32"}, {"gpt-2", "gpt2-f32"},
                                                       {"falcon", "falcon-mqa-f32"}, {"bert-bge", "bert-f32"}};
  int checked = 0;
  for (const auto& [vocab, model] : model_of) {
    for (const auto& c : m["tokenizer"][vocab]["cases"]) {
      const std::string text_file = ::testing::TempDir() + "/tok_case.txt";
      std::ofstream(text_file, std::ios::binary) << c["text"].get<std::string>();
      Out tok = RunCli("tokenize -m " + dir + "/models/" + model + ".gguf -f " + text_file);
      ASSERT_EQ(tok.code, 0) << tok.err;
      std::string want;
      for (int id : c["ids"]) {
        if (!want.empty()) want += ',';
        want += std::to_string(id);
      }
      EXPECT_EQ(tok.out, want + "\n") << vocab << ": " << c["text"];
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
  Out emb = RunCli("embed -m " + dir + "/models/bert-f32.gguf --text 'hello world'");
  ASSERT_EQ(emb.code, 0) << emb.err;
  EXPECT_EQ(emb.out.rfind("embedding 0: ", 0), 0u) << emb.out;
  ExpectCleanError(RunCli("logits -m " + dir + "/models/bert-f32.gguf --tokens 1 --out /dev/null"), "encoder");
}

}  // namespace
