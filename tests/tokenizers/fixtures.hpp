// tests/tokenizers/fixtures.hpp - the Python-made reference data of the tokenizer tests: runs
// make_fixtures.py once into the build folder (atomically: a temporary folder renamed into place) and
// reads its JSON files. Without Python or its packages the tests print KAIZEN_SKIP.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace kaizen_test {

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_text(path)); }

/// The fixture folder, or nullopt (after printing KAIZEN_SKIP) when Python or a package is missing.
/// Throws std::runtime_error when the generator fails for another reason.
inline std::optional<std::string> tokenizer_fixtures() {
  namespace fs = std::filesystem;
  static const std::optional<std::string> dir = []() -> std::optional<std::string> {
    const std::string out = KAIZEN_TOKENIZERS_FIXTURES;
    if (fs::exists(out + "/done")) return out;
    const std::string python = KAIZEN_TOKENIZERS_PYTHON;
    if (python.empty() || !fs::exists(python)) {
      std::cout << "KAIZEN_SKIP: no Python interpreter for the tokenizer references (KAIZEN_PYTHON)\n";
      return std::nullopt;
    }
    const std::string tmp = out + ".tmp." + std::to_string(::getpid());
    const std::string cmd = "\"" + python + "\" \"" + KAIZEN_TOKENIZERS_SCRIPT + "\" \"" + tmp + "\" > \"" + tmp +
                            ".log\" 2>&1";
    const int rc = std::system(cmd.c_str());
    const int status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (status == 77) {
      std::cout << "KAIZEN_SKIP: a Python package for the tokenizer references is missing:\n"
                << read_text(tmp + ".log") << "\n";
      return std::nullopt;
    }
    if (status != 0) throw std::runtime_error("make_fixtures.py failed:\n" + read_text(tmp + ".log"));
    std::ofstream(tmp + "/done") << "ok\n";
    std::error_code ec;
    fs::rename(tmp, out, ec);
    if (ec) fs::remove_all(tmp, ec);  // another test process won the race
    if (!fs::exists(out + "/done")) throw std::runtime_error("tokenizer fixtures: " + out + " missing after generation");
    return out;
  }();
  return dir;
}

}  // namespace kaizen_test
