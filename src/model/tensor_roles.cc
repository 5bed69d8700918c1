#include "si/model/tensor_roles.h"

#include <array>

#include "si/base/check.h"

namespace si {
namespace {

using enum Role;
using enum Axis;
using enum OpKind;

// The table. Row order must follow the Role enum (checked in GetRoleInfo).
constexpr std::array<RoleInfo, ::si::kNumRoles> kRoles = {{
    {kTokenEmbd, "token_embd.weight", false, kEmbedding, kVocab, kModel},
    {kPosEmbd, "position_embd.weight", false, kEmbedding, kCtx, kModel},
    {kTokenTypes, "token_types.weight", false, kEmbedding, kTypes, kModel},
    {kEmbdNorm, "token_embd_norm.weight", false, kNormGain, kNone, kModel},
    {kEmbdNormBias, "token_embd_norm.bias", false, kNormBias, kNone, kModel},
    {kAttnNorm, "attn_norm.weight", true, kNormGain, kNone, kModel},
    {kAttnNormBias, "attn_norm.bias", true, kNormBias, kNone, kModel},
    {kWqkv, "attn_qkv.weight", true, kMatMul, kQkv, kModel},
    {kBqkv, "attn_qkv.bias", true, kBias, kNone, kQkv},
    {kWq, "attn_q.weight", true, kMatMul, kQ, kModel},
    {kBq, "attn_q.bias", true, kBias, kNone, kQ},
    {kWk, "attn_k.weight", true, kMatMul, kKv, kModel},
    {kBk, "attn_k.bias", true, kBias, kNone, kKv},
    {kWv, "attn_v.weight", true, kMatMul, kKv, kModel},
    {kBv, "attn_v.bias", true, kBias, kNone, kKv},
    {kWo, "attn_output.weight", true, kMatMul, kModel, kQ},
    {kBo, "attn_output.bias", true, kBias, kNone, kModel},
    {kAttnOutNorm, "attn_output_norm.weight", true, kNormGain, kNone, kModel},
    {kAttnOutNormBias, "attn_output_norm.bias", true, kNormBias, kNone, kModel},
    {kFfnNorm, "ffn_norm.weight", true, kNormGain, kNone, kModel},
    {kFfnNormBias, "ffn_norm.bias", true, kNormBias, kNone, kModel},
    {kWgate, "ffn_gate.weight", true, kMatMul, kFfn, kModel},
    {kWup, "ffn_up.weight", true, kMatMul, kFfn, kModel},
    {kBup, "ffn_up.bias", true, kBias, kNone, kFfn},
    {kWdown, "ffn_down.weight", true, kMatMul, kModel, kFfn},
    {kBdown, "ffn_down.bias", true, kBias, kNone, kModel},
    {kLayerOutNorm, "layer_output_norm.weight", true, kNormGain, kNone, kModel},
    {kLayerOutNormBias, "layer_output_norm.bias", true, kNormBias, kNone, kModel},
    {kOutputNorm, "output_norm.weight", false, kNormGain, kNone, kModel},
    {kOutputNormBias, "output_norm.bias", false, kNormBias, kNone, kModel},
    {kOutput, "output.weight", false, kMatMul, kVocab, kModel},
}};

constexpr Need R = Need::kRequired;
constexpr Need O = Need::kOptional;

constexpr ArchRole kLlamaRoles[] = {
    {kTokenEmbd, R}, {kAttnNorm, R}, {kWq, R},      {kWk, R},          {kWv, R},      {kWo, R},
    {kFfnNorm, R},   {kWgate, R},    {kWup, R},     {kWdown, R},       {kOutputNorm, R}, {kOutput, O},
};
constexpr ArchRole kGpt2Roles[] = {
    {kTokenEmbd, R}, {kPosEmbd, R}, {kAttnNorm, R}, {kAttnNormBias, R}, {kWqkv, R},   {kBqkv, R},
    {kWo, R},        {kBo, R},      {kFfnNorm, R},  {kFfnNormBias, R},  {kWup, R},    {kBup, R},
    {kWdown, R},     {kBdown, R},   {kOutputNorm, R}, {kOutputNormBias, R}, {kOutput, R},
};
constexpr ArchRole kFalconRoles[] = {
    {kTokenEmbd, R}, {kAttnNorm, R}, {kAttnNormBias, R}, {kWqkv, R},       {kWo, R},
    {kWup, R},       {kWdown, R},    {kOutputNorm, R},   {kOutputNormBias, R}, {kOutput, O},
};
constexpr ArchRole kBertRoles[] = {
    {kTokenEmbd, R},   {kTokenTypes, R},     {kPosEmbd, R},     {kEmbdNorm, R},        {kEmbdNormBias, R},
    {kWq, R},          {kBq, R},             {kWk, R},          {kBk, R},              {kWv, R},
    {kBv, R},          {kWo, R},             {kBo, R},          {kAttnOutNorm, R},     {kAttnOutNormBias, R},
    {kWup, R},         {kBup, R},            {kWdown, R},       {kBdown, R},           {kLayerOutNorm, R},
    {kLayerOutNormBias, R},
};

}  // namespace

const RoleInfo& GetRoleInfo(Role role) {
  const RoleInfo& info = kRoles[static_cast<int>(role)];
  SI_CHECK(info.role == role) << "tensor-role table out of order at " << static_cast<int>(role);
  return info;
}

std::span<const ArchRole> ArchRoles(Arch arch) {
  switch (arch) {
    case Arch::kLlama: return kLlamaRoles;
    case Arch::kGpt2: return kGpt2Roles;
    case Arch::kFalcon: return kFalconRoles;
    case Arch::kBert: return kBertRoles;
  }
  return {};
}

int64_t AxisSize(const ModelConfig& c, Axis axis) {
  switch (axis) {
    case kNone: return 1;
    case kVocab: return c.vocab_size;
    case kModel: return c.model_dim;
    case kFfn: return c.ffn_dim;
    case kQ: return c.q_dim();
    case kKv: return c.kv_dim();
    case kQkv: return c.qkv_dim();
    case kCtx: return c.context_len;
    case kTypes: return c.num_token_types;
  }
  return 0;
}

std::string_view AxisName(Axis axis) {
  switch (axis) {
    case kNone: return "-";
    case kVocab: return "vocab";
    case kModel: return "model";
    case kFfn: return "ffn";
    case kQ: return "q";
    case kKv: return "kv";
    case kQkv: return "qkv";
    case kCtx: return "ctx";
    case kTypes: return "types";
  }
  return "?";
}

std::string TensorName(Role role, int64_t layer) {
  const RoleInfo& info = GetRoleInfo(role);
  if (!info.per_layer) return std::string(info.gguf_name);
  return StrCat("blk.", layer, ".", info.gguf_name);
}

}  // namespace si
