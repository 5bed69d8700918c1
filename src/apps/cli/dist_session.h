// What logits/run/bench run on: the single-process Engine, or the DistEngine over an MPI mesh when
// started under mpirun or with --mesh/--layout/--attention. Rank 0 alone prints and writes
// (root()).
//
// Failure policy (docs/parallel.md): errors every rank sees the same way (bad --mesh, wrong rank
// count, dims not divisible, bad batch) are printed by rank 0, which exits 1. An error only one
// rank can see (it cannot open or map the model file, runs out of memory, cannot start its threads)
// makes that rank MPI_Abort the job (MpiAbortAll) with "rank N: error: ...", so no rank waits
// forever. On any error MPI is never finalized (finalizing waits for ranks that may be blocked in a
// collective).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "si/dist/dist_engine.h"
#include "si/parallel/mpi_comm.h"
#include "si/runtime/engine.h"

namespace si::cli {

struct DistFlags {
  std::string mesh;                // "" : the planner's suggestion for the number of ranks
  std::string layout = "auto";     // auto | 1d-ws | 2d-ws | wg-x | wg-xy | wg-xyz
  std::string attention = "auto";  // auto | heads | batch
  bool verbose = false;            // print the layout choice and memory per rank (rank 0)
  std::string overlap = "off";  // on | off | both (bench: alternating) — looped collective matmul
  CLI::Option* mesh_opt = nullptr;
  CLI::Option* layout_opt = nullptr;
  CLI::Option* attn_opt = nullptr;
  void Add(CLI::App& sub);
  // True when the command should run distributed: any of the flags given, or started by mpirun.
  bool Requested() const;
};

// The workload the planner optimises for (--layout auto).
struct Workload {
  int64_t batch = 1, prompt = 1, gen = 1;
};

class Session {
 public:
  static Result<std::unique_ptr<Session>> Open(const std::string& model_path,
                                               const DistFlags& flags, EngineOptions options,
                                               const Workload& workload);
  ~Session();

  bool root() const { return rank_ == 0; }
  int world_size() const { return world_; }
  bool distributed() const { return dist_ != nullptr; }
  const Model& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config(); }
  int64_t context_len() const;
  int num_threads() const;
  const char* kernels_name() const;

  int NewSequence();
  void FreeSequence(int seq);
  Status Forward(std::span<const SeqTokens> batch, std::vector<float>* logits);

  Engine* engine() { return engine_.get(); }
  DistEngine* dist() { return dist_.get(); }
  // "mesh 2x1x1 (2 ranks), prefill 2d-ws/heads, decode 2d-ws/heads" / "1 process".
  const std::string& description() const { return description_; }
  // The planner's reasoning for --layout auto (empty otherwise).
  const std::string& choice_note() const { return choice_note_; }
  // Weight memory of this rank (sharded matmul weights + LM head block), max over ranks, and KV
  // cache.
  int64_t max_weight_bytes_per_rank() const { return max_weight_bytes_; }
  // Prints "scaleinfer <cmd>: <message>" on rank 0 only; returns 1.
  int Error(const std::string& cmd, const Status& st) const;

 private:
  Session() = default;
  std::unique_ptr<MpiSession> mpi_;
  std::unique_ptr<Mesh> mesh_;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<DistEngine> dist_;
  int rank_ = 0, world_ = 1;
  std::string description_, choice_note_;
  int64_t max_weight_bytes_ = 0;
};

// Prints only on rank 0 of an MPI job (or always in a single process).
bool IsRootProcess();

// The error exit for a failed Session::Open, which every rank detects alike: rank 0 prints the one
// error line; the other ranks wait a moment before exiting non-zero, because mpiexec kills the
// whole job as soon as one rank fails and would otherwise often cut rank 0 off before its line is
// written (seen as a flaky test).
int OpenError(const std::string& command, const Status& status);

}  // namespace si::cli
