#include "si/dist/netbench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace si {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string UtcNow() {
  char buf[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The f32 element count of one call's `count` argument (comm.h) for a message of `size` bytes per
// rank.
int64_t CountOf(int64_t size) { return size / 4; }

Status RunOnce(Comm& c, CollectiveKind kind, int64_t count, const float* send, float* recv) {
  switch (kind) {
    case CollectiveKind::kAllGather:
      return c.AllGather(send, recv, count, ElemType::kF32);
    case CollectiveKind::kReduceScatter:
      return c.ReduceScatter(send, recv, count, ElemType::kF32);
    case CollectiveKind::kAllReduce:
      return c.AllReduce(send, recv, count, ElemType::kF32);
    case CollectiveKind::kAllToAll:
      return c.AllToAll(send, recv, count, ElemType::kF32);
    default:
      return InternalError("netbench: unsupported collective ", CollectiveName(kind));
  }
}

nlohmann::json FitJson(const LinkFit& f) {
  return {
      {"link_bw", f.bw}, {"step_latency_s", f.step_latency_s}, {"rms_rel_error", f.rms_rel_error}};
}

}  // namespace

LinkFit FitLink(const std::vector<FitPoint>& points) {
  // Minimise sum_i w_i (s_i L + b_i c - t_i)^2, w_i = 1/t_i^2, over L >= 0, c = 1/bw > 0.
  double ss = 0, sb = 0, bb = 0, st = 0, bt = 0;
  int n = 0;
  for (const FitPoint& p : points) {
    if (!(p.time_s > 0)) continue;
    const double w = 1.0 / (p.time_s * p.time_s);
    ss += w * p.steps * p.steps;
    sb += w * p.steps * p.bytes;
    bb += w * p.bytes * p.bytes;
    st += w * p.steps * p.time_s;
    bt += w * p.bytes * p.time_s;
    ++n;
  }
  LinkFit f;
  if (n == 0) return f;
  double lat = 0, c = 0;
  const double det = ss * bb - sb * sb;
  if (det > 1e-12 * ss * bb) {
    lat = (st * bb - sb * bt) / det;
    c = (ss * bt - sb * st) / det;
  }
  if (!(lat >= 0) || !(c > 0)) {
    // The unconstrained optimum is outside the box: fit the bandwidth alone (latency 0), and if
    // that is degenerate too (all sizes tiny), the latency alone with the bandwidth of the largest
    // message.
    lat = 0;
    c = bb > 0 ? bt / bb : 0;
    if (!(c > 0)) {
      double best_b = 0, best_t = 0;
      for (const FitPoint& p : points) {
        if (p.time_s > 0 && p.bytes >= best_b) best_b = p.bytes, best_t = p.time_s;
      }
      c = best_b > 0 ? best_t / best_b : 1e-12;
      lat = ss > 0 ? std::max(0.0, (st - c * sb) / ss) : 0;
    }
  }
  f.step_latency_s = lat;
  f.bw = 1.0 / c;
  double err = 0;
  for (const FitPoint& p : points) {
    if (!(p.time_s > 0)) continue;
    const double e = f.Predict(p.steps, p.bytes) / p.time_s - 1;
    err += e * e;
  }
  f.rms_rel_error = std::sqrt(err / n);
  return f;
}

Result<NetbenchResult> RunNetbench(Comm& comm, const NetbenchOptions& o) {
  if (o.min_bytes < 4 || o.min_bytes % 4 != 0) {
    return InvalidArgumentError(
        "netbench: the smallest size must be a positive multiple of 4 bytes, got ", o.min_bytes);
  }
  if (o.max_bytes < o.min_bytes || o.max_bytes > (int64_t{1} << 30)) {
    return InvalidArgumentError("--max-bytes must be in [", o.min_bytes,
                                ", 1073741824] (1 GiB), got ", o.max_bytes);
  }
  if (o.repeats < 1) return InvalidArgumentError("--repeats must be >= 1, got ", o.repeats);
  if (o.warmup < 0) return InvalidArgumentError("--warmup must be >= 0, got ", o.warmup);
  const int k = comm.size();
  if (k < 2) {
    return InvalidArgumentError("netbench needs at least 2 ranks to measure a network, got ", k,
                                "; run it as `mpirun -np 2 scaleinfer netbench`");
  }
  NetbenchResult r;
  r.ranks = k;
  r.options = o;
  r.host = HostName();
  r.measured_at = UtcNow();
  {  // Host names of every rank: how many machines the measurement spans.
    std::vector<char> mine(256, 0), all(256 * k);
    std::copy(r.host.begin(), r.host.begin() + std::min<size_t>(255, r.host.size()), mine.begin());
    SI_RETURN_IF_ERROR(comm.AllGather(mine.data(), all.data(), 256, ElemType::kU8));
    std::set<std::string> names;
    for (int j = 0; j < k; ++j) names.insert(std::string(&all[256 * j]));
    r.hosts = static_cast<int>(names.size());
    r.host = std::string(&all[0]);  // rank 0's
  }
  std::vector<int64_t> sizes;
  for (int64_t s = o.min_bytes; s <= o.max_bytes; s *= 4) sizes.push_back(s);
  const int64_t max_count = CountOf(sizes.back());
  // Large enough for the biggest input and output of every collective (ranks x size).
  std::vector<float> send(max_count * k), recv(max_count * k);
  for (size_t i = 0; i < send.size(); ++i) send[i] = static_cast<float>(i % 1000) * 1e-3f;
  std::vector<double> times(o.repeats), all_times(static_cast<size_t>(o.repeats) * k),
      slowest(o.repeats);
  const CollectiveKind kinds[] = {CollectiveKind::kAllGather, CollectiveKind::kReduceScatter,
                                  CollectiveKind::kAllReduce, CollectiveKind::kAllToAll};
  std::vector<FitPoint> all_points;
  for (CollectiveKind kind : kinds) {
    CollectiveBench cb;
    cb.kind = kind;
    cb.steps = kind == CollectiveKind::kAllReduce ? 2 * (k - 1) : k - 1;
    std::vector<FitPoint> pts;
    for (int64_t size : sizes) {
      const int64_t count = CountOf(size);
      for (int i = 0; i < o.warmup; ++i)
        SI_RETURN_IF_ERROR(RunOnce(comm, kind, count, send.data(), recv.data()));
      for (int i = 0; i < o.repeats; ++i) {
        SI_RETURN_IF_ERROR(comm.Barrier());
        const double t0 = Now();
        SI_RETURN_IF_ERROR(RunOnce(comm, kind, count, send.data(), recv.data()));
        times[i] = Now() - t0;
      }
      // A collective takes as long as its slowest rank.
      SI_RETURN_IF_ERROR(
          comm.AllGather(times.data(), all_times.data(), o.repeats * 8, ElemType::kU8));
      for (int i = 0; i < o.repeats; ++i) {
        slowest[i] = 0;
        for (int j = 0; j < k; ++j) slowest[i] = std::max(slowest[i], all_times[j * o.repeats + i]);
      }
      NetPoint p;
      p.size = size;
      p.bytes_sent = BytesSent(kind, k, count, ElemType::kF32, /*is_root=*/false);
      p.time_s = Median(slowest);
      cb.points.push_back(p);
      pts.push_back({static_cast<double>(cb.steps), static_cast<double>(p.bytes_sent), p.time_s});
    }
    cb.fit = FitLink(pts);
    all_points.insert(all_points.end(), pts.begin(), pts.end());
    r.collectives.push_back(std::move(cb));
  }
  r.overall = FitLink(all_points);
  return r;
}

std::string NetbenchTable(const NetbenchResult& r) {
  std::ostringstream os;
  char line[160];
  os << "netbench: " << r.ranks << " ranks on " << r.hosts << (r.hosts == 1 ? " host" : " hosts")
     << " (" << r.host << "), MpiComm over the world group, median of " << r.options.repeats
     << " runs after " << r.options.warmup << " warm-up, " << r.measured_at << "\n";
  os << "size: bytes per rank (all-gather: each rank's block; reduce-scatter: each rank's result "
        "block;\n"
        "all-reduce: the buffer; all-to-all: the block to each rank); sent: algorithmic bytes per "
        "rank\n";
  for (const CollectiveBench& cb : r.collectives) {
    std::snprintf(line, sizeof(line), "\n%-15s %10s %12s %14s %10s %12s\n",
                  std::string(CollectiveName(cb.kind)).c_str(), "size B", "time us", "sent B/rank",
                  "GB/s", "fit us");
    os << line;
    for (const NetPoint& p : cb.points) {
      std::snprintf(line, sizeof(line), "%-15s %10lld %12.2f %14lld %10.3f %12.2f\n", "",
                    static_cast<long long>(p.size), p.time_s * 1e6,
                    static_cast<long long>(p.bytes_sent), p.gbps(),
                    cb.fit.Predict(cb.steps, static_cast<double>(p.bytes_sent)) * 1e6);
      os << line;
    }
    std::snprintf(
        line, sizeof(line),
        "%-15s fit: %.2f us per step x %d step(s) + bytes / %.3f GB/s (rms error %.0f%%)\n", "",
        cb.fit.step_latency_s * 1e6, cb.steps, cb.fit.bw / 1e9, 100 * cb.fit.rms_rel_error);
    os << line;
  }
  std::snprintf(
      line, sizeof(line),
      "\nall collectives: link_bw %.3f GB/s per rank, step_latency_s %.2f us (rms error %.0f%%)\n",
      r.overall.bw / 1e9, r.overall.step_latency_s * 1e6, 100 * r.overall.rms_rel_error);
  os << line;
  return os.str();
}

std::string NetbenchToJson(const NetbenchResult& r) {
  nlohmann::json j;
  // The two keys the cost model reads (layout_choice.cc), from the fit over every collective.
  j["link_bw"] = r.overall.bw;
  j["step_latency_s"] = r.overall.step_latency_s;
  j["rms_rel_error"] = r.overall.rms_rel_error;
  j["ranks"] = r.ranks;
  j["hosts"] = r.hosts;
  j["host"] = r.host;
  j["measured_at"] = r.measured_at;
  j["comm"] = "MpiComm";
  j["model"] =
      "t = steps * step_latency_s + bytes_sent / link_bw; steps = ranks-1 (all-reduce "
      "2*(ranks-1)); least "
      "squares on the relative error";
  j["repeats"] = r.options.repeats;
  j["warmup"] = r.options.warmup;
  nlohmann::json cs = nlohmann::json::object();
  for (const CollectiveBench& cb : r.collectives) {
    nlohmann::json c = FitJson(cb.fit);
    c["steps"] = cb.steps;
    nlohmann::json pts = nlohmann::json::array();
    for (const NetPoint& p : cb.points) {
      pts.push_back({{"size", p.size},
                     {"bytes_sent", p.bytes_sent},
                     {"time_s", p.time_s},
                     {"gbps", p.gbps()}});
    }
    c["points"] = std::move(pts);
    cs[std::string(CollectiveName(cb.kind))] = std::move(c);
  }
  j["collectives"] = std::move(cs);
  return j.dump(2) + "\n";
}

Result<NetworkCache> ParseNetworkJson(std::string_view text, std::string_view origin) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return CorruptError(origin, ": not a JSON object");
  NetworkCache n;
  for (const char* key : {"link_bw", "step_latency_s"}) {
    if (!j.contains(key)) return CorruptError(origin, ": no \"", key, "\"");
    if (!j[key].is_number()) return CorruptError(origin, ": \"", key, "\" is not a number");
  }
  n.link_bw = j["link_bw"].get<double>();
  n.step_latency_s = j["step_latency_s"].get<double>();
  if (!std::isfinite(n.link_bw) || n.link_bw <= 0) {
    return InvalidArgumentError(origin, ": link_bw must be > 0 bytes/s, got ", n.link_bw);
  }
  if (!std::isfinite(n.step_latency_s) || n.step_latency_s < 0 || n.step_latency_s > 1) {
    return InvalidArgumentError(origin, ": step_latency_s must be in [0, 1] s, got ",
                                n.step_latency_s);
  }
  if (j.contains("ranks") && j["ranks"].is_number_integer()) n.ranks = j["ranks"].get<int>();
  if (j.contains("measured_at") && j["measured_at"].is_string())
    n.measured_at = j["measured_at"].get<std::string>();
  if (j.contains("host") && j["host"].is_string()) n.host = j["host"].get<std::string>();
  return n;
}

}  // namespace si
