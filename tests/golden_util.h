// Locating ../shared/golden for tests. On a user's machine without it, golden tests skip with a message;
// in CI (CI=true) a missing golden directory is a failure.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace si::testing {

inline std::string GoldenDirOrEmpty() {
  const char* env = std::getenv("SI_GOLDEN_DIR");
  std::string dir = env ? env : std::string(SI_SOURCE_DIR) + "/../shared/golden";
  if (std::filesystem::exists(dir + "/manifest.json")) return dir;
  return "";
}

inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

}  // namespace si::testing

// Use at the top of a golden test: binds `golden_dir` or skips/fails.
#define SI_REQUIRE_GOLDEN(golden_dir)                                                              \
  const std::string golden_dir = ::si::testing::GoldenDirOrEmpty();                                \
  if (golden_dir.empty()) {                                                                        \
    if (::si::testing::InCi()) FAIL() << "golden data not found (set SI_GOLDEN_DIR); required in CI"; \
    GTEST_SKIP() << "golden data not found: put ../shared/golden beside the repo or set SI_GOLDEN_DIR"; \
  }
