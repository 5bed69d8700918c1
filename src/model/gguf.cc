#include "si/model/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "si/base/check.h"

namespace si {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;
// Nesting limit for arrays of arrays: real files use depth 1; a corrupt file must not recurse unboundedly.
constexpr int kMaxArrayDepth = 4;

// Bounds-checked little-endian cursor over the file image.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  template <typename T>
  Status Read(T* out, const char* what) {
    if (remaining() < sizeof(T)) {
      return CorruptError("truncated or corrupt file: ", what, " at offset ", pos_, " needs ", sizeof(T), " bytes, ",
                          remaining(), " left");
    }
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status ReadString(std::string* out, const char* what) {
    uint64_t len;
    SI_RETURN_IF_ERROR(Read(&len, what));
    if (len > remaining()) {
      return CorruptError("truncated or corrupt file: ", what, " at offset ", pos_ - 8, " claims ", len, " bytes, ",
                          remaining(), " left");
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return Status::Ok();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Minimum encoded size of one value of type t (used to reject absurd array counts before allocating).
size_t MinValueBytes(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool: return 1;
    case GgufType::kUint16:
    case GgufType::kInt16: return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32: return 4;
    case GgufType::kString: return 8;
    case GgufType::kArray: return 12;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64: return 8;
  }
  return 1;
}

bool IsValidType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

Status ReadValue(Reader& r, GgufType type, GgufValue* out, int depth, const std::string& key) {
  out->type = type;
  switch (type) {
    case GgufType::kUint8: { uint8_t x; SI_RETURN_IF_ERROR(r.Read(&x, "u8 value")); out->v = uint64_t{x}; break; }
    case GgufType::kInt8: { int8_t x; SI_RETURN_IF_ERROR(r.Read(&x, "i8 value")); out->v = int64_t{x}; break; }
    case GgufType::kUint16: { uint16_t x; SI_RETURN_IF_ERROR(r.Read(&x, "u16 value")); out->v = uint64_t{x}; break; }
    case GgufType::kInt16: { int16_t x; SI_RETURN_IF_ERROR(r.Read(&x, "i16 value")); out->v = int64_t{x}; break; }
    case GgufType::kUint32: { uint32_t x; SI_RETURN_IF_ERROR(r.Read(&x, "u32 value")); out->v = uint64_t{x}; break; }
    case GgufType::kInt32: { int32_t x; SI_RETURN_IF_ERROR(r.Read(&x, "i32 value")); out->v = int64_t{x}; break; }
    case GgufType::kUint64: { uint64_t x; SI_RETURN_IF_ERROR(r.Read(&x, "u64 value")); out->v = x; break; }
    case GgufType::kInt64: { int64_t x; SI_RETURN_IF_ERROR(r.Read(&x, "i64 value")); out->v = x; break; }
    case GgufType::kFloat32: { float x; SI_RETURN_IF_ERROR(r.Read(&x, "f32 value")); out->v = double{x}; break; }
    case GgufType::kFloat64: { double x; SI_RETURN_IF_ERROR(r.Read(&x, "f64 value")); out->v = x; break; }
    case GgufType::kBool: {
      uint8_t x;
      SI_RETURN_IF_ERROR(r.Read(&x, "bool value"));
      if (x > 1) return CorruptError("metadata '", key, "': bool value ", int{x}, " is not 0 or 1");
      out->v = x != 0;
      break;
    }
    case GgufType::kString: {
      std::string s;
      SI_RETURN_IF_ERROR(r.ReadString(&s, "string value"));
      out->v = std::move(s);
      break;
    }
    case GgufType::kArray: {
      if (depth >= kMaxArrayDepth) return CorruptError("metadata '", key, "': arrays nested too deeply");
      uint32_t elem;
      uint64_t count;
      SI_RETURN_IF_ERROR(r.Read(&elem, "array element type"));
      if (!IsValidType(elem)) return CorruptError("metadata '", key, "': unknown array element type ", elem);
      SI_RETURN_IF_ERROR(r.Read(&count, "array length"));
      const GgufType et = static_cast<GgufType>(elem);
      if (count > r.remaining() / MinValueBytes(et)) {
        return CorruptError("metadata '", key, "': array of ", count, " ", GgufTypeName(et),
                            " runs past the end of the file");
      }
      GgufArray arr;
      arr.elem_type = et;
      arr.items.resize(count);
      for (uint64_t i = 0; i < count; ++i) {
        SI_RETURN_IF_ERROR(ReadValue(r, et, &arr.items[i], depth + 1, key));
      }
      out->v = std::move(arr);
      break;
    }
  }
  return Status::Ok();
}

bool IsIntegerType(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kUint16: case GgufType::kInt16:
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kUint64: case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

// Integer value as int64 (u64 above INT64_MAX is an error).
Result<int64_t> ValueAsInt(const GgufValue& v, const std::string& key) {
  if (!IsIntegerType(v.type)) {
    return InvalidArgumentError("metadata '", key, "' is ", GgufTypeName(v.type), ", expected an integer");
  }
  if (const auto* u = std::get_if<uint64_t>(&v.v)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgumentError("metadata '", key, "' = ", *u, " is too large");
    }
    return static_cast<int64_t>(*u);
  }
  return std::get<int64_t>(v.v);
}

Result<double> ValueAsFloat(const GgufValue& v, const std::string& key) {
  if (v.type == GgufType::kFloat32 || v.type == GgufType::kFloat64) return std::get<double>(v.v);
  if (IsIntegerType(v.type)) {
    SI_ASSIGN_OR_RETURN(int64_t i, ValueAsInt(v, key));
    return static_cast<double>(i);
  }
  return InvalidArgumentError("metadata '", key, "' is ", GgufTypeName(v.type), ", expected a number");
}

}  // namespace

std::string_view GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kUint8: return "uint8";
    case GgufType::kInt8: return "int8";
    case GgufType::kUint16: return "uint16";
    case GgufType::kInt16: return "int16";
    case GgufType::kUint32: return "uint32";
    case GgufType::kInt32: return "int32";
    case GgufType::kFloat32: return "float32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kUint64: return "uint64";
    case GgufType::kInt64: return "int64";
    case GgufType::kFloat64: return "float64";
  }
  return "?";
}

GgufValue GgufValue::StrArray(const std::vector<std::string>& xs) {
  GgufArray a;
  a.elem_type = GgufType::kString;
  for (const auto& s : xs) a.items.push_back(Str(s));
  return {GgufType::kArray, std::move(a)};
}
GgufValue GgufValue::F32Array(const std::vector<float>& xs) {
  GgufArray a;
  a.elem_type = GgufType::kFloat32;
  for (float x : xs) a.items.push_back(F32(x));
  return {GgufType::kArray, std::move(a)};
}
GgufValue GgufValue::I32Array(const std::vector<int32_t>& xs) {
  GgufArray a;
  a.elem_type = GgufType::kInt32;
  for (int32_t x : xs) a.items.push_back(I32(x));
  return {GgufType::kArray, std::move(a)};
}

std::string GgufTensorInfo::ShapeString() const {
  std::string s = "[";
  for (int i = 0; i < n_dims; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

Result<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  SI_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(path));
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->data_ = mapped->data();
  f->size_ = mapped->size();
  f->path_ = path;
  f->file_ = std::move(mapped);
  SI_RETURN_IF_ERROR(f->ParseImpl().WithContext(path));
  return f;
}

Result<std::unique_ptr<GgufFile>> GgufFile::Parse(const uint8_t* data, size_t size, std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->data_ = data;
  f->size_ = size;
  f->path_ = std::move(name);
  SI_RETURN_IF_ERROR(f->ParseImpl().WithContext(f->path_));
  return f;
}

Status GgufFile::ParseImpl() {
  Reader r(data_, size_);
  uint32_t magic;
  if (size_ < 4) return CorruptError("not a GGUF file: ", size_, " bytes is too short for the header");
  SI_RETURN_IF_ERROR(r.Read(&magic, "magic"));
  if (magic != kGgufMagic) {
    char m[5] = {};
    std::memcpy(m, &magic, 4);
    for (char& c : m) {
      if (c && (c < 32 || c > 126)) c = '?';
    }
    return CorruptError("not a GGUF file: bad magic '", m, "' (expected 'GGUF')");
  }
  SI_RETURN_IF_ERROR(r.Read(&version_, "version"));
  if (version_ == 1) return UnsupportedError("GGUF version 1 is not supported (only 2 and 3)");
  if (version_ != 2 && version_ != 3) return UnsupportedError("unknown GGUF version ", version_, " (expected 2 or 3)");
  uint64_t n_tensors, n_kv;
  SI_RETURN_IF_ERROR(r.Read(&n_tensors, "tensor count"));
  SI_RETURN_IF_ERROR(r.Read(&n_kv, "metadata count"));
  // Each kv takes >= 12 bytes (empty key + type + 1-byte value), each tensor info >= 24 bytes.
  if (n_kv > r.remaining() / 12) {
    return CorruptError("truncated or corrupt file: metadata count ", n_kv, " needs at least ", n_kv * 12,
                        " bytes, ", r.remaining(), " left");
  }
  if (n_tensors > r.remaining() / 24) {
    return CorruptError("truncated or corrupt file: tensor count ", n_tensors, " needs at least ",
                        n_tensors * 24, " bytes, ", r.remaining(), " left");
  }

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    SI_RETURN_IF_ERROR(r.ReadString(&key, "metadata key"));
    uint32_t type;
    SI_RETURN_IF_ERROR(r.Read(&type, "metadata type"));
    if (!IsValidType(type)) return CorruptError("metadata '", key, "': unknown value type ", type);
    GgufValue value;
    SI_RETURN_IF_ERROR(ReadValue(r, static_cast<GgufType>(type), &value, 0, key));
    if (kv_.count(key)) return CorruptError("duplicate metadata key '", key, "'");
    key_order_.push_back(key);
    kv_.emplace(key, std::move(value));
  }

  if (const GgufValue* a = Find("general.alignment")) {
    SI_ASSIGN_OR_RETURN(int64_t al, ValueAsInt(*a, "general.alignment"));
    if (al <= 0 || (al & (al - 1)) != 0 || al > (1 << 20)) {
      return CorruptError("general.alignment = ", al, " is not a power of two");
    }
    alignment_ = static_cast<uint64_t>(al);
  }

  tensors_.resize(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo& t = tensors_[i];
    SI_RETURN_IF_ERROR(r.ReadString(&t.name, "tensor name"));
    uint32_t n_dims;
    SI_RETURN_IF_ERROR(r.Read(&n_dims, "tensor dims"));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return CorruptError("tensor '", t.name, "': ", n_dims, " dimensions (expected 1 to ", kMaxDims, ")");
    }
    t.n_dims = static_cast<int>(n_dims);
    uint64_t total = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne;
      SI_RETURN_IF_ERROR(r.Read(&ne, "tensor shape"));
      if (ne == 0 || ne > (uint64_t{1} << 40) || total > (uint64_t{1} << 50) / ne) {
        return CorruptError("tensor '", t.name, "': dimension ", d, " = ", ne, " is out of range");
      }
      total *= ne;
      t.ne[d] = static_cast<int64_t>(ne);
    }
    uint32_t type;
    SI_RETURN_IF_ERROR(r.Read(&type, "tensor type"));
    t.type = static_cast<DType>(type);
    SI_RETURN_IF_ERROR(r.Read(&t.offset, "tensor offset"));
    if (tensor_index_.count(t.name)) return CorruptError("duplicate tensor '", t.name, "'");
    tensor_index_[t.name] = i;
  }

  const uint64_t data_start = (r.pos() + alignment_ - 1) / alignment_ * alignment_;
  for (GgufTensorInfo& t : tensors_) {
    if (t.offset % alignment_ != 0) {
      return CorruptError("tensor '", t.name, "': offset ", t.offset, " is not a multiple of the alignment ",
                          alignment_);
    }
    const int64_t bs = DTypeBlockSize(t.type), bb = DTypeBlockBytes(t.type);
    if (IsSupportedDType(t.type)) {
      if (t.ne[0] % bs != 0) {
        return CorruptError("tensor '", t.name, "': row length ", t.ne[0], " is not a multiple of the ",
                            DTypeName(t.type), " block size ", bs);
      }
      t.size = static_cast<uint64_t>(t.num_elements() / bs * bb);
    } else {
      t.size = 0;  // unknown layout: listed, never read
    }
    if (data_start > size_ || t.offset > size_ - data_start || t.size > size_ - data_start - t.offset) {
      return CorruptError("tensor '", t.name, "': data [", t.offset, ", ", t.offset + t.size,
                          ") runs past the end of the file (data section is ",
                          data_start > size_ ? 0 : size_ - data_start, " bytes)");
    }
    t.data = data_ + data_start + t.offset;
  }
  return Status::Ok();
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<std::string> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFoundError("metadata '", key, "' is missing");
  if (v->type != GgufType::kString) {
    return InvalidArgumentError("metadata '", key, "' is ", GgufTypeName(v->type), ", expected string");
  }
  return std::get<std::string>(v->v);
}

Result<int64_t> GgufFile::GetInt(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFoundError("metadata '", key, "' is missing");
  return ValueAsInt(*v, key);
}

Result<double> GgufFile::GetFloat(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFoundError("metadata '", key, "' is missing");
  return ValueAsFloat(*v, key);
}

Result<bool> GgufFile::GetBool(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFoundError("metadata '", key, "' is missing");
  if (v->type != GgufType::kBool) {
    return InvalidArgumentError("metadata '", key, "' is ", GgufTypeName(v->type), ", expected bool");
  }
  return std::get<bool>(v->v);
}

namespace {
Result<const GgufArray*> GetArray(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.Find(key);
  if (!v) return NotFoundError("metadata '", key, "' is missing");
  if (v->type != GgufType::kArray) {
    return InvalidArgumentError("metadata '", key, "' is ", GgufTypeName(v->type), ", expected array");
  }
  return &std::get<GgufArray>(v->v);
}
}  // namespace

Result<std::vector<std::string>> GgufFile::GetStringArray(const std::string& key) const {
  SI_ASSIGN_OR_RETURN(const GgufArray* a, GetArray(*this, key));
  if (a->elem_type != GgufType::kString) {
    return InvalidArgumentError("metadata '", key, "' is an array of ", GgufTypeName(a->elem_type),
                                ", expected strings");
  }
  std::vector<std::string> out;
  out.reserve(a->items.size());
  for (const auto& item : a->items) out.push_back(std::get<std::string>(item.v));
  return out;
}

Result<std::vector<float>> GgufFile::GetFloatArray(const std::string& key) const {
  SI_ASSIGN_OR_RETURN(const GgufArray* a, GetArray(*this, key));
  std::vector<float> out;
  out.reserve(a->items.size());
  for (const auto& item : a->items) {
    SI_ASSIGN_OR_RETURN(double d, ValueAsFloat(item, key));
    out.push_back(static_cast<float>(d));
  }
  return out;
}

Result<std::vector<int32_t>> GgufFile::GetIntArray(const std::string& key) const {
  SI_ASSIGN_OR_RETURN(const GgufArray* a, GetArray(*this, key));
  std::vector<int32_t> out;
  out.reserve(a->items.size());
  for (const auto& item : a->items) {
    SI_ASSIGN_OR_RETURN(int64_t i, ValueAsInt(item, key));
    if (i < std::numeric_limits<int32_t>::min() || i > std::numeric_limits<int32_t>::max()) {
      return InvalidArgumentError("metadata '", key, "': element ", i, " does not fit int32");
    }
    out.push_back(static_cast<int32_t>(i));
  }
  return out;
}

Result<int64_t> GgufFile::GetIntOr(const std::string& key, int64_t def) const {
  return Has(key) ? GetInt(key) : Result<int64_t>(def);
}
Result<double> GgufFile::GetFloatOr(const std::string& key, double def) const {
  return Has(key) ? GetFloat(key) : Result<double>(def);
}
Result<bool> GgufFile::GetBoolOr(const std::string& key, bool def) const {
  return Has(key) ? GetBool(key) : Result<bool>(def);
}
Result<std::string> GgufFile::GetStringOr(const std::string& key, std::string def) const {
  return Has(key) ? GetString(key) : Result<std::string>(std::move(def));
}

// ---- Writer ----

void GgufWriter::Set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::AddTensor(const std::string& name, DType type, const std::vector<int64_t>& shape,
                           std::vector<uint8_t> data) {
  SI_CHECK(!shape.empty() && shape.size() <= 4) << name;
  Tensor t{name, type, std::vector<int64_t>(shape.rbegin(), shape.rend()), std::move(data)};
  int64_t n = 1;
  for (int64_t d : t.ne) n *= d;
  SI_CHECK_EQ(static_cast<int64_t>(t.data.size()), DTypeRowBytes(type, t.ne[0]) * (n / t.ne[0])) << name;
  tensors_.push_back(std::move(t));
}

namespace {
class Buf {
 public:
  template <typename T>
  void Put(T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void PutString(const std::string& s) {
    Put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  void PutValue(const GgufValue& v) {
    switch (v.type) {
      case GgufType::kUint8: Put<uint8_t>(static_cast<uint8_t>(std::get<uint64_t>(v.v))); break;
      case GgufType::kInt8: Put<int8_t>(static_cast<int8_t>(std::get<int64_t>(v.v))); break;
      case GgufType::kUint16: Put<uint16_t>(static_cast<uint16_t>(std::get<uint64_t>(v.v))); break;
      case GgufType::kInt16: Put<int16_t>(static_cast<int16_t>(std::get<int64_t>(v.v))); break;
      case GgufType::kUint32: Put<uint32_t>(static_cast<uint32_t>(std::get<uint64_t>(v.v))); break;
      case GgufType::kInt32: Put<int32_t>(static_cast<int32_t>(std::get<int64_t>(v.v))); break;
      case GgufType::kUint64: Put<uint64_t>(std::get<uint64_t>(v.v)); break;
      case GgufType::kInt64: Put<int64_t>(std::get<int64_t>(v.v)); break;
      case GgufType::kFloat32: Put<float>(static_cast<float>(std::get<double>(v.v))); break;
      case GgufType::kFloat64: Put<double>(std::get<double>(v.v)); break;
      case GgufType::kBool: Put<uint8_t>(std::get<bool>(v.v) ? 1 : 0); break;
      case GgufType::kString: PutString(std::get<std::string>(v.v)); break;
      case GgufType::kArray: {
        const auto& a = std::get<GgufArray>(v.v);
        Put<uint32_t>(static_cast<uint32_t>(a.elem_type));
        Put<uint64_t>(a.items.size());
        for (const auto& item : a.items) PutValue(item);
        break;
      }
    }
  }
  void Pad(uint64_t alignment) {
    while (b.size() % alignment) b.push_back(0);
  }
  std::vector<uint8_t> b;
};
}  // namespace

std::vector<uint8_t> GgufWriter::Serialize() const {
  Buf out;
  out.Put<uint32_t>(kGgufMagic);
  out.Put<uint32_t>(3);
  out.Put<uint64_t>(tensors_.size());
  const bool has_alignment_key =
      alignment_ != 32 && std::none_of(kv_.begin(), kv_.end(), [](auto& kv) { return kv.first == "general.alignment"; });
  out.Put<uint64_t>(kv_.size() + (has_alignment_key ? 1 : 0));
  for (const auto& [k, v] : kv_) {
    out.PutString(k);
    out.Put<uint32_t>(static_cast<uint32_t>(v.type));
    out.PutValue(v);
  }
  if (has_alignment_key) {
    out.PutString("general.alignment");
    out.Put<uint32_t>(static_cast<uint32_t>(GgufType::kUint32));
    out.Put<uint32_t>(static_cast<uint32_t>(alignment_));
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    out.PutString(t.name);
    out.Put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) out.Put<uint64_t>(static_cast<uint64_t>(d));
    out.Put<uint32_t>(static_cast<uint32_t>(t.type));
    out.Put<uint64_t>(offset);
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  out.Pad(alignment_);
  for (const auto& t : tensors_) {
    out.b.insert(out.b.end(), t.data.begin(), t.data.end());
    out.Pad(alignment_);
  }
  return std::move(out.b);
}

Status GgufWriter::WriteFile(const std::string& path) const {
  std::vector<uint8_t> bytes = Serialize();
  return WriteFileAtomic(path, bytes.data(), bytes.size());
}

}  // namespace si
