// Helpers of the execution-reward tests: the shop database built from data/shop.sql into the build
// folder, and whole-file reads for the "nothing changed" checks.
#pragma once

#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef KAIZEN_EXEC_DATA_DIR
#error "KAIZEN_EXEC_DATA_DIR must name tests/reward/execution/data"
#endif
#ifndef KAIZEN_EXEC_BUILD_DIR
#error "KAIZEN_EXEC_BUILD_DIR must name the test's build folder"
#endif

namespace kaizen_test {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Builds <build>/<pid>-<name> from data/shop.sql (a fresh file every call) and returns its path. ctest
/// runs every test case as its own process, two at a time: a file per process keeps one from rebuilding
/// the database while another reads it ("database is locked"). The files are removed at exit.
inline std::string build_shop_db(const std::string& name = "shop.db") {
  static std::vector<std::string> built;
  static const bool cleanup_registered = [] {
    std::atexit([] {
      for (const std::string& file : built) std::remove(file.c_str());
    });
    return true;
  }();
  (void)cleanup_registered;
  const std::string path = std::string(KAIZEN_EXEC_BUILD_DIR) + "/" + std::to_string(::getpid()) + "-" + name;
  std::remove(path.c_str());
  built.push_back(path);
  const std::string sql = read_file(std::string(KAIZEN_EXEC_DATA_DIR) + "/shop.sql");
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot create " + path);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string message = err != nullptr ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  if (rc != SQLITE_OK) throw std::runtime_error("shop.sql failed: " + message);
  return path;
}

}  // namespace kaizen_test
