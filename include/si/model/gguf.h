// GGUF (versions 2 and 3): a memory-mapped reader and a writer.
//
// File layout (little-endian):
//   magic "GGUF", u32 version, u64 tensor_count, u64 kv_count,
//   kv_count x { string key, u32 value_type, value },
//   tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
//   padding to `general.alignment` (default 32), then tensor data; each offset is relative to the data start
//   and a multiple of the alignment. Strings are u64 length + bytes (no terminator).
// The reader checks every length, count and offset against the file size before using it, so a truncated or
// corrupted file gives a Status naming the problem, never a crash or a huge allocation.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "si/base/mmap_file.h"
#include "si/base/status.h"
#include "si/tensor/dtype.h"

namespace si {

enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string_view GgufTypeName(GgufType t);

struct GgufValue;
struct GgufArray {
  GgufType elem_type = GgufType::kUint8;
  std::vector<GgufValue> items;
};

// One metadata value. Integers are widened to 64 bits (the declared type is kept in `type`).
struct GgufValue {
  GgufType type = GgufType::kUint8;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> v;

  static GgufValue U32(uint32_t x) { return {GgufType::kUint32, uint64_t{x}}; }
  static GgufValue I32(int32_t x) { return {GgufType::kInt32, int64_t{x}}; }
  static GgufValue U64(uint64_t x) { return {GgufType::kUint64, x}; }
  static GgufValue F32(float x) { return {GgufType::kFloat32, double{x}}; }
  static GgufValue Bool(bool x) { return {GgufType::kBool, x}; }
  static GgufValue Str(std::string s) { return {GgufType::kString, std::move(s)}; }
  static GgufValue StrArray(const std::vector<std::string>& xs);
  static GgufValue F32Array(const std::vector<float>& xs);
  static GgufValue I32Array(const std::vector<int32_t>& xs);
};

struct GgufTensorInfo {
  std::string name;
  DType type = DType::kF32;
  int n_dims = 0;
  std::array<int64_t, 4> ne = {1, 1, 1, 1};  // ne[0] is the innermost (contiguous) dimension
  uint64_t offset = 0;                       // relative to the data section
  uint64_t size = 0;                         // bytes
  const uint8_t* data = nullptr;             // into the mapping
  int64_t num_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  std::string ShapeString() const;           // "[64, 32000]" in ne order
};

class GgufFile {
 public:
  // Maps and parses `path`. Tensors of types the engine cannot compute with are still listed (info can show
  // them); the model loader rejects them by name.
  static Result<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses an in-memory image (tests, fuzzing). `data` must outlive the GgufFile.
  static Result<std::unique_ptr<GgufFile>> Parse(const uint8_t* data, size_t size, std::string name);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& path() const { return path_; }
  size_t file_size() const { return size_; }
  // True when the bytes are a read-only mapping of the file (Open), false for an in-memory image
  // (Parse): only mapped pages may be dropped (ReleasePages) and read back from the file.
  bool is_mapped() const { return file_ != nullptr; }

  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  // Keys in file order (for printing).
  const std::vector<std::string>& keys() const { return key_order_; }
  bool Has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue* Find(const std::string& key) const;

  // Typed getters: NotFound if absent, InvalidArgument naming the key if the type does not convert.
  Result<std::string> GetString(const std::string& key) const;
  Result<int64_t> GetInt(const std::string& key) const;     // any integer type
  Result<double> GetFloat(const std::string& key) const;    // float32/64 or integer
  Result<bool> GetBool(const std::string& key) const;
  Result<std::vector<std::string>> GetStringArray(const std::string& key) const;
  Result<std::vector<float>> GetFloatArray(const std::string& key) const;
  Result<std::vector<int32_t>> GetIntArray(const std::string& key) const;
  // Convenience: value or default when the key is absent (type errors still propagate).
  Result<int64_t> GetIntOr(const std::string& key, int64_t def) const;
  Result<double> GetFloatOr(const std::string& key, double def) const;
  Result<bool> GetBoolOr(const std::string& key, bool def) const;
  Result<std::string> GetStringOr(const std::string& key, std::string def) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(const std::string& name) const;

 private:
  GgufFile() = default;
  Status ParseImpl();

  std::unique_ptr<MappedFile> file_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> kv_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Builds a GGUF v3 file in memory and writes it atomically. Tensor data is copied in.
class GgufWriter {
 public:
  explicit GgufWriter(uint64_t alignment = 32) : alignment_(alignment) {}
  void Set(const std::string& key, GgufValue value);
  // shape in row-major order [rows, cols] (written as ne = {cols, rows}); 1-D: {n}.
  void AddTensor(const std::string& name, DType type, const std::vector<int64_t>& shape,
                 std::vector<uint8_t> data);
  std::vector<uint8_t> Serialize() const;
  Status WriteFile(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace si
