// netbench (dist/netbench.h) and its use by --layout auto (LocalHardwareWithNetwork), without
// mpirun:
//   - the latency-bandwidth fit recovers known parameters, and stays >= 0 on degenerate data;
//   - RunNetbench over a FakeComm mesh: every collective and size measured, bytes by comm.h's
//   definitions;
//   - network.json round trip, and the cache picked up from $XDG_CACHE_HOME; a corrupt, incomplete
//   or
//     nonsensical file gives a fallback with a message naming the file (never a crash).
// The MPI run itself is the ctest dist_mpi_netbench_np2 (netbench.cmake).
#include "si/dist/netbench.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "si/dist/layout_choice.h"
#include "si/parallel/fake_comm.h"

namespace si {
namespace {

TEST(FitLink, RecoversLatencyAndBandwidth) {
  const double lat = 3e-6, bw = 2e9;
  std::vector<FitPoint> pts;
  for (double b = 4; b <= 16 << 20; b *= 4) {
    for (double s : {1.0, 2.0}) pts.push_back({s, b, s * lat + b / bw});
  }
  const LinkFit f = FitLink(pts);
  EXPECT_NEAR(f.step_latency_s, lat, 1e-12);
  EXPECT_NEAR(f.bw / bw, 1.0, 1e-9);
  EXPECT_LT(f.rms_rel_error, 1e-9);
}

TEST(FitLink, RelativeErrorWeightingKeepsTheSmallMessages) {
  // 10% noise on the largest message must not swamp the latency (an unweighted fit would).
  const double lat = 2e-6, bw = 1e9;
  std::vector<FitPoint> pts;
  for (double b = 4; b <= 16 << 20; b *= 4) pts.push_back({1, b, lat + b / bw});
  pts.back().time_s *= 1.1;
  const LinkFit f = FitLink(pts);
  EXPECT_NEAR(f.step_latency_s, lat, 0.2 * lat);
  EXPECT_NEAR(f.bw / bw, 1.0, 0.15);
}

TEST(FitLink, NeverNegative) {
  // Times that shrink with size (noise): the latency is clamped to 0 and the bandwidth stays
  // finite.
  std::vector<FitPoint> pts = {{1, 4, 5e-6}, {1, 1024, 4e-6}, {1, 65536, 3e-6}};
  const LinkFit f = FitLink(pts);
  EXPECT_GE(f.step_latency_s, 0);
  EXPECT_GT(f.bw, 0);
  EXPECT_TRUE(std::isfinite(f.bw));
  EXPECT_EQ(FitLink({}).bw, 0);  // nothing measured: invalid (bw 0)
}

TEST(Netbench, RunsEveryCollectiveOverAComm) {
  NetbenchOptions o;
  o.max_bytes = 1024;
  o.repeats = 3;
  o.warmup = 1;
  std::vector<NetbenchResult> results(2);
  Status st = RunFakeMesh({2, 1, 1}, [&](Mesh& mesh) -> Status {
    SI_ASSIGN_OR_RETURN(NetbenchResult r, RunNetbench(mesh.world(), o));
    results[mesh.rank()] = r;
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.message();
  const NetbenchResult& r = results[0];
  EXPECT_EQ(r.ranks, 2);
  EXPECT_EQ(r.hosts, 1);
  ASSERT_EQ(r.collectives.size(), 4u);
  const int64_t sizes[] = {4, 16, 64, 256, 1024};
  for (const CollectiveBench& cb : r.collectives) {
    ASSERT_EQ(cb.points.size(), 5u) << CollectiveName(cb.kind);
    for (size_t i = 0; i < 5; ++i) {
      const NetPoint& p = cb.points[i];
      EXPECT_EQ(p.size, sizes[i]);
      // comm.h: (K-1) * size for all-gather / reduce-scatter / all-to-all, 2 (K-1)/K * size for
      // all-reduce (its element count padded to a multiple of K: 4 B = 1 f32 element sends 8 B on 2
      // ranks).
      const int64_t expect =
          cb.kind == CollectiveKind::kAllReduce ? 2 * ((p.size / 4 + 1) / 2) * 4 : p.size;
      EXPECT_EQ(p.bytes_sent, expect) << CollectiveName(cb.kind) << " " << p.size;
      EXPECT_GT(p.time_s, 0);
    }
    EXPECT_EQ(cb.steps, cb.kind == CollectiveKind::kAllReduce ? 2 : 1);
    EXPECT_GT(cb.fit.bw, 0);
    EXPECT_GE(cb.fit.step_latency_s, 0);
  }
  // Every rank ends with the same times (max over ranks, then the median).
  EXPECT_EQ(results[1].collectives[0].points[2].time_s, r.collectives[0].points[2].time_s);
  // Round trip through network.json.
  auto n = ParseNetworkJson(NetbenchToJson(r), "network.json");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(n->link_bw, r.overall.bw);
  EXPECT_EQ(n->step_latency_s, r.overall.step_latency_s);
  EXPECT_EQ(n->ranks, 2);
  EXPECT_FALSE(n->measured_at.empty());
  const auto j = nlohmann::json::parse(NetbenchToJson(r));
  EXPECT_EQ(j["collectives"].size(), 4u);
  EXPECT_EQ(j["collectives"]["all-to-all"]["points"].size(), 5u);
  EXPECT_NE(NetbenchTable(r).find("reduce-scatter"), std::string::npos);
}

TEST(Netbench, BadOptionsAndOneRank) {
  NetbenchOptions o;
  o.max_bytes = 2;
  Status st =
      RunFakeMesh({2, 1, 1}, [&](Mesh& mesh) { return RunNetbench(mesh.world(), o).status(); });
  EXPECT_NE(st.message().find("--max-bytes"), std::string::npos) << st.message();
  o = {};
  o.repeats = 0;
  st = RunFakeMesh({2, 1, 1}, [&](Mesh& mesh) { return RunNetbench(mesh.world(), o).status(); });
  EXPECT_NE(st.message().find("--repeats"), std::string::npos) << st.message();
  o = {};
  st = RunFakeMesh({1, 1, 1}, [&](Mesh& mesh) { return RunNetbench(mesh.world(), o).status(); });
  EXPECT_NE(st.message().find("mpirun -np 2"), std::string::npos) << st.message();
}

TEST(NetworkJson, ClearErrors) {
  EXPECT_NE(
      ParseNetworkJson("{not json", "f.json").status().message().find("f.json: not a JSON object"),
      std::string::npos);
  EXPECT_NE(ParseNetworkJson(R"({"link_bw": 1e9})", "f").status().message().find("step_latency_s"),
            std::string::npos);
  EXPECT_NE(ParseNetworkJson(R"({"link_bw": "fast", "step_latency_s": 1e-6})", "f")
                .status()
                .message()
                .find("not a number"),
            std::string::npos);
  EXPECT_NE(ParseNetworkJson(R"({"link_bw": -1, "step_latency_s": 1e-6})", "f")
                .status()
                .message()
                .find("> 0"),
            std::string::npos);
  EXPECT_FALSE(ParseNetworkJson(R"({"link_bw": 1e9, "step_latency_s": -1e-6})", "f").ok());
  EXPECT_TRUE(ParseNetworkJson(R"({"link_bw": 1e9, "step_latency_s": 0})", "f").ok());
}

// $XDG_CACHE_HOME pointed at a fresh directory with a roofline (needed by the 'local' hardware) and
// the given network.json (none if empty). Restores the environment on destruction.
class CacheDir {
 public:
  explicit CacheDir(const std::string& network_json) {
    const char* old = std::getenv("XDG_CACHE_HOME");
    had_old_ = old != nullptr;
    if (had_old_) old_ = old;
    dir_ = std::filesystem::temp_directory_path() / StrCat("si_netbench_test_", ::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "scaleinfer");
    std::ofstream(dir_ / "scaleinfer" / "roofline.json")
        << R"({"name": "local", "peak_flops": {"f32": 1e11}, "mem_bw": 1e10, "mem_capacity": 1e10})";
    if (!network_json.empty()) std::ofstream(dir_ / "scaleinfer" / "network.json") << network_json;
    setenv("XDG_CACHE_HOME", dir_.c_str(), 1);
  }
  ~CacheDir() {
    if (had_old_) {
      setenv("XDG_CACHE_HOME", old_.c_str(), 1);
    } else {
      unsetenv("XDG_CACHE_HOME");
    }
    std::filesystem::remove_all(dir_);
  }

 private:
  std::filesystem::path dir_;
  bool had_old_ = false;
  std::string old_;
};

TEST(LocalHardwareWithNetwork, PicksUpTheMeasuredNetwork) {
  CacheDir d(
      R"({"link_bw": 1.25e9, "step_latency_s": 7.5e-6, "ranks": 2, "measured_at": "2026-01-02T03:04:05Z"})");
  std::string note;
  auto hw = LocalHardwareWithNetwork(&note);
  ASSERT_TRUE(hw.ok()) << hw.status().message();
  EXPECT_EQ(hw->link_bw, 1.25e9);
  EXPECT_EQ(hw->step_latency_s, 7.5e-6);
  EXPECT_NE(note.find("network measured by netbench on 2 ranks at 2026-01-02T03:04:05Z: 1.25 GB/s"),
            std::string::npos)
      << note;
  EXPECT_NE(note.find(NetworkCachePath()), std::string::npos) << note;
  // ... and ChooseLayouts prices collectives with it: a slower network makes the comm time longer.
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.model_dim = 64;
  c.ffn_dim = 256;
  c.num_heads = c.num_kv_heads = 4;
  c.head_dim = 16;
  c.num_layers = 2;
  c.vocab_size = 1000;
  ApplyArchTraits(c);
  auto fast = ChooseLayouts(c, {2, 1, 1}, *hw, 2, 16, 4, 4, FfnLayout::k2dWs, AttnSharding::kHeads);
  ASSERT_TRUE(fast.ok()) << fast.status().message();
  analysis::HardwareSpec slow_hw = *hw;
  slow_hw.link_bw /= 100;
  auto slow =
      ChooseLayouts(c, {2, 1, 1}, slow_hw, 2, 16, 4, 4, FfnLayout::k2dWs, AttnSharding::kHeads);
  ASSERT_TRUE(slow.ok());
  EXPECT_GT(slow->decode_s, fast->decode_s);
}

TEST(LocalHardwareWithNetwork, MissingOrBadCacheFallsBackWithAMessage) {
  struct Case {
    std::string json, expect;
  } cases[] = {
      {"", "network not measured (run `mpirun -np 2 scaleinfer netbench`): assuming 4 GB/s"},
      {"{\"link_bw\": 1e9, \"step_lat", "network.json: not a JSON object"},
      {"[1, 2, 3]", "network.json: not a JSON object"},
      {R"({"link_bw": "1e9", "step_latency_s": 1e-6})", "\"link_bw\" is not a number"},
      {R"({"step_latency_s": 1e-6})", "no \"link_bw\""},
      {R"({"link_bw": 0, "step_latency_s": 1e-6})", "link_bw must be > 0"},
      {R"({"link_bw": 1e9, "step_latency_s": 5})", "step_latency_s must be in [0, 1]"},
  };
  for (const Case& c : cases) {
    CacheDir d(c.json);
    std::string note;
    auto hw = LocalHardwareWithNetwork(&note);
    ASSERT_TRUE(hw.ok()) << hw.status().message();
    EXPECT_EQ(hw->link_bw, 4e9) << c.json;
    EXPECT_EQ(hw->step_latency_s, 5e-6) << c.json;
    EXPECT_NE(note.find(c.expect), std::string::npos) << c.json << " -> " << note;
    if (!c.json.empty()) {
      EXPECT_NE(note.find("ignoring " + NetworkCachePath()), std::string::npos) << note;
      EXPECT_NE(note.find("assuming 4 GB/s, 5 us per step"), std::string::npos) << note;
    }
  }
}

}  // namespace
}  // namespace si
