// Parsing helpers shared by the commands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "si/base/status.h"

namespace si::cli {

// "1,2,3" -> {1, 2, 3}. Spaces are allowed around commas; anything else is an error naming the item.
Result<std::vector<int32_t>> ParseIds(const std::string& text);
std::string JoinIds(const std::vector<int32_t>& ids);

}  // namespace si::cli
