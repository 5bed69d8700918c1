// The efficiency constants are fitted once on Pope et al. Tables 2-3 (FitEfficiencies): this test
// re-runs the fit and checks the built-in tpu-v4 constants are its optimum, and prints them.
#include <gtest/gtest.h>

#include <cstdio>

#include "si/analysis/cost_model.h"
#include "si/analysis/hardware.h"

namespace si::analysis {
namespace {

TEST(Fit, BuiltInConstantsAreTheFitOnTables23) {
  auto hw = LoadHardware("tpu-v4");
  ASSERT_TRUE(hw.ok());
  const FitResult fit = FitEfficiencies(*hw, PopeTables23());
  std::printf(
      "fit: eff.matmul %.2f  eff.network %.2f  step latency %.2f us  rms log err %.3f  max err "
      "%.1f%%\n",
      fit.eff.matmul, fit.eff.network, fit.step_latency_s * 1e6, fit.rms_log_error,
      100 * fit.max_abs_rel_error);
  EXPECT_NEAR(hw->eff.matmul, fit.eff.matmul, 0.0051);
  EXPECT_NEAR(hw->eff.network, fit.eff.network, 0.026);
  EXPECT_NEAR(hw->step_latency_s, fit.step_latency_s, 0.13e-6);
  EXPECT_LT(fit.max_abs_rel_error, 0.10);
}

}  // namespace
}  // namespace si::analysis
