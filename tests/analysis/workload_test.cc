// The survey's workload analysis: Table 3 (BERT-Base per op at l = 128, 512, 4096) and the
// BERT-Base series of Figures 4-6, with the survey convention.
#include "si/analysis/workload.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "si/analysis/models.h"

namespace si::analysis {
namespace {

ModelConfig Bert(const char* name = "bert-base") {
  auto m = ModelPreset(name);
  EXPECT_TRUE(m.ok());
  return m->config;
}

// Rounds to `digits` decimals as the paper prints.
double Round(double v, int digits) {
  const double s = std::pow(10.0, digits);
  return std::round(v * s) / s;
}

struct Row {
  int group;  // -1: total
  double gflops;
  int flops_pct_digits;
  double flops_pct;
  double gmops;
  int gmops_digits;
  double mops_pct;
  double ai;
  int ai_digits;
};

// "To the printed precision": within one unit of the last printed digit. The paper mixes rounding
// and truncation (63.625 -> 63.62 but 438.857 -> 438.86; 46.5% -> 46) and adjusts shares to sum to
// 100, so an exact-rounding test would test the typesetting, not the model.
void CheckTable3(int64_t l, const std::vector<Row>& rows) {
  const WorkloadResult r = AnalyzeWorkload(Bert(), l, Convention::kSurvey);
  auto unit = [](int digits) { return std::pow(10.0, -digits) * 1.0001; };
  for (const Row& row : rows) {
    const Cost c = row.group < 0 ? r.total : r.groups[row.group];
    const char* name = row.group < 0 ? "total" : kGroupNames[row.group];
    std::printf(
        "l=%ld %-10s GFLOPs %9.3f (paper %.2f)  GMOPs %7.4f (paper %g)  AI %8.3f (paper %g)  "
        "%%F %5.1f (%g)  %%M %5.1f (%g)\n",
        l, name, c.flops / 1e9, row.gflops, c.bytes / 1e9, row.gmops, c.intensity(), row.ai,
        100 * c.flops / r.total.flops, row.flops_pct, 100 * c.bytes / r.total.bytes, row.mops_pct);
    EXPECT_NEAR(c.flops / 1e9, row.gflops, unit(2)) << name << " l=" << l;
    EXPECT_NEAR(c.bytes / 1e9, row.gmops, unit(row.gmops_digits)) << name << " l=" << l;
    EXPECT_NEAR(c.intensity(), row.ai, unit(row.ai_digits)) << name << " l=" << l;
    EXPECT_NEAR(100 * c.flops / r.total.flops, row.flops_pct, unit(row.flops_pct_digits))
        << name << " l=" << l;
    EXPECT_NEAR(100 * c.bytes / r.total.bytes, row.mops_pct, unit(0)) << name << " l=" << l;
  }
}

TEST(SurveyTable3, BertBaseL128) {
  // Act-to-act GMOPs printed 0.006 is a typo: AI 63.62 and the 7% share both give 0.0094 (0.0063 is
  // the 4-head value of Table 10); tested against the self-consistent 0.009.
  CheckTable3(128, {{0, 7.25, 0, 32, 0.04, 2, 27, 192.00, 2},
                    {1, 0.60, 0, 3, 0.009, 3, 7, 63.62, 2},
                    {2, 14.50, 0, 65, 0.07, 2, 49, 211.86, 2},
                    {3, 0.08, 1, 0.3, 0.02, 2, 18, 3.14, 2},
                    {-1, 22.42, 0, 100, 0.14, 2, 100, 159.68, 2}});
}

TEST(SurveyTable3, BertBaseL512) {
  // Act-to-act MOP share printed 20%: the printed shares sum to 98%, and 0.0944 / 0.4200 GB
  // is 22.5%; tested against the self-consistent 22%.
  CheckTable3(512, {{0, 28.99, 0, 30, 0.07, 2, 16, 438.86, 2},
                    {1, 9.62, 0, 10, 0.09, 2, 22, 101.95, 2},
                    {2, 57.98, 0, 60, 0.10, 2, 25, 558.54, 2},
                    {3, 0.42, 1, 0.4, 0.16, 2, 37, 2.73, 2},
                    {-1, 97.02, 0, 100, 0.42, 2, 100, 231.0, 1}});
}

TEST(SurveyTable3, BertBaseL4096) {
  // "Other" AI printed 2.16: the printed FLOPs/MOPs give 2.1655 (the print truncates); within one
  // unit.
  CheckTable3(4096, {{0, 231.93, 0, 18, 0.33, 2, 3, 702.17, 2},
                     {1, 616.02, 0, 46, 4.98, 2, 44, 123.63, 2},
                     {2, 463.86, 0, 35, 0.43, 2, 4, 1068.52, 2},
                     {3, 11.85, 0, 1, 5.47, 2, 49, 2.16, 2},
                     {-1, 1323.66, 0, 100, 11.22, 2, 100, 117.96, 2}});
}

TEST(SurveyFigures456, BertBaseSeries) {
  const int64_t ls[] = {128, 256, 512, 1024, 2048, 4096};
  const double gflops[] = {22, 46, 97, 214, 505, 1324};
  const double gmops[] = {0.1, 0.2, 0.4, 1.1, 3.2, 11.2};
  // Fig. 6 prints 117 at l=4096 where Table 3 prints 117.96 (the figure truncates): within one
  // unit.
  const double ai[] = {160, 215, 231, 202, 156, 117};
  for (int i = 0; i < 6; ++i) {
    const WorkloadResult r = AnalyzeWorkload(Bert(), ls[i], Convention::kSurvey);
    std::printf("l=%ld GFLOPs %.1f GMOPs %.2f AI %.1f\n", ls[i], r.total.flops / 1e9,
                r.total.bytes / 1e9, r.total.intensity());
    EXPECT_NEAR(r.total.flops / 1e9, gflops[i], 1.0001) << ls[i];
    EXPECT_NEAR(r.total.bytes / 1e9, gmops[i], 0.10001) << ls[i];
    EXPECT_NEAR(r.total.intensity(), ai[i], 1.0001) << ls[i];
    EXPECT_EQ(std::round(r.total.flops / 1e9), gflops[i]) << ls[i];  // these also round exactly
    EXPECT_NEAR(Round(r.total.bytes / 1e9, 1), gmops[i], 1e-9) << ls[i];
  }
  // Shape: intensity rises to l=512 then falls (act-to-act and softmax take over).
  EXPECT_GT(AnalyzeWorkload(Bert(), 512, Convention::kSurvey).total.intensity(),
            AnalyzeWorkload(Bert(), 128, Convention::kSurvey).total.intensity());
}

TEST(SurveyTable10, FourHeadValidation) {
  // Held-back check of the reconstructed convention (BERT-Base with h = 4, Table 10 as in the
  // notes): act-to-act AI 95.69 / 219.04 / 350.61; "Other" 5.41 GFLOPs, 2.25 GMOPs at l=4096,
  // AI 3.31 / 3.07 / 2.40.
  ModelConfig c = Bert();
  c.num_heads = 4;
  c.num_kv_heads = 4;
  c.head_dim = 192;
  const double a2a[] = {95.69, 219.04, 350.61}, other[] = {3.31, 3.07, 2.40};
  const int64_t ls[] = {128, 512, 4096};
  for (int i = 0; i < 3; ++i) {
    const WorkloadResult r = AnalyzeWorkload(c, ls[i], Convention::kSurvey);
    EXPECT_NEAR(r.groups[1].intensity(), a2a[i], 0.010001) << ls[i];
    EXPECT_NEAR(r.groups[3].intensity(), other[i], 0.010001) << ls[i];
  }
  const WorkloadResult r = AnalyzeWorkload(c, 4096, Convention::kSurvey);
  EXPECT_NEAR(r.groups[3].flops / 1e9, 5.41, 0.010001);
  EXPECT_NEAR(r.groups[3].bytes / 1e9, 2.25, 0.010001);
}

TEST(Workload, DecoderIsMemoryBoundNativeConvention) {
  // GPT-2 generation reloads the weights every token: ~2 FLOPs per weight byte in the survey
  // convention.
  auto g = ModelPreset("gpt2");
  ASSERT_TRUE(g.ok());
  const WorkloadResult r = AnalyzeWorkload(g->config, 512, Convention::kSurvey);
  EXPECT_TRUE(r.decoder);
  EXPECT_LT(r.total.intensity(), 3.0);
  EXPECT_GT(r.total.intensity(), 1.0);
  const WorkloadResult n = AnalyzeWorkload(Bert(), 512, Convention::kNative);
  EXPECT_GT(n.total.flops, 0);
  EXPECT_LT(n.total.intensity(),
            AnalyzeWorkload(Bert(), 512, Convention::kSurvey).total.intensity());
}

}  // namespace
}  // namespace si::analysis
