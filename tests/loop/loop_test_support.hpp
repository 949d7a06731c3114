// Helpers shared by the loop tests: single-threaded LibTorch (bit-for-bit comparisons need a fixed
// reduction order), a scratch directory removed with POSIX calls, and parameter comparisons.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <torch/torch.h>

#include <kaizen/models/llama.hpp>

namespace kaizen_test {

/// Set once per test program: LibTorch runs on one thread (tests REQUIRE it to make sure it ran).
inline const bool kOneThread = [] {
  torch::set_num_threads(1);
  return true;
}();

/// Removes `path` and everything below it, with POSIX calls: with the pip LibTorch, the
/// std::filesystem::remove_all symbols resolve to a copy inside libtorch.so that crashes on a
/// non-empty directory.
inline void remove_tree(const std::filesystem::path& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return;
  if (S_ISDIR(info.st_mode)) {
    if (DIR* dir = ::opendir(path.c_str())) {
      std::vector<std::string> names;
      while (const dirent* entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        if (name != "." && name != "..") names.push_back(name);
      }
      ::closedir(dir);
      for (const std::string& name : names) remove_tree(path / name);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

/// A per-process scratch directory <tmp>/kaizen_test_<name>_<pid>, removed before and after.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("kaizen_test_" + name + "_" + std::to_string(::getpid()))) {
    remove_tree(path);
  }
  ~TempDir() { remove_tree(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

/// Every named parameter of `a` equals `b`'s, bit for bit (one CHECK per tensor, named on failure).
inline void check_same_parameters(kaizen::lm::LlamaModel& a, kaizen::lm::LlamaModel& b) {
  const auto pa = a.named_parameters();
  const auto pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (const auto& p : pa) {
    INFO(p.key());
    CHECK(torch::equal(p.value(), pb[p.key()]));
  }
}

/// Whether every parameter of `a` equals `b`'s, bit for bit.
inline bool same_parameters(kaizen::lm::LlamaModel& a, kaizen::lm::LlamaModel& b) {
  const auto pa = a.parameters();
  const auto pb = b.parameters();
  if (pa.size() != pb.size()) return false;
  for (std::size_t i = 0; i < pa.size(); ++i)
    if (!torch::equal(pa[i], pb[i])) return false;
  return true;
}

}  // namespace kaizen_test
