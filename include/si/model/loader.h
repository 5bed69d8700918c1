// Model loading: GGUF metadata -> ModelConfig, and tensors -> Weights, both driven by the tensor-role table.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "si/kernels/ops.h"
#include "si/model/config.h"
#include "si/model/gguf.h"
#include "si/model/tensor_roles.h"

namespace si {

// Reads the architecture and hyperparameters (`<arch>.embedding_length`, ...) from GGUF metadata. Unknown
// architectures and missing or inconsistent keys give an error naming the key.
Result<ModelConfig> LoadModelConfig(const GgufFile& file);

// Metadata flag written by `quantize --type int8`: every Q8_0 matrix of the file is per-channel int8 (one
// scale per row, repeated in its blocks). The loader checks that and marks the matrices MatRef::int8_rows,
// so they run the per-row int8 kernels; llama.cpp ignores the key and reads plain Q8_0.
inline constexpr char kInt8PerChannelKey[] = "scaleinfer.int8_per_channel";

// One weight, as bound from the file: a matrix view for matmul/embedding roles, a float vector for norms
// and biases (always F32 in GGUF; other types are rejected by name).
struct WeightRef {
  const GgufTensorInfo* info = nullptr;
  MatRef mat;                     // [rows, cols] (1-D tensors: rows = 1)
  const float* f32() const { return static_cast<const float*>(mat.data); }
  bool present() const { return info != nullptr; }
};

class Model {
 public:
  // Opens a GGUF file, reads its config and binds every tensor its architecture needs, checking types and
  // shapes against the config. The returned model keeps the file mapped.
  static Result<std::unique_ptr<Model>> Load(const std::string& path);
  static Result<std::unique_ptr<Model>> FromGguf(std::unique_ptr<GgufFile> file);

  const ModelConfig& config() const { return config_; }
  const GgufFile& gguf() const { return *file_; }
  // Global tensors (layer ignored) and per-layer tensors. Absent optional roles have present() == false.
  const WeightRef& W(Role role, int64_t layer = 0) const;
  // The output projection: `output.weight`, or token_embd when tied.
  const WeightRef& OutputMatrix() const;
  // Parameter count (elements of all bound tensors) and bytes per tensor type.
  int64_t num_params() const { return num_params_; }
  const std::vector<std::pair<DType, int64_t>>& bytes_by_type() const { return bytes_by_type_; }
  // Bytes of the matmul weights read per decoded token (all matrices incl. output; not the embedding table
  // unless tied).
  int64_t matmul_weight_bytes() const;

 private:
  Model() = default;
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  std::array<WeightRef, kNumRoles> global_{};
  std::vector<std::array<WeightRef, kNumRoles>> layers_;
  int64_t num_params_ = 0;
  std::vector<std::pair<DType, int64_t>> bytes_by_type_;
};

}  // namespace si
