// Times the fuzz target on each input file (no sanitizers, -O2) and prints the worst time per byte
// (inputs of 32 bytes or more; below, fixed costs dominate) and the worst time per input:
//   clang++-14 -std=c++20 -O2 -Iinclude fuzz/reward/time_inputs.cpp -o time_inputs $(pkg-config --cflags --libs ginac)
//   ./time_inputs <dir-or-files...>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_math.cpp"

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    if (std::filesystem::is_directory(argv[i]))
      for (const auto& e : std::filesystem::directory_iterator(argv[i])) files.push_back(e.path());
    else files.emplace_back(argv[i]);
  }
  double worst_per_byte = 0, worst_total = 0;
  std::size_t worst_size = 0;
  std::string worst_name;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), {});
    if (data.empty()) continue;
    // Second run timed: the first pays one-time costs (GiNaC's and the statics' initialisation).
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
    const auto start = std::chrono::steady_clock::now();
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    if (data.size() >= 32 && ns / static_cast<double>(data.size()) > worst_per_byte) {
      worst_per_byte = ns / static_cast<double>(data.size());
      worst_size = data.size();
      worst_name = f.string();
    }
    worst_total = std::max(worst_total, ns);
  }
  std::printf("inputs=%zu worst_ns_per_byte=%.1f (%zu bytes, %s) worst_us_per_input=%.1f\n", files.size(), worst_per_byte,
              worst_size, worst_name.c_str(), worst_total / 1000.0);
}
