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

// Drops the whole pages inside [p, p + n) from this process's resident memory (madvise
// MADV_DONTNEED; a hint, errors ignored). For read-only mappings only: the pages come back from
// the file on the next access, unchanged.
void ReleasePages(const void* p, size_t n);
// A large long-lived buffer: 2 MiB aligned, rounded up to 2 MiB, transparent huge pages requested
// (one page fault per 2 MiB instead of per 4 KiB: repacking 4.4 GB of weights took 2x longer with 4
// KiB pages, most of it in the kernel's fault path). Null when out of memory; free with std::free.
void* AllocateHuge(size_t bytes);

// Reads a whole file into a string (small files: JSON, vocab tests).
Result<std::string> ReadFileToString(const std::string& path);
// Writes bytes to `path` atomically: a temporary file in the same folder, then rename, so that an existing
// file is never left half-written.
Status WriteFileAtomic(const std::string& path, const void* data, size_t size);

}  // namespace si
