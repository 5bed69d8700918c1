// netbench: measures the collectives the distributed engine uses (Comm: MpiComm under mpirun), fits
// the latency-bandwidth model of the analytical cost model to them, and reads/writes the network
// cache
// (${XDG_CACHE_HOME:-~/.cache}/scaleinfer/network.json) that `--layout auto` uses
// (layout_choice.h).
//
// Message size (bytes per rank, f32 elements; the OSU micro-benchmark convention):
//   all-gather      each rank's block (the output is ranks x size)
//   reduce-scatter  each rank's block of the result (the input is ranks x size)
//   all-reduce      the buffer
//   all-to-all      the block sent to each rank (the buffer is ranks x size)
// Bytes sent per rank are comm.h's algorithmic volume (BytesSent): (K-1)·size for all-gather,
// reduce-scatter and all-to-all, 2·(K-1)/K·size for all-reduce.
//
// Model (cost_model.h, switch topology): t = steps · step_latency_s + bytes_sent / link_bw, steps =
// K-1 ring steps (all-reduce: 2·(K-1), a reduce-scatter then an all-gather). Fitted by least
// squares on the relative error (each point weighted by 1/t², so the small messages fix the latency
// and the large ones the bandwidth, instead of the largest message dominating), with both
// parameters kept >= 0.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "si/base/status.h"
#include "si/parallel/comm.h"

namespace si {

struct NetbenchOptions {
  int64_t min_bytes = 4;         // first size; sizes grow by 4x
  int64_t max_bytes = 16 << 20;  // last size (inclusive if a power-of-4 multiple of min_bytes)
  int repeats = 20;              // timed runs per size; the median is reported
  int warmup = 3;                // untimed runs per size first
};

// One measured size of one collective. time_s: median over the repeats of the slowest rank's time.
struct NetPoint {
  int64_t size = 0;        // bytes per rank (see above)
  int64_t bytes_sent = 0;  // per rank, BytesSent()
  double time_s = 0;
  double gbps() const { return time_s > 0 ? bytes_sent / time_s / 1e9 : 0; }
};

// t = steps * step_latency_s + bytes_sent / bw.
struct LinkFit {
  double step_latency_s = 0;
  double bw = 0;             // bytes/s per rank
  double rms_rel_error = 0;  // of the fitted times vs the measured ones
  double Predict(double steps, double bytes) const { return steps * step_latency_s + bytes / bw; }
};

struct FitPoint {
  double steps = 1, bytes = 0, time_s = 0;
};
// Weighted least squares as described above. Needs >= 1 point with time > 0 (else bw = 0: invalid).
LinkFit FitLink(const std::vector<FitPoint>& points);

struct CollectiveBench {
  CollectiveKind kind = CollectiveKind::kAllGather;
  int steps = 1;  // ring steps of one call
  std::vector<NetPoint> points;
  LinkFit fit;
};

struct NetbenchResult {
  int ranks = 1;
  int hosts = 1;            // distinct host names among the ranks
  std::string host;         // rank 0's host name
  std::string measured_at;  // UTC, ISO 8601
  NetbenchOptions options;
  std::vector<CollectiveBench> collectives;  // all-gather, reduce-scatter, all-reduce, all-to-all
  LinkFit overall;  // one fit over every point of every collective: the network.json link_bw / step
                    // latency
};

// Runs the benchmark over `comm` (every rank of its group calls it with the same options); every
// rank returns the same result. Errors: bad options (identical on every rank), a failing
// collective.
Result<NetbenchResult> RunNetbench(Comm& comm, const NetbenchOptions& options);

// The table `scaleinfer netbench` prints, and the JSON it writes (network.json and --json).
std::string NetbenchTable(const NetbenchResult& r);
std::string NetbenchToJson(const NetbenchResult& r);

// What --layout auto reads back from network.json.
struct NetworkCache {
  double link_bw = 0;         // bytes/s per rank
  double step_latency_s = 0;  // per ring step
  int ranks = 0;              // 0: not recorded
  std::string measured_at, host;
};
// Errors (Corrupt / InvalidArgument, prefixed by `origin`): not JSON, missing or non-numeric
// link_bw / step_latency_s, link_bw <= 0, step_latency_s < 0 or not finite.
Result<NetworkCache> ParseNetworkJson(std::string_view text, std::string_view origin);

}  // namespace si
