// Read-only memory-mapped file. Model weights are used in place from the mapping (no copy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "si/base/status.h"

namespace si {

class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole file into a string (small files: JSON, vocab tests).
Result<std::string> ReadFileToString(const std::string& path);
// Writes bytes to `path` atomically: a temporary file in the same folder, then rename, so that an existing
// file is never left half-written.
Status WriteFileAtomic(const std::string& path, const void* data, size_t size);

}  // namespace si
