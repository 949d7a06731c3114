// kaizen/io/mapped_file.hpp - a read-only memory map of a whole file, released by its destructor.
//
// Checkpoint readers (safetensors, GGUF) parse their headers from the mapped bytes and hand out
// spans into the mapping for tensor data, so a multi-gigabyte checkpoint costs page-cache pages, not
// heap. The map is PROT_READ / MAP_PRIVATE: a writer of the same file during the map's life is the
// caller's problem (POSIX leaves the mapped contents unspecified then), as with any mmap reader.
// An empty file maps to an empty span (mmap refuses length 0). POSIX only (Linux, macOS).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kaizen/core/error.hpp>

namespace kaizen::io {

/// A read-only view of a file's bytes for the lifetime of the object (move-only).
/// Throws kaizen::Error naming the path when the file cannot be opened, stat'ed or mapped.
class MappedFile {
 public:
  MappedFile() = default;

  explicit MappedFile(const std::filesystem::path& path) : path_(path.string()) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("MappedFile: cannot open '", path_, "': ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      fail("MappedFile: cannot stat '", path_, "': ", std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail("MappedFile: '", path_, "' is not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        fail("MappedFile: cannot map '", path_, "' (", size_, " bytes): ", std::strerror(e));
      }
      data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);  // the mapping keeps the file referenced
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept { swap(other); }
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      MappedFile tmp(std::move(other));
      swap(tmp);
    }
    return *this;
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  }

  /// The whole file's bytes (empty for an empty file or a default-constructed object).
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  [[nodiscard]] const std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// The path as given to the constructor (used in error messages).
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  void swap(MappedFile& other) noexcept {
    std::swap(path_, other.path_);
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
  }

  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace kaizen::io
