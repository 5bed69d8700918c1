#include "dist_session.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "command.h"
#include "si/base/mmap_file.h"
#include "si/dist/layout_choice.h"
#include "si/parallel/comm.h"
#include "si/perf/roofline.h"

namespace si::cli {

namespace {
int EnvInt(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}
}  // namespace

bool IsRootProcess() {
  const char* r = std::getenv("OMPI_COMM_WORLD_RANK");
  return r == nullptr || std::atoi(r) == 0;
}

void DistFlags::Add(CLI::App& sub) {
  mesh_opt = sub.add_option("--mesh", mesh,
                            "device mesh XxYxZ over the MPI ranks (default: planner's for N)");
  layout_opt =
      sub.add_option("--layout", layout, "auto|1d-ws|2d-ws|wg-x|wg-xy|wg-xyz (Pope et al. §3.2)")
          ->capture_default_str();
  attn_opt = sub.add_option("--attention", attention, "auto|heads|batch (Pope et al. §3.3)")
                 ->capture_default_str();
  sub.add_flag("--dist-verbose", verbose, "print the layout choice and memory per rank (rank 0)");
  sub.add_option("--overlap", overlap,
                 "on|off|both: overlap the matmuls' collectives with compute (Pope et al. §3.5; "
                 "bit-identical "
                 "results); both (bench): measure off and on alternately")
      ->check(CLI::IsMember({"on", "off", "both"}))
      ->capture_default_str();
}

bool DistFlags::Requested() const {
  return (mesh_opt && mesh_opt->count()) || (layout_opt && layout_opt->count()) ||
         (attn_opt && attn_opt->count()) || EnvInt("OMPI_COMM_WORLD_SIZE") > 0;
}

int OpenError(const std::string& command, const Status& status) {
  if (IsRootProcess()) return PrintError(command, status);
  // An error every rank sees (bad --mesh, dims not divisible) is printed by rank 0, which then
  // exits. One only this rank sees (out of memory, a thread it cannot start) would leave rank 0
  // waiting in a collective forever: give rank 0 a second to report a shared error, then abort the
  // job with this rank's message.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  MpiAbortAll(status.WithContext(command));
  return 1;
}

Session::~Session() = default;

int Session::Error(const std::string& cmd, const Status& st) const {
  if (root()) std::fprintf(stderr, "scaleinfer %s: %s\n", cmd.c_str(), st.message().c_str());
  return 1;
}

// The roofline describes the whole machine, but a rank is one process with `threads` threads, and
// the ranks started on this host (OMPI_COMM_WORLD_LOCAL_SIZE) share its DRAM. Without this the
// planner gave each of 2 one-thread ranks the 2-thread peak and all of the bandwidth, and predicted
// 3x too fast (docs/parallel.md). Returns what was assumed, for the layout note.
std::string ShareMachineBetweenRanks(int threads, analysis::HardwareSpec* hw) {
  // Read only: LoadOrMeasureRoofline would measure (seconds, on every rank at once) and overwrite
  // the user's cache with a 1-thread file when it is missing or unreadable.
  auto text = ReadFileToString(RooflineCachePath());
  if (!text.ok()) return "";
  auto roof = RooflineFromJson(*text);
  if (!roof.ok() || roof->points.empty()) return "";
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  const int on_host = std::max(1, local ? std::atoi(local) : 1);
  // 0 threads = the pool's default, one per hardware thread (ThreadPool).
  const int t =
      threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int max_t = roof->points.back().threads;
  const RooflinePoint* mine = roof->AtThreads(std::min(t, max_t));
  const RooflinePoint* host = roof->AtThreads(std::min(t * on_host, max_t));
  if (mine == nullptr || host == nullptr) return "";
  // A cache from older probes: its int8 peaks are 1.4x too low (f32 and bandwidth are right). Read
  // only here, so say so rather than measure.
  const bool stale = roof->probe_version != kRooflineProbeVersion;
  for (const auto& [kind, v] : mine->peak_flops) hw->peak_flops[kind] = v;
  hw->mem_bw = host->mem_bw / on_host;
  return StrCat("; per rank: ", t, " thread(s), ", hw->peak_flops["f32"] / 1e9, " GFLOP/s f32, ",
                hw->mem_bw / 1e9, " GB/s (", on_host, " rank(s) on this host share its bandwidth)",
                stale ? "; the roofline cache predates the current int8 probes and its int8 peaks "
                        "are too low (run scaleinfer roofline --refresh)"
                      : "");
}

Result<std::unique_ptr<Session>> Session::Open(const std::string& path, const DistFlags& flags,
                                               EngineOptions options, const Workload& w) {
  std::unique_ptr<Session> s(new Session());
  if (!flags.Requested()) {
    SI_ASSIGN_OR_RETURN(auto model, Model::Load(path));
    s->model_ = std::move(model);
    SI_ASSIGN_OR_RETURN(s->engine_, Engine::Create(s->model_, options));
    s->description_ = "1 process";
    return s;
  }
  SI_ASSIGN_OR_RETURN(s->mpi_, MpiSession::Init(nullptr, nullptr));
  // On an error below, keep MPI initialized (never MPI_Finalize): finalizing waits for the other
  // ranks, which may be waiting in a collective for this one. OpenError then aborts the job, or
  // this process exits without finalizing, which makes mpirun stop the others.
  struct KeepMpiOnError {
    Session* s;
    bool opened = false;
    ~KeepMpiOnError() {
      if (!opened) (void)s->mpi_.release();  // NOLINT: deliberately leaked
    }
  } keep{s.get()};
  s->rank_ = s->mpi_->world_rank();
  s->world_ = s->mpi_->world_size();
  // A file only this rank cannot open: abort the job (the others would wait in the first
  // collective).
  auto model = Model::Load(path);
  if (!model.ok()) MpiAbortAll(model.status());
  s->model_ = std::move(*model);
  const ModelConfig& c = s->model_->config();
  if (c.is_encoder())
    return InvalidArgumentError(path, " is an encoder: the distributed engine runs decoders");
  MeshShape shape;
  if (flags.mesh.empty()) {
    SI_ASSIGN_OR_RETURN(shape, SuggestMesh(s->world_, c));
  } else {
    SI_ASSIGN_OR_RETURN(shape, ParseMesh(flags.mesh));
  }
  SI_ASSIGN_OR_RETURN(s->mesh_, MakeMpiMesh(shape));
  // Layouts.
  std::optional<FfnLayout> layout;
  std::optional<AttnSharding> attn;
  if (flags.layout != "auto") {
    auto l = analysis::ParseLayout(flags.layout);
    if (!l.ok()) return l.status().WithContext("--layout");
    layout = *l;
  }
  if (flags.attention != "auto") {
    auto a = analysis::ParseAttn(flags.attention);
    if (!a.ok()) return a.status().WithContext("--attention");
    attn = *a;
  }
  DistEngineOptions o;
  o.num_threads = options.num_threads;
  o.kernels = options.kernels;
  o.context_len = options.context_len;
  o.overlap.enabled = flags.overlap != "off";
  const DType wt = s->model_->W(Role::kWdown, 0).mat.type;
  const double wbytes = static_cast<double>(DTypeRowBytes(wt, 32 * 1024)) / (32 * 1024);
  if (layout && attn) {
    o.prefill = o.decode = {*layout, *attn};
  } else if (layout) {
    // Attention: heads when the dimensions allow it, else batch.
    const bool heads_ok = DeriveLayerProgram(c, shape, *layout, AttnSharding::kHeads, w.batch).ok();
    o.prefill = o.decode = {*layout, heads_ok ? AttnSharding::kHeads : AttnSharding::kBatch};
  } else {
    std::string net_note;
    auto hw = LocalHardwareWithNetwork(&net_note);
    if (!hw.ok()) {
      // No measured roofline: 2d-ws (Pope's decode layout) with the attention the dims allow.
      const FfnLayout l = FfnLayout::k2dWs;
      const bool heads_ok =
          DeriveLayerProgram(c, shape, l, attn.value_or(AttnSharding::kHeads), w.batch).ok();
      o.prefill = o.decode = {l, attn       ? *attn
                                 : heads_ok ? AttnSharding::kHeads
                                            : AttnSharding::kBatch};
      s->choice_note_ =
          StrCat("layout auto: ", hw.status().message(), "; using ", o.decode.ToString(), "\n");
    } else {
      const std::string share_note = ShareMachineBetweenRanks(options.num_threads, &*hw);
      net_note += share_note;
      SI_ASSIGN_OR_RETURN(LayoutChoice ch, ChooseLayouts(c, shape, *hw, w.batch, w.prompt, w.gen,
                                                         wbytes, std::nullopt, attn));
      o.prefill = ch.prefill;
      o.decode = ch.decode;
      s->choice_note_ = StrCat("layout auto (planner, hardware 'local', ", net_note, "; batch ",
                               w.batch, ", prompt ", w.prompt, ", gen ", w.gen, "):\n", ch.note);
    }
  }
  SI_ASSIGN_OR_RETURN(s->dist_, DistEngine::Create(s->model_, s->mesh_.get(), o));
  // Weight memory per rank: the largest over the ranks (the LM head's last block is shorter).
  const int64_t mine = s->dist_->weight_bytes();
  std::vector<int64_t> all(s->world_);
  SI_RETURN_IF_ERROR(
      s->mesh_->world().AllGather(&mine, all.data(), sizeof(int64_t), ElemType::kU8));
  for (int64_t b : all) s->max_weight_bytes_ = std::max(s->max_weight_bytes_, b);
  s->mesh_->ResetStats();
  s->description_ =
      StrCat("mesh ", shape.ToString(), " (", s->world_, " ranks), prefill ", o.prefill.ToString(),
             ", decode ", o.decode.ToString(), ", overlap ", flags.overlap);
  keep.opened = true;
  return s;
}

int64_t Session::context_len() const {
  return dist_ ? dist_->context_len() : engine_->context_len();
}
int Session::num_threads() const { return dist_ ? dist_->num_threads() : engine_->num_threads(); }
const char* Session::kernels_name() const {
  return dist_ ? (dist_->options().kernels ? dist_->options().kernels->name : BestKernels().name)
               : engine_->kernels().name;
}
int Session::NewSequence() { return dist_ ? dist_->NewSequence() : engine_->NewSequence(); }
void Session::FreeSequence(int seq) {
  dist_ ? dist_->FreeSequence(seq) : engine_->FreeSequence(seq);
}
Status Session::Forward(std::span<const SeqTokens> batch, std::vector<float>* logits) {
  return dist_ ? dist_->Forward(batch, logits) : engine_->Forward(batch, logits);
}

}  // namespace si::cli
