// Robustness of the whole load path (GGUF parse, model binding, tokenizer, one forward pass) against
// truncation at every offset and random byte flips. Run under the asan preset by scripts/test (label fuzz):
// the property is "a clean error or a working model, never a crash, a hang or a sanitizer report".
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "si/model/gguf.h"
#include "si/model/loader.h"
#include "si/model/tokenizer.h"
#include "si/runtime/engine.h"
#include "test_models.h"

namespace si {
namespace {

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Returns true if the bytes loaded as a model; runs it a little when they do.
bool LoadAndRun(const std::vector<uint8_t>& bytes) {
  auto f = GgufFile::Parse(bytes.data(), bytes.size(), "fuzz.gguf");
  if (!f.ok()) {
    EXPECT_FALSE(f.status().message().empty());
    return false;
  }
  auto tok = Tokenizer::FromGguf(**f);
  auto m = Model::FromGguf(std::move(*f));
  if (!m.ok()) {
    EXPECT_FALSE(m.status().message().empty());
    return false;
  }
  if (tok.ok()) (void)(*tok)->Encode("Hello world, <s> 123", true, true);
  auto e = Engine::Create(std::shared_ptr<const Model>(std::move(*m)), {.num_threads = 1});
  if (!e.ok()) return false;
  const int seq = (*e)->NewSequence();
  std::vector<int32_t> ids = {1, 5, 7};
  std::vector<float> logits;
  SeqTokens st{seq, ids, false};
  (void)(*e)->Forward({&st, 1}, &logits);
  return true;
}

class GgufFuzz : public ::testing::TestWithParam<Arch> {};

TEST_P(GgufFuzz, TruncationAtEveryOffsetFailsCleanly) {
  const std::string path = testing::TinyModelPath(GetParam(), DType::kQ4_0, "layers=1,dim=32,heads=2,ff=32,vocab=300,ctx=16");
  const std::vector<uint8_t> bytes = ReadAll(path);
  ASSERT_TRUE(LoadAndRun(bytes));
  // The end of the last tensor's data: only the alignment padding after it may be cut.
  size_t data_end = 0;
  {
    auto f = GgufFile::Parse(bytes.data(), bytes.size(), "full.gguf");
    ASSERT_TRUE(f.ok());
    for (const auto& t : (*f)->tensors()) {
      data_end = std::max(data_end, static_cast<size_t>(t.data - bytes.data()) + t.size);
    }
  }
  ASSERT_LE(bytes.size() - data_end, 32u);
  for (size_t n = 0; n < data_end; ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    auto f = GgufFile::Parse(cut.data(), cut.size(), "cut.gguf");
    // Every such prefix loses at least one byte of tensor data, so it must fail.
    ASSERT_FALSE(f.ok()) << "prefix of " << n << " bytes parsed";
  }
}

TEST_P(GgufFuzz, RandomByteFlipsNeverCrash) {
  const std::string path = testing::TinyModelPath(GetParam(), DType::kQ4_0, "layers=1,dim=32,heads=2,ff=32,vocab=300,ctx=16");
  const std::vector<uint8_t> bytes = ReadAll(path);
  std::mt19937_64 rng(1234);
  int loaded = 0;
  for (int iter = 0; iter < 600; ++iter) {
    std::vector<uint8_t> b = bytes;
    // Mostly in the header and metadata (where the structure is), sometimes anywhere.
    const size_t span = iter % 4 == 0 ? b.size() : std::min<size_t>(b.size(), 8192);
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % span] ^= static_cast<uint8_t>(1u << (rng() % 8));
    loaded += LoadAndRun(b);
  }
  std::printf("[fuzz] %s: %d of 600 corrupted files still loaded and ran\n", std::string(ArchName(GetParam())).c_str(),
              loaded);
}

INSTANTIATE_TEST_SUITE_P(Archs, GgufFuzz, ::testing::Values(Arch::kLlama, Arch::kGpt2, Arch::kFalcon, Arch::kBert),
                         [](const auto& info) { return std::string(ArchName(info.param)); });

}  // namespace
}  // namespace si
