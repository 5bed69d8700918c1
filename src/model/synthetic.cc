#include "si/model/synthetic.h"

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "si/base/check.h"
#include "si/kernels/ops.h"
#include "si/model/gguf.h"
#include "si/model/tensor_roles.h"

namespace si {
namespace {

struct Preset {
  const char* name;
  Arch arch;
  int64_t layers, dim, heads, kv_heads, ff, vocab, ctx;
};

// Shapes of public models (random weights): stories110M, TinyLlama 1.1B, Llama-2 7B, GPT-2 124M.
constexpr Preset kPresets[] = {
    {"llama-tiny", Arch::kLlama, 2, 64, 4, 4, 160, 32000, 256},
    {"llama-110m", Arch::kLlama, 12, 768, 12, 12, 2048, 32000, 1024},
    {"llama-1.1b", Arch::kLlama, 22, 2048, 32, 4, 5632, 32000, 2048},
    {"llama-7b", Arch::kLlama, 32, 4096, 32, 32, 11008, 32000, 4096},
    {"gpt2-tiny", Arch::kGpt2, 2, 64, 2, 2, 256, 50257, 256},
    {"gpt2-124m", Arch::kGpt2, 12, 768, 12, 12, 3072, 50257, 1024},
    {"falcon-tiny", Arch::kFalcon, 2, 64, 4, 1, 256, 65024, 256},
    {"falcon-1b", Arch::kFalcon, 24, 2048, 32, 1, 8192, 65024, 2048},
    {"bert-tiny", Arch::kBert, 2, 64, 2, 2, 256, 30522, 512},
};

void ApplyArchDefaults(ModelConfig& c) {
  c.norm_eps = 1e-5f;
  c.rope_base = 10000.0f;
  c.head_dim = c.model_dim / c.num_heads;
  ApplyArchTraits(c);
  // llama files get their own output matrix, falcon ties it (as the released models do).
  c.tied_output = c.arch == Arch::kFalcon;
}

// Gaussian stream per tensor, so that a tensor's values do not depend on which other tensors exist.
class Rng {
 public:
  Rng(uint64_t seed, const std::string& name) : gen_(seed ^ std::hash<std::string>{}(name) * 0x9E3779B97F4A7C15ull) {}
  float Normal() { return dist_(gen_); }
  uint64_t Next() { return gen_(); }

 private:
  std::mt19937_64 gen_;
  std::normal_distribution<float> dist_{0.0f, 1.0f};
};

// Byte-level BPE's byte -> printable code point map (GPT-2).
std::string ByteToUnicode(uint8_t b) {
  uint32_t cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174))) {
    int n = 0;
    for (int x = 0; x < b; ++x) {
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174))) ++n;
    }
    cp = 256 + static_cast<uint32_t>(n);
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

void AddSpmVocab(GgufWriter& w, int64_t vocab, uint64_t seed) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    tokens.push_back(buf);
    scores.push_back(0);
    types.push_back(6);  // byte
  }
  // Pieces: "▁" + letters, then longer random lowercase words, scores decreasing with length.
  std::set<std::string> seen(tokens.begin(), tokens.end());
  Rng rng(seed, "vocab");
  const std::string space = "\xE2\x96\x81";
  auto add = [&](const std::string& t) {
    if (static_cast<int64_t>(tokens.size()) >= vocab || !seen.insert(t).second) return;
    tokens.push_back(t);
    scores.push_back(-static_cast<float>(tokens.size()));
    types.push_back(1);
  };
  add(space);
  for (char ch = 'a'; ch <= 'z'; ++ch) add(std::string(1, ch));
  for (char ch = 'a'; ch <= 'z'; ++ch) add(space + std::string(1, ch));
  while (static_cast<int64_t>(tokens.size()) < vocab) {
    const int len = 2 + static_cast<int>(rng.Next() % 7);
    std::string word = (rng.Next() & 1) ? space : "";
    for (int i = 0; i < len; ++i) word += static_cast<char>('a' + rng.Next() % 26);
    add(word);
  }
  w.Set("tokenizer.ggml.model", GgufValue::Str("llama"));
  w.Set("tokenizer.ggml.tokens", GgufValue::StrArray(tokens));
  w.Set("tokenizer.ggml.scores", GgufValue::F32Array(scores));
  w.Set("tokenizer.ggml.token_type", GgufValue::I32Array(types));
  w.Set("tokenizer.ggml.bos_token_id", GgufValue::U32(1));
  w.Set("tokenizer.ggml.eos_token_id", GgufValue::U32(2));
  w.Set("tokenizer.ggml.unknown_token_id", GgufValue::U32(0));
  w.Set("tokenizer.ggml.add_bos_token", GgufValue::Bool(true));
}

void AddBpeVocab(GgufWriter& w, int64_t vocab, uint64_t seed, const char* pre) {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(ByteToUnicode(static_cast<uint8_t>(b)));
    types.push_back(1);
  }
  // Merges of existing tokens into new ones (each merge's result is a token, as BPE requires).
  std::set<std::string> seen(tokens.begin(), tokens.end());
  std::vector<std::string> merges;
  Rng rng(seed, "vocab");
  const std::string letters = "etaoinshrdlucmfwypvbgkqjxz";
  auto pick = [&]() -> const std::string& {
    // Favour short tokens made of letters and the space marker so merges look like words.
    if (rng.Next() % 3 == 0) return tokens[static_cast<size_t>(rng.Next() % tokens.size())];
    static std::string s;
    s = std::string(1, letters[rng.Next() % letters.size()]);
    return s;
  };
  const std::string gspace = ByteToUnicode(' ');
  while (static_cast<int64_t>(tokens.size()) < vocab - 1) {
    std::string a = (rng.Next() % 4 == 0) ? gspace : pick();
    std::string b = pick();
    if (!seen.count(a) || !seen.count(b) || a.size() + b.size() > 24) continue;
    std::string t = a + b;
    if (!seen.insert(t).second) continue;
    merges.push_back(a + " " + b);
    tokens.push_back(t);
    types.push_back(1);
  }
  tokens.push_back("<|endoftext|>");
  types.push_back(3);
  const auto eos = static_cast<uint32_t>(tokens.size() - 1);
  w.Set("tokenizer.ggml.model", GgufValue::Str("gpt2"));
  w.Set("tokenizer.ggml.pre", GgufValue::Str(pre));
  w.Set("tokenizer.ggml.tokens", GgufValue::StrArray(tokens));
  w.Set("tokenizer.ggml.token_type", GgufValue::I32Array(types));
  w.Set("tokenizer.ggml.merges", GgufValue::StrArray(merges));
  w.Set("tokenizer.ggml.bos_token_id", GgufValue::U32(eos));
  w.Set("tokenizer.ggml.eos_token_id", GgufValue::U32(eos));
}

void AddWordPieceVocab(GgufWriter& w, int64_t vocab, uint64_t seed) {
  std::vector<std::string> tokens = {"[PAD]"};
  for (int i = 1; i < 100; ++i) tokens.push_back("[unused" + std::to_string(i) + "]");
  for (const char* s : {"[UNK]", "[CLS]", "[SEP]", "[MASK]"}) tokens.push_back(s);
  std::set<std::string> seen(tokens.begin(), tokens.end());
  for (char ch = '!'; ch <= '~'; ++ch) {
    if (ch >= 'A' && ch <= 'Z') continue;
    tokens.push_back(std::string(1, ch));
    seen.insert(tokens.back());
  }
  Rng rng(seed, "vocab");
  while (static_cast<int64_t>(tokens.size()) < vocab) {
    const int len = 1 + static_cast<int>(rng.Next() % 8);
    std::string word = (rng.Next() % 3 == 0) ? "##" : "";
    for (int i = 0; i < len; ++i) word += static_cast<char>('a' + rng.Next() % 26);
    if (seen.insert(word).second) tokens.push_back(word);
  }
  std::vector<int32_t> types(tokens.size(), 1);
  for (int i : {0, 100, 101, 102, 103}) types[i] = 3;
  w.Set("tokenizer.ggml.model", GgufValue::Str("bert"));
  w.Set("tokenizer.ggml.tokens", GgufValue::StrArray(tokens));
  w.Set("tokenizer.ggml.token_type", GgufValue::I32Array(types));
  w.Set("tokenizer.ggml.unknown_token_id", GgufValue::U32(100));
  w.Set("tokenizer.ggml.seperator_token_id", GgufValue::U32(102));
  w.Set("tokenizer.ggml.padding_token_id", GgufValue::U32(0));
  w.Set("tokenizer.ggml.cls_token_id", GgufValue::U32(101));
  w.Set("tokenizer.ggml.mask_token_id", GgufValue::U32(103));
}

}  // namespace

std::vector<std::string> SyntheticPresetNames() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.push_back(p.name);
  return names;
}

Result<ModelConfig> SyntheticConfig(Arch arch, const std::string& dims) {
  ModelConfig c;
  c.arch = arch;
  const Preset* base = nullptr;
  for (const Preset& p : kPresets) {
    if (dims == p.name) {
      if (p.arch != arch) {
        return InvalidArgumentError("preset '", dims, "' is a ", ArchName(p.arch), " shape, not ", ArchName(arch));
      }
      base = &p;
    }
  }
  if (base == nullptr) {
    for (const Preset& p : kPresets) {
      if (p.arch == arch) {
        base = &p;  // the arch's tiny preset, overridden below
        break;
      }
    }
  }
  c.num_layers = base->layers;
  c.model_dim = base->dim;
  c.num_heads = base->heads;
  c.num_kv_heads = base->kv_heads;
  c.ffn_dim = base->ff;
  c.vocab_size = base->vocab;
  c.context_len = base->ctx;
  if (dims != base->name) {
    std::stringstream ss(dims);
    std::string item;
    bool any = false;
    while (std::getline(ss, item, ',')) {
      const size_t eq = item.find('=');
      if (eq == std::string::npos) {
        std::string presets;
        for (const Preset& p : kPresets) presets += std::string(presets.empty() ? "" : ", ") + p.name;
        return InvalidArgumentError("--dims '", dims, "': expected a preset (", presets,
                                    ") or key=value pairs such as layers=2,dim=64,heads=4");
      }
      const std::string key = item.substr(0, eq), val = item.substr(eq + 1);
      int64_t v = 0;
      try {
        size_t used = 0;
        v = std::stoll(val, &used);
        if (used != val.size()) throw std::invalid_argument(val);
      } catch (const std::exception&) {
        return InvalidArgumentError("--dims: '", key, "' needs an integer, got '", val, "'");
      }
      if (v <= 0) return InvalidArgumentError("--dims: '", key, "' must be positive, got ", v);
      static const std::map<std::string, int64_t ModelConfig::*> kKeys = {
          {"layers", &ModelConfig::num_layers}, {"dim", &ModelConfig::model_dim},
          {"heads", &ModelConfig::num_heads},   {"kv_heads", &ModelConfig::num_kv_heads},
          {"ff", &ModelConfig::ffn_dim},        {"vocab", &ModelConfig::vocab_size},
          {"ctx", &ModelConfig::context_len}};
      auto it = kKeys.find(key);
      if (it == kKeys.end()) {
        return InvalidArgumentError("--dims: unknown key '", key, "' (layers, dim, heads, kv_heads, ff, vocab, ctx)");
      }
      c.*(it->second) = v;
      any = true;
    }
    if (!any) return InvalidArgumentError("--dims is empty");
    // Without kv_heads, llama gets multi-head attention (falcon keeps its multiquery default).
    if (arch == Arch::kLlama && dims.find("kv_heads") == std::string::npos) c.num_kv_heads = c.num_heads;
    if (arch != Arch::kLlama && arch != Arch::kFalcon && c.num_kv_heads != c.num_heads) {
      if (dims.find("kv_heads") != std::string::npos) {
        return InvalidArgumentError("--dims: ", ArchName(arch), " has no grouped-query attention (kv_heads)");
      }
      c.num_kv_heads = c.num_heads;
    }
    if (arch == Arch::kGpt2 || arch == Arch::kBert) c.num_kv_heads = c.num_heads;
  }
  if (c.model_dim % c.num_heads != 0) {
    return InvalidArgumentError("--dims: dim ", c.model_dim, " is not a multiple of heads ", c.num_heads);
  }
  if (c.arch == Arch::kBert && c.vocab_size < 300) return InvalidArgumentError("--dims: bert needs vocab >= 300");
  if (c.vocab_size < 300) return InvalidArgumentError("--dims: vocab must be >= 300 (bytes + specials)");
  ApplyArchDefaults(c);
  c.name = StrCat("synthetic-", ArchName(arch));
  SI_RETURN_IF_ERROR(c.Validate().WithContext("--dims"));
  return c;
}

Status WriteSyntheticModel(const SyntheticSpec& spec, const std::string& path) {
  const ModelConfig& c = spec.config;
  SI_RETURN_IF_ERROR(c.Validate());
  if (!IsSupportedDType(spec.dtype)) return InvalidArgumentError("unsupported dtype ", DTypeName(spec.dtype));
  const std::string a(ArchName(c.arch));
  GgufWriter w;
  w.Set("general.architecture", GgufValue::Str(a));
  w.Set("general.name", GgufValue::Str(c.name));
  w.Set("general.description", GgufValue::Str(StrCat("random weights from scaleinfer make-model, seed ", spec.seed)));
  // llama.cpp's LLAMA_FTYPE: 0 all f32, 1 mostly f16, 2 q4_0, 7 q8_0, 32 bf16.
  const uint32_t ftype = spec.dtype == DType::kF16 ? 1 : spec.dtype == DType::kQ4_0 ? 2
                       : spec.dtype == DType::kQ8_0 ? 7 : spec.dtype == DType::kBF16 ? 32 : 0;
  w.Set("general.file_type", GgufValue::U32(ftype));
  w.Set(a + ".context_length", GgufValue::U32(static_cast<uint32_t>(c.context_len)));
  w.Set(a + ".embedding_length", GgufValue::U32(static_cast<uint32_t>(c.model_dim)));
  w.Set(a + ".block_count", GgufValue::U32(static_cast<uint32_t>(c.num_layers)));
  w.Set(a + ".feed_forward_length", GgufValue::U32(static_cast<uint32_t>(c.ffn_dim)));
  w.Set(a + ".attention.head_count", GgufValue::U32(static_cast<uint32_t>(c.num_heads)));
  if (c.arch == Arch::kLlama || c.arch == Arch::kFalcon) {
    w.Set(a + ".attention.head_count_kv", GgufValue::U32(static_cast<uint32_t>(c.num_kv_heads)));
    w.Set(a + ".rope.freq_base", GgufValue::F32(c.rope_base));
  }
  if (c.arch == Arch::kLlama) {
    w.Set(a + ".attention.layer_norm_rms_epsilon", GgufValue::F32(c.norm_eps));
    w.Set(a + ".rope.dimension_count", GgufValue::U32(static_cast<uint32_t>(c.rope_dims)));
  } else {
    w.Set(a + ".attention.layer_norm_epsilon", GgufValue::F32(c.norm_eps));
  }
  if (c.arch == Arch::kBert) {
    w.Set(a + ".attention.causal", GgufValue::Bool(false));
    w.Set(a + ".pooling_type", GgufValue::U32(1));
  }
  switch (c.arch) {
    case Arch::kLlama: AddSpmVocab(w, c.vocab_size, spec.seed); break;
    case Arch::kGpt2: AddBpeVocab(w, c.vocab_size, spec.seed, "gpt-2"); break;
    case Arch::kFalcon: AddBpeVocab(w, c.vocab_size, spec.seed, "falcon"); break;
    case Arch::kBert: AddWordPieceVocab(w, c.vocab_size, spec.seed); break;
  }

  // Weights, with the scales of the golden models (peaked logits, so greedy text varies): embedding rows
  // N(0, 1.6/sqrt(E)) * exp(0.6 z_row), matrices N(0, 2.5/sqrt(fan_in)) (Q/K x0.6, outputs x1.5), norm gains
  // 1 + N(0, 0.1), biases N(0, 0.2).
  auto add_tensor = [&](Role role, int64_t layer) -> Status {
    const RoleInfo& info = GetRoleInfo(role);
    if (role == Role::kOutput && c.tied_output) return Status::Ok();
    const std::string name = TensorName(role, layer);
    const int64_t rows = info.rows == Axis::kNone ? 1 : AxisSize(c, info.rows);
    const int64_t cols = AxisSize(c, info.cols);
    Rng rng(spec.seed, name);
    std::vector<float> row(cols);
    const bool matrix = info.rows != Axis::kNone;
    const bool table = info.op == OpKind::kEmbedding;
    DType t = DType::kF32;
    if (matrix && !(role == Role::kPosEmbd || role == Role::kTokenTypes)) t = spec.dtype;
    if (t != DType::kF32 && cols % DTypeBlockSize(t) != 0) {
      return InvalidArgumentError("tensor ", name, ": ", cols, " columns is not a multiple of the ",
                                  DTypeName(t), " block size ", DTypeBlockSize(t));
    }
    std::vector<uint8_t> data(static_cast<size_t>(DTypeRowBytes(t, cols) * rows));
    float gain = 2.5f / std::sqrt(static_cast<float>(cols));
    if (role == Role::kWq || role == Role::kWk) gain *= 0.6f;
    if (role == Role::kWo || role == Role::kWdown) gain *= 1.5f;
    for (int64_t r = 0; r < rows; ++r) {
      float row_scale = gain;
      if (table) {
        row_scale = 1.6f / std::sqrt(static_cast<float>(c.model_dim));
        if (role == Role::kTokenEmbd || role == Role::kOutput) row_scale *= std::exp(0.6f * rng.Normal());
      } else if (role == Role::kOutput) {
        row_scale = 1.6f / std::sqrt(static_cast<float>(c.model_dim)) * std::exp(0.6f * rng.Normal());
      }
      for (int64_t i = 0; i < cols; ++i) {
        const float z = rng.Normal();
        if (info.op == OpKind::kNormGain) {
          row[i] = 1.0f + 0.1f * z;
        } else if (info.op == OpKind::kNormBias || info.op == OpKind::kBias) {
          row[i] = 0.2f * z;
        } else {
          row[i] = row_scale * z;
        }
      }
      QuantizeRow(t, row.data(), cols, data.data() + r * DTypeRowBytes(t, cols));
    }
    std::vector<int64_t> shape = matrix ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{cols};
    w.AddTensor(name, t, shape, std::move(data));
    return Status::Ok();
  };
  for (const ArchRole& ar : ArchRoles(c.arch)) {
    if (ar.need == Need::kOptional && !(ar.role == Role::kOutput && !c.tied_output)) continue;
    const RoleInfo& info = GetRoleInfo(ar.role);
    for (int64_t l = 0; l < (info.per_layer ? c.num_layers : 1); ++l) SI_RETURN_IF_ERROR(add_tensor(ar.role, l));
  }
  return w.WriteFile(path);
}

}  // namespace si
