// scaleinfer info -m FILE: architecture, dimensions, parameter count, bytes per tensor type, vocabulary.
#include <cstdio>

#include "command.h"
#include "si/model/loader.h"

namespace si::cli {
namespace {

struct InfoOptions {
  std::string model;
  bool tensors = false;
  bool metadata = false;
};

std::string ValueString(const GgufValue& v) {
  if (const auto* s = std::get_if<std::string>(&v.v)) return s->size() > 60 ? s->substr(0, 57) + "..." : *s;
  if (const auto* a = std::get_if<GgufArray>(&v.v)) {
    return StrCat("[", a->items.size(), " x ", GgufTypeName(a->elem_type), "]");
  }
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return std::to_string(*u);
  if (const auto* i = std::get_if<int64_t>(&v.v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v.v)) return StrCat(*d);
  return std::get<bool>(v.v) ? "true" : "false";
}

int RunInfo(const InfoOptions& o) {
  auto model = Model::Load(o.model);
  if (!model.ok()) return PrintError("info", model.status());
  const Model& m = **model;
  const ModelConfig& c = m.config();
  const GgufFile& f = m.gguf();
  std::printf("file           %s (GGUF v%u, %zu bytes, %zu tensors, %zu metadata keys)\n", o.model.c_str(),
              f.version(), f.file_size(), f.tensors().size(), f.keys().size());
  std::printf("architecture   %s%s\n", std::string(ArchName(c.arch)).c_str(),
              c.name.empty() ? "" : (" (" + c.name + ")").c_str());
  std::printf("layers         %lld\n", static_cast<long long>(c.num_layers));
  std::printf("model_dim      %lld\n", static_cast<long long>(c.model_dim));
  std::printf("ffn_dim        %lld\n", static_cast<long long>(c.ffn_dim));
  const char* attn = c.num_kv_heads == c.num_heads ? "multi-head"
                     : c.num_kv_heads == 1         ? "multi-query"
                                                   : "grouped-query";
  std::printf("heads          %lld q / %lld kv (%s), head_dim %lld\n", static_cast<long long>(c.num_heads),
              static_cast<long long>(c.num_kv_heads), attn, static_cast<long long>(c.head_dim));
  std::printf("context        %lld\n", static_cast<long long>(c.context_len));
  std::printf("vocab_size     %lld\n", static_cast<long long>(c.vocab_size));
  std::printf("norm           %s, eps %g\n", c.norm == NormKind::kRmsNorm ? "rmsnorm" : "layernorm", c.norm_eps);
  const char* pos = c.position == PositionKind::kLearned    ? "learned"
                    : c.position == PositionKind::kRopeNeox ? "rope (neox)"
                                                             : "rope (normal)";
  std::printf("positions      %s", pos);
  if (c.position != PositionKind::kLearned) std::printf(", base %g, dims %lld", c.rope_base, static_cast<long long>(c.rope_dims));
  std::printf("\n");
  const char* block = c.block == BlockKind::kParallel ? "parallel attention+ffn"
                      : c.block == BlockKind::kPostNorm ? "post-norm (encoder)"
                                                        : "serial";
  std::printf("block          %s, ffn %s%s\n", block, c.ffn == FfnKind::kSwiGlu ? "swiglu" : "gelu",
              c.has_bias ? ", biases" : "");
  std::printf("output         %s\n", c.is_encoder() ? StrCat("embeddings, pooling ", PoolingName(c.pooling)).c_str()
                                     : c.tied_output ? "tied to token_embd" : "own output.weight");
  std::printf("parameters     %lld (%.2f M)\n", static_cast<long long>(m.num_params()), m.num_params() / 1e6);
  for (const auto& [t, bytes] : m.bytes_by_type()) {
    std::printf("bytes %-8s %lld (%.2f MiB)\n", std::string(DTypeName(t)).c_str(), static_cast<long long>(bytes),
                bytes / 1048576.0);
  }
  auto tok_model = f.GetStringOr("tokenizer.ggml.model", "(none)");
  auto tok_pre = f.GetStringOr("tokenizer.ggml.pre", "default");
  std::printf("vocabulary     %s tokenizer, pre '%s', %lld tokens\n", tok_model.ok() ? tok_model->c_str() : "?",
              tok_pre.ok() ? tok_pre->c_str() : "?", static_cast<long long>(c.vocab_size));
  if (o.metadata) {
    for (const auto& k : f.keys()) std::printf("  %-45s %s\n", k.c_str(), ValueString(*f.Find(k)).c_str());
  }
  if (o.tensors) {
    for (const auto& t : f.tensors()) {
      std::printf("  %-32s %-6s %-16s %llu bytes\n", t.name.c_str(), std::string(DTypeName(t.type)).c_str(),
                  t.ShapeString().c_str(), static_cast<unsigned long long>(t.size));
    }
  }
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(info, "info", "Show a model file's architecture, dimensions, parameters and vocabulary", 10,
                    [](CLI::App& sub) -> CommandRunner {
                      auto o = std::make_shared<InfoOptions>();
                      sub.add_option("-m,--model", o->model, "GGUF model file")->required();
                      sub.add_flag("--tensors", o->tensors, "also list every tensor");
                      sub.add_flag("--metadata", o->metadata, "also list every metadata key");
                      return [o] { return RunInfo(*o); };
                    });

}  // namespace si::cli
