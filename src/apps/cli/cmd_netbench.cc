// scaleinfer netbench [--max-bytes N] [--repeats N] [--warmup N] [--json] [--no-save], under
// `mpirun -np N` (N >= 2): times all-gather, reduce-scatter, all-reduce and all-to-all over the
// world group with the engine's own MpiComm, fits t = steps * step_latency + bytes / link_bw, and
// writes
// ${XDG_CACHE_HOME:-~/.cache}/scaleinfer/network.json for --layout auto (docs/parallel.md). Rank 0
// alone prints and writes.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "command.h"
#include "si/base/mmap_file.h"
#include "si/dist/layout_choice.h"
#include "si/dist/netbench.h"
#include "si/parallel/mpi_comm.h"

namespace si::cli {
namespace {

struct Options {
  int64_t max_bytes = 16 << 20;
  int repeats = 20, warmup = 3;
  bool json = false, no_save = false;
};

// The world size the launcher announced (OpenMPI, MPICH/Hydra, PMIx), 0 when not started by one.
int LauncherWorldSize() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    if (const char* s = std::getenv(v)) return std::atoi(s);
  }
  return 0;
}

Status SaveCache(const std::string& text, const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return IoError("cannot create the directory of ", path, ": ", ec.message());
  return WriteFileAtomic(path, text.data(), text.size());
}

int Run(const Options& o) {
  // Errors every rank sees alike come first, before MPI starts.
  const int launched = LauncherWorldSize();
  if (launched < 2) {
    return PrintError(
        "netbench",
        InvalidArgumentError(
            "netbench measures the collectives between MPI ranks, but ",
            launched == 0 ? "it was not started by mpirun" : "mpirun started only 1 rank",
            ": run it with at least 2 ranks, e.g. `mpirun -np 2 scaleinfer "
            "netbench` (add --oversubscribe --allow-run-as-root if needed)"));
  }
  NetbenchOptions no;
  no.max_bytes = o.max_bytes;
  no.repeats = o.repeats;
  no.warmup = o.warmup;
  auto session = MpiSession::Init(nullptr, nullptr);
  if (!session.ok()) return PrintError("netbench", session.status());
  const bool root = (*session)->world_rank() == 0;
  auto mesh = MakeMpiMesh({(*session)->world_size(), 1, 1});
  if (!mesh.ok()) return root ? PrintError("netbench", mesh.status()) : 1;
  auto r = RunNetbench((*mesh)->world(), no);
  if (!r.ok()) {
    // Bad options fail on every rank before any collective; anything else may have left ranks
    // waiting.
    if (r.status().code() == StatusCode::kInvalidArgument)
      return root ? PrintError("netbench", r.status()) : 1;
    MpiAbortAll(r.status().WithContext("netbench"));
  }
  if (!root) return 0;
  const std::string json = NetbenchToJson(*r);
  const std::string path = NetworkCachePath();
  if (o.json) {
    std::fputs(json.c_str(), stdout);
  } else {
    std::fputs(NetbenchTable(*r).c_str(), stdout);
  }
  if (!o.no_save) {
    Status st = SaveCache(json, path);
    if (!st.ok()) return PrintError("netbench", st);
    std::fprintf(o.json ? stderr : stdout, "saved %s (used by --layout auto)\n", path.c_str());
  }
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(
    netbench, "netbench",
    "Measure the MPI collectives (run under mpirun -np N >= 2) for --layout auto (cached)", 75,
    [](CLI::App& sub) -> CommandRunner {
      auto o = std::make_shared<Options>();
      sub.add_option("--max-bytes", o->max_bytes,
                     "largest message, bytes per rank (sizes 4, 16, 64, ... up to it)")
          ->capture_default_str();
      sub.add_option("--repeats", o->repeats, "timed runs per size (median reported)")
          ->capture_default_str();
      sub.add_option("--warmup", o->warmup, "untimed runs per size first")->capture_default_str();
      sub.add_flag("--json", o->json, "print the JSON that is saved (rank 0) instead of the table");
      sub.add_flag("--no-save", o->no_save, "do not write network.json");
      return [o] { return Run(*o); };
    });

}  // namespace si::cli
