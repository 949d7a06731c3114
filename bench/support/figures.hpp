// bench/support/figures.hpp - the main() of every kaizen benchmark program: Google Benchmark's own output
// (console, or --benchmark_format=json/csv; colour only on a terminal), then the program's headline figures
// — kaizen/baseline ratios and derived rates, each computed from benchmarks timed in the same run — as plain
// lines, and, with --kaizen_json=<file>, one JSON document holding every benchmark and every figure as a
// named value. scripts/bench.sh runs every program this way and merges the documents.
//
//   int main(int argc, char** argv) {
//     return kaizen::bench::run(argc, argv, [](const kaizen::bench::Results& r, kaizen::bench::Figures& f) {
//       f.ratio("grpo_kaizen_over_plain", r.real_seconds("BM_kaizen_grpo") / r.real_seconds("BM_plain_grpo"),
//               "policy_loss fwd+bwd time / plain LibTorch (lower is better)");
//     });
//   }
//
// A figure whose benchmarks did not run (filtered out with --benchmark_filter) is skipped, not reported as 0.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

namespace kaizen::bench {

/// Per-iteration times of the benchmarks that ran, by full name ("BM_x/threads:1/real_time").
class Results {
 public:
  /// Seconds per iteration (wall clock, or CPU time of the main thread); NaN if `name` did not run.
  [[nodiscard]] double real_seconds(const std::string& name) const { return find(name, true); }
  [[nodiscard]] double cpu_seconds(const std::string& name) const { return find(name, false); }
  [[nodiscard]] bool has(const std::string& name) const { return times_.count(name) != 0; }
  /// A user counter of a benchmark as Google Benchmark reports it (rates per second); NaN if absent.
  [[nodiscard]] double counter(const std::string& name, const std::string& counter) const {
    const auto it = counters_.find(name);
    if (it == counters_.end()) return std::nan("");
    const auto c = it->second.find(counter);
    return c == it->second.end() ? std::nan("") : c->second;
  }

  /// Records one run. With --benchmark_repetitions the median aggregate stands for its benchmark (the
  /// figures use it); json() lists every repetition and the median.
  void add(const benchmark::BenchmarkReporter::Run& run) {
    using Run = benchmark::BenchmarkReporter::Run;
    if (run.error_occurred) return;
    const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
    if (run.run_type == Run::RT_Iteration && (run.iterations <= 0 || medians_.count(run.run_name.str()) != 0)) return;
    if (run.run_type == Run::RT_Aggregate && !median) return;
    const std::string name = run.run_name.str();
    if (median) medians_.insert(name);
    const double to_seconds = 1.0 / benchmark::GetTimeUnitMultiplier(run.time_unit);  // unit -> s
    times_[name] = {run.GetAdjustedRealTime() * to_seconds, run.GetAdjustedCPUTime() * to_seconds};
    // Google Benchmark finishes the counters before reporting (rates already divided by the time, averages by
    // the iterations): the values are the ones its own tables print.
    for (const auto& [key, c] : run.counters) counters_[name][key] = c.value;
    json_.push_back({{"name", run.benchmark_name()},
                     {"real_seconds", times_[name].first},
                     {"cpu_seconds", times_[name].second},
                     {"iterations", run.iterations},
                     {"counters", counters_[name]}});
  }
  [[nodiscard]] const nlohmann::json& json() const { return json_; }

 private:
  [[nodiscard]] double find(const std::string& name, bool real) const {
    const auto it = times_.find(name);
    if (it == times_.end()) return std::nan("");
    return real ? it->second.first : it->second.second;
  }
  std::map<std::string, std::pair<double, double>> times_;
  std::map<std::string, std::map<std::string, double>> counters_;
  std::set<std::string> medians_;
  nlohmann::json json_ = nlohmann::json::array();
};

/// The headline figures a program reports: ratios (kaizen / baseline, dimensionless) and other derived
/// values with a unit. Names are snake_case and unique within the program.
class Figures {
 public:
  explicit Figures(std::FILE* out = stdout) : out_(out) {}
  void ratio(const std::string& name, double value, const std::string& what) { add(name, value, "ratio", what); }
  void figure(const std::string& name, double value, const std::string& unit, const std::string& what) {
    add(name, value, unit, what);
  }
  [[nodiscard]] const nlohmann::json& json() const { return json_; }

 private:
  void add(const std::string& name, double value, const std::string& unit, const std::string& what) {
    if (!std::isfinite(value)) return;  // its benchmarks did not run
    json_[name] = {{"value", value}, {"unit", unit}, {"what", what}};
    std::fprintf(out_, "%-44s %12.4g %-8s %s\n", name.c_str(), value, unit.c_str(), what.c_str());
  }
  std::FILE* out_;
  nlohmann::json json_ = nlohmann::json::object();
};

namespace detail {

/// Google Benchmark's display reporter for the requested format, with every run also collected.
class CollectingReporter : public benchmark::BenchmarkReporter {
 public:
  CollectingReporter(std::unique_ptr<benchmark::BenchmarkReporter> inner, Results& results)
      : inner_(std::move(inner)), results_(&results) {}
  bool ReportContext(const Context& context) override {
    inner_->SetOutputStream(&GetOutputStream());
    inner_->SetErrorStream(&GetErrorStream());
    return inner_->ReportContext(context);
  }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) results_->add(run);
    inner_->ReportRuns(runs);
  }
  void Finalize() override { inner_->Finalize(); }

 private:
  std::unique_ptr<benchmark::BenchmarkReporter> inner_;
  Results* results_;
};

inline std::unique_ptr<benchmark::BenchmarkReporter> display_reporter(const std::string& format) {
  if (format == "json") return std::make_unique<benchmark::JSONReporter>();
  if (format == "csv") {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // Google Benchmark marks CSV deprecated, still serves it
    return std::make_unique<benchmark::CSVReporter>();
#pragma GCC diagnostic pop
  }
  // Colour codes only on a terminal: piped into a file or CI log the table stays plain text.
  const bool terminal = ::isatty(::fileno(stdout)) != 0;
  return std::make_unique<benchmark::ConsoleReporter>(terminal ? benchmark::ConsoleReporter::OO_ColorTabular
                                                               : benchmark::ConsoleReporter::OO_Tabular);
}

}  // namespace detail

/// Runs the registered benchmarks, prints and (with --kaizen_json=<file>) writes the figures `summarise`
/// derives from them. Returns main's exit code.
inline int run(int argc, char** argv, const std::function<void(const Results&, Figures&)>& summarise) {
  std::string json_path, format = "console";
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strncmp(a, "--kaizen_json=", 14) == 0) {
      json_path = a + 14;
      continue;
    }
    if (std::strncmp(a, "--benchmark_format=", 19) == 0) format = a + 19;
    args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  Results results;
  detail::CollectingReporter reporter(detail::display_reporter(format), results);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::fflush(stdout);
  // With --benchmark_format=json/csv, stdout stays a valid document: the figures go to stderr.
  std::FILE* text = format == "console" ? stdout : stderr;
  Figures figures(text);
  std::fprintf(text, "\nfigures (each from benchmarks of this run):\n");
  summarise(results, figures);
  benchmark::Shutdown();
  if (!json_path.empty()) {
    std::string program = argc > 0 ? argv[0] : "benchmark";
    program = program.substr(program.find_last_of('/') + 1);
    std::ofstream out(json_path);
    out << nlohmann::json{{"program", program}, {"benchmarks", results.json()}, {"figures", figures.json()}}.dump(2)
        << '\n';
    if (!out) {
      std::fprintf(stderr, "%s: cannot write %s\n", program.c_str(), json_path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace kaizen::bench
