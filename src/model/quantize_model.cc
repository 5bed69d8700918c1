#include "si/model/quantize_model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>

#include "si/base/check.h"
#include "si/kernels/ops.h"
#include "si/model/loader.h"
#include "si/model/tensor_roles.h"

namespace si {
namespace {

struct SchemeInfo {
  QuantScheme scheme;
  const char* name;
  DType base;          // type of most matmul weights
  int llama_ftype;     // llama.cpp's general.file_type enum
};
constexpr SchemeInfo kSchemes[] = {
    {QuantScheme::kQ8_0, "q8_0", DType::kQ8_0, 7},    {QuantScheme::kQ4_0, "q4_0", DType::kQ4_0, 2},
    {QuantScheme::kQ4_K, "q4_k", DType::kQ4_K, 14},   {QuantScheme::kQ5_K, "q5_k", DType::kQ5_K, 16},
    {QuantScheme::kQ6_K, "q6_k", DType::kQ6_K, 18},   {QuantScheme::kQ4_K_M, "q4_k_m", DType::kQ4_K, 15},
    {QuantScheme::kInt8, "int8", DType::kQ8_0, 7},
};
const SchemeInfo& Info(QuantScheme s) {
  for (const auto& i : kSchemes) {
    if (i.scheme == s) return i;
  }
  SI_CHECK(false) << "unknown scheme";
  return kSchemes[0];
}

bool IsKScheme(QuantScheme s) {
  return s == QuantScheme::kQ4_K || s == QuantScheme::kQ5_K || s == QuantScheme::kQ6_K ||
         s == QuantScheme::kQ4_K_M;
}

// llama.cpp's rule for which layers get more bits in the _M mixes.
bool UseMoreBits(int64_t layer, int64_t layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}

// The type a tensor of role `role` in `layer` gets under `scheme` (before the block-size fallback).
DType TargetType(QuantScheme scheme, Role role, int64_t layer, int64_t layers, bool is_output) {
  const DType base = Info(scheme).base;
  if (is_output && IsKScheme(scheme)) return DType::kQ6_K;
  if (scheme == QuantScheme::kQ4_K_M) {
    if ((role == Role::kWv || role == Role::kWdown) && UseMoreBits(layer, layers)) return DType::kQ6_K;
    if (role == Role::kWqkv) return DType::kQ5_K;
  }
  return base;
}

struct Located {
  Role role;
  int64_t layer;
};

}  // namespace

Result<QuantScheme> ParseQuantScheme(const std::string& name) {
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& i : kSchemes) {
    if (lower == i.name) return i.scheme;
  }
  return InvalidArgumentError("unknown quantization type '", name,
                              "' (expected q8_0, q4_0, q4_k, q4_k_m, q5_k, q6_k or int8)");
}

const char* QuantSchemeName(QuantScheme s) { return Info(s).name; }

Status QuantizeModelFile(const std::string& in, const std::string& out, QuantScheme scheme, ThreadPool* pool,
                         QuantizeReport* report) {
  std::error_code ec;
  if (std::filesystem::equivalent(in, out, ec)) {
    return InvalidArgumentError("output '", out, "' is the input file; write to another path");
  }
  auto model_or = Model::Load(in);  // validates the whole file (config, shapes, types) before any work
  if (!model_or.ok()) return model_or.status();
  const Model& model = **model_or;
  const ModelConfig& c = model.config();
  const GgufFile& f = model.gguf();
  *report = QuantizeReport();

  // Tensor name -> role, from the role table.
  std::map<std::string, Located> roles;
  for (const ArchRole& ar : ArchRoles(c.arch)) {
    const RoleInfo& info = GetRoleInfo(ar.role);
    for (int64_t l = 0; l < (info.per_layer ? c.num_layers : 1); ++l) roles[TensorName(ar.role, l)] = {ar.role, l};
  }
  const bool tied = !model.W(Role::kOutput).present() && c.causal;

  GgufWriter w(f.alignment());
  for (const std::string& key : f.keys()) {
    if (key != kInt8PerChannelKey) w.Set(key, *f.Find(key));  // set below only when it holds
  }
  if (scheme == QuantScheme::kInt8) w.Set(kInt8PerChannelKey, GgufValue::Bool(true));
  w.Set("general.file_type", GgufValue::U32(static_cast<uint32_t>(Info(scheme).llama_ftype)));
  w.Set("general.quantization_version", GgufValue::U32(2));

  double err2 = 0, ref2 = 0;
  std::mutex mu;
  auto count_type = [&](DType t) {
    auto it = std::find_if(report->tensors_by_type.begin(), report->tensors_by_type.end(),
                           [&](auto& p) { return p.first == t; });
    if (it == report->tensors_by_type.end()) {
      report->tensors_by_type.emplace_back(t, 1);
    } else {
      ++it->second;
    }
  };
  for (const GgufTensorInfo& t : f.tensors()) {
    ++report->tensors;
    report->bytes_in += static_cast<int64_t>(t.size);
    std::vector<int64_t> shape(t.ne.rbegin() + (4 - t.n_dims), t.ne.rend());  // row-major
    auto it = roles.find(t.name);
    bool quantize = false;
    DType target = t.type;
    if (it != roles.end() && t.n_dims == 2) {
      const RoleInfo& info = GetRoleInfo(it->second.role);
      const bool is_output = it->second.role == Role::kOutput || (tied && it->second.role == Role::kTokenEmbd);
      if (info.op == OpKind::kMatMul || it->second.role == Role::kTokenEmbd) {
        quantize = true;
        target = TargetType(scheme, it->second.role, it->second.layer, c.num_layers, is_output);
      }
    }
    const int64_t cols = t.ne[0], rows = t.num_elements() / std::max<int64_t>(cols, 1);
    if (quantize && cols % DTypeBlockSize(target) != 0) {
      const DType fallback = cols % kQK8_0 == 0 ? DType::kQ8_0 : DType::kF16;
      report->notes.push_back(StrCat(t.name, ": ", cols, " columns is not a multiple of ", DTypeName(target),
                                     "'s block of ", DTypeBlockSize(target), "; stored as ", DTypeName(fallback)));
      target = fallback;
      ++report->fallbacks;
    }
    const bool int8 = scheme == QuantScheme::kInt8 && target == DType::kQ8_0;
    if (!quantize || (target == t.type && !int8)) {
      w.AddTensor(t.name, t.type, shape, std::vector<uint8_t>(t.data, t.data + t.size));
      report->bytes_out += static_cast<int64_t>(t.size);
      count_type(t.type);
      continue;
    }
    if (t.type != DType::kF32 && t.type != DType::kF16 && t.type != DType::kBF16) {
      ++report->requantized;
      if (report->requantized == 1) {
        report->notes.push_back(StrCat("the source is already quantized (", t.name, " is ", DTypeName(t.type),
                                       "): errors add up; quantize from an f32/f16/bf16 file when you can"));
      }
    }
    const int64_t in_row = DTypeRowBytes(t.type, cols), out_row = DTypeRowBytes(target, cols);
    std::vector<uint8_t> data(static_cast<size_t>(rows * out_row));
    ParallelFor(pool, rows, [&](int64_t begin, int64_t end) {
      std::vector<float> src(cols), back(cols);
      double e2 = 0, r2 = 0;
      for (int64_t r = begin; r < end; ++r) {
        DequantizeRow(t.type, t.data + r * in_row, cols, src.data());
        uint8_t* dst = data.data() + r * out_row;
        if (int8) {
          QuantizeRowInt8PerChannel(src.data(), cols, reinterpret_cast<BlockQ8_0*>(dst));
        } else {
          QuantizeRow(target, src.data(), cols, dst);
        }
        DequantizeRow(target, dst, cols, back.data());
        for (int64_t i = 0; i < cols; ++i) {
          e2 += static_cast<double>(src[i] - back[i]) * (src[i] - back[i]);
          r2 += static_cast<double>(src[i]) * src[i];
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      err2 += e2;
      ref2 += r2;
    });
    ++report->quantized;
    report->bytes_out += static_cast<int64_t>(data.size());
    count_type(target);
    w.AddTensor(t.name, target, shape, std::move(data));
  }
  report->rel_rms_error = ref2 > 0 ? std::sqrt(err2 / ref2) : 0.0;
  return w.WriteFile(out).WithContext(out);
}

}  // namespace si
