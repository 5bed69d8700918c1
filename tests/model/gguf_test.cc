// GGUF reader/writer: round trip of every metadata type, and clear errors for each kind of corruption.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "si/model/gguf.h"
#include "si/model/loader.h"
#include "test_models.h"

namespace si {
namespace {

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(Gguf, RoundTripsEveryMetadataType) {
  GgufWriter w;
  w.Set("u8", {GgufType::kUint8, uint64_t{200}});
  w.Set("i8", {GgufType::kInt8, int64_t{-100}});
  w.Set("u16", {GgufType::kUint16, uint64_t{60000}});
  w.Set("i16", {GgufType::kInt16, int64_t{-30000}});
  w.Set("u32", GgufValue::U32(4000000000u));
  w.Set("i32", GgufValue::I32(-2000000000));
  w.Set("u64", GgufValue::U64(uint64_t{1} << 40));
  w.Set("i64", {GgufType::kInt64, int64_t{-(int64_t{1} << 40)}});
  w.Set("f32", GgufValue::F32(1.5f));
  w.Set("f64", {GgufType::kFloat64, 2.25});
  w.Set("bool", GgufValue::Bool(true));
  w.Set("str", GgufValue::Str("h\xC3\xA9llo"));
  w.Set("strs", GgufValue::StrArray({"a", "", "ccc"}));
  w.Set("f32s", GgufValue::F32Array({1.0f, -2.0f}));
  w.Set("i32s", GgufValue::I32Array({3, -4, 5}));
  std::vector<float> data = {1, 2, 3, 4, 5, 6};
  std::vector<uint8_t> bytes(24);
  std::memcpy(bytes.data(), data.data(), 24);
  w.AddTensor("t", DType::kF32, {2, 3}, bytes);
  w.AddTensor("v", DType::kF32, {3}, std::vector<uint8_t>(bytes.begin(), bytes.begin() + 12));
  const std::vector<uint8_t> file = w.Serialize();

  auto f = GgufFile::Parse(file.data(), file.size(), "mem");
  ASSERT_TRUE(f.ok()) << f.status().message();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(*g.GetInt("u8"), 200);
  EXPECT_EQ(*g.GetInt("i8"), -100);
  EXPECT_EQ(*g.GetInt("u16"), 60000);
  EXPECT_EQ(*g.GetInt("i16"), -30000);
  EXPECT_EQ(*g.GetInt("u32"), 4000000000LL);
  EXPECT_EQ(*g.GetInt("i32"), -2000000000);
  EXPECT_EQ(*g.GetInt("u64"), int64_t{1} << 40);
  EXPECT_EQ(*g.GetInt("i64"), -(int64_t{1} << 40));
  EXPECT_EQ(*g.GetFloat("f32"), 1.5);
  EXPECT_EQ(*g.GetFloat("f64"), 2.25);
  EXPECT_EQ(*g.GetBool("bool"), true);
  EXPECT_EQ(*g.GetString("str"), "h\xC3\xA9llo");
  EXPECT_EQ(*g.GetStringArray("strs"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(*g.GetFloatArray("f32s"), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(*g.GetIntArray("i32s"), (std::vector<int32_t>{3, -4, 5}));
  EXPECT_EQ(g.keys().front(), "u8");
  const GgufTensorInfo* t = g.FindTensor("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne[0], 3);
  EXPECT_EQ(t->ne[1], 2);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 32, reinterpret_cast<uintptr_t>(file.data()) % 32);
  EXPECT_EQ(std::memcmp(t->data, data.data(), 24), 0);
  // Type errors name the key.
  auto bad = g.GetString("u8");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'u8'"), std::string::npos);
  EXPECT_EQ(g.GetInt("missing").status().code(), StatusCode::kNotFound);
}

std::string ErrorOf(std::vector<uint8_t> bytes) {
  auto f = GgufFile::Parse(bytes.data(), bytes.size(), "f.gguf");
  if (!f.ok()) return f.status().message();
  auto m = Model::FromGguf(std::move(*f));
  return m.ok() ? "" : m.status().message();
}

class GgufErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TinyModelPath(Arch::kLlama, DType::kF32, "layers=1,dim=32,heads=2,ff=32,vocab=300,ctx=16");
    bytes_ = ReadAll(path_);
    ASSERT_GT(bytes_.size(), 1000u);
    ASSERT_EQ(ErrorOf(bytes_), "");
  }
  std::string path_;
  std::vector<uint8_t> bytes_;
};

TEST_F(GgufErrors, BadMagic) {
  auto b = bytes_;
  b[0] = 'X';
  EXPECT_NE(ErrorOf(b).find("bad magic"), std::string::npos) << ErrorOf(b);
}

TEST_F(GgufErrors, UnsupportedVersions) {
  auto b = bytes_;
  b[4] = 1;
  EXPECT_NE(ErrorOf(b).find("version 1"), std::string::npos) << ErrorOf(b);
  b[4] = 9;
  EXPECT_NE(ErrorOf(b).find("unknown GGUF version 9"), std::string::npos) << ErrorOf(b);
}

TEST_F(GgufErrors, Version2LoadsLikeVersion3) {
  // v2 and v3 share the layout (64-bit counts and lengths); v3 only added big-endian files, which we
  // detect as a bad version. A v2 header must load the same model.
  auto b = bytes_;
  b[4] = 2;
  EXPECT_EQ(ErrorOf(b), "");
  auto f = GgufFile::Parse(b.data(), b.size(), "v2.gguf");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->version(), 2u);
}

TEST_F(GgufErrors, TruncatedDataNamesTheTensor) {
  auto b = bytes_;
  b.resize(b.size() - 100);
  const std::string e = ErrorOf(b);
  EXPECT_NE(e.find("runs past the end of the file"), std::string::npos) << e;
  EXPECT_NE(e.find("tensor '"), std::string::npos) << e;
}

TEST_F(GgufErrors, TruncatedHeader) {
  auto b = bytes_;
  b.resize(200);
  EXPECT_NE(ErrorOf(b).find("truncated"), std::string::npos) << ErrorOf(b);
  EXPECT_NE(ErrorOf({}).find("too short"), std::string::npos);
}

// Rewrites a model through GgufWriter with one change, to test loader errors.
std::vector<uint8_t> Rewrite(const std::vector<uint8_t>& bytes,
                             const std::function<void(const GgufTensorInfo&, GgufWriter&, bool& keep)>& edit,
                             const std::function<void(GgufWriter&)>& meta = nullptr) {
  auto f = GgufFile::Parse(bytes.data(), bytes.size(), "f.gguf");
  EXPECT_TRUE(f.ok());
  GgufWriter w;
  for (const auto& k : (*f)->keys()) w.Set(k, *(*f)->Find(k));
  if (meta) meta(w);
  for (const auto& t : (*f)->tensors()) {
    bool keep = true;
    edit(t, w, keep);
    if (!keep) continue;
    std::vector<int64_t> shape;
    for (int d = t.n_dims - 1; d >= 0; --d) shape.push_back(t.ne[d]);
    w.AddTensor(t.name, t.type, shape, std::vector<uint8_t>(t.data, t.data + t.size));
  }
  return w.Serialize();
}

TEST_F(GgufErrors, MissingTensor) {
  auto b = Rewrite(bytes_, [](const GgufTensorInfo& t, GgufWriter&, bool& keep) { keep = t.name != "blk.0.ffn_up.weight"; });
  EXPECT_NE(ErrorOf(b).find("tensor 'blk.0.ffn_up.weight' is missing"), std::string::npos) << ErrorOf(b);
}

TEST_F(GgufErrors, ShapeContradictsMetadata) {
  auto b = Rewrite(bytes_, [](const GgufTensorInfo&, GgufWriter&, bool&) {},
                   [](GgufWriter& w) { w.Set("llama.feed_forward_length", GgufValue::U32(64)); });
  const std::string e = ErrorOf(b);
  EXPECT_NE(e.find("has shape"), std::string::npos) << e;
  EXPECT_NE(e.find("ffn"), std::string::npos) << e;
}

TEST_F(GgufErrors, UnknownArchitecture) {
  auto b = Rewrite(bytes_, [](const GgufTensorInfo&, GgufWriter&, bool&) {},
                   [](GgufWriter& w) { w.Set("general.architecture", GgufValue::Str("mamba")); });
  EXPECT_NE(ErrorOf(b).find("unknown architecture 'mamba'"), std::string::npos) << ErrorOf(b);
}

TEST_F(GgufErrors, UnsupportedTensorTypeNamesTensorAndType) {
  auto f = GgufFile::Parse(bytes_.data(), bytes_.size(), "f.gguf");
  ASSERT_TRUE(f.ok());
  // Patch the type field of blk.0.attn_q.weight to Q2_K (10, not supported) in place: the type follows the
  // name and dims.
  const std::string name = "blk.0.attn_q.weight";
  auto b = bytes_;
  auto it = std::search(b.begin(), b.end(), name.begin(), name.end());
  ASSERT_NE(it, b.end());
  size_t pos = static_cast<size_t>(it - b.begin()) + name.size();
  uint32_t n_dims;
  std::memcpy(&n_dims, &b[pos], 4);
  pos += 4 + 8 * n_dims;
  const uint32_t q2k = 10;
  std::memcpy(&b[pos], &q2k, 4);
  const std::string e = ErrorOf(b);
  EXPECT_NE(e.find("blk.0.attn_q.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("q2_K"), std::string::npos) << e;
}

}  // namespace
}  // namespace si
