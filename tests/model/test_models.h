// Small synthetic GGUF models for tests, written once per process under the test's temp dir.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "si/model/synthetic.h"

namespace si::testing {

// Writes (once) a tiny model of `arch`/`dtype` with `dims` and returns its path.
inline std::string TinyModelPath(Arch arch, DType dtype, const std::string& dims, uint64_t seed = 7) {
  const std::string dir = ::testing::TempDir() + "/si_models";
  std::filesystem::create_directories(dir);
  std::string key = std::string(ArchName(arch)) + "-" + std::string(DTypeName(dtype)) + "-" + dims + "-" +
                    std::to_string(seed);
  for (char& c : key) {
    if (c == ',' || c == '=') c = '_';
  }
  const std::string path = dir + "/" + key + ".gguf";
  if (!std::filesystem::exists(path)) {
    auto config = SyntheticConfig(arch, dims);
    EXPECT_TRUE(config.ok()) << config.status().message();
    Status st = WriteSyntheticModel({*config, dtype, seed}, path);
    EXPECT_TRUE(st.ok()) << st.message();
  }
  return path;
}

}  // namespace si::testing
