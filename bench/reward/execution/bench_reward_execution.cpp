// Execution-reward throughput, each against a baseline measured in the same run:
//   BM_scorer          Scorer (pool, timeouts, failure records) vs the plain serial loop
//                      kaizen::score over the same judge; x_serial = scorer time / serial time.
//   BM_sql_execution   SqlExecutionReward::score_sql (read-only connection pool, authorizer,
//                      progress handler, canonical rows, multiset compare; gold cached) vs running
//                      the candidate alone on a plain sqlite3 connection; x_raw_sqlite.
//   BM_python_sandbox  run_python("pass") in bubblewrap vs fork/exec of python3 -I -B without a
//                      sandbox; x_bare_python.
#include <benchmark/benchmark.h>

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <kaizen/core/reward.hpp>
#include <kaizen/reward/code_sandbox.hpp>
#include <kaizen/reward/scorer.hpp>
#include <kaizen/reward/sql.hpp>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A judge doing `work` iterations of arithmetic (about 1 ns each).
struct BusyJudge {
  int work = 20000;
  double operator()(const kaizen::Prompt&, const kaizen::Completion& c) const {
    double x = static_cast<double>(c.text.size());
    for (int i = 0; i < work; ++i) x = std::sqrt(x + i);
    return x > 0 ? 1.0 : 0.0;
  }
};

void BM_scorer(benchmark::State& state) {
  const std::size_t n = 2000;
  const int work = static_cast<int>(state.range(0));
  const auto threads = static_cast<std::size_t>(state.range(1));
  std::vector<kaizen::Prompt> prompts(n);
  std::vector<kaizen::Completion> completions(n);
  for (std::size_t i = 0; i < n; ++i) completions[i].text = std::string(i % 50, 'x');
  kaizen::reward::Scorer scorer(BusyJudge{work}, {.threads = threads, .timeout_seconds = 10.0});
  BusyJudge serial{work};
  double scorer_s = 0, serial_s = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    benchmark::DoNotOptimize(scorer.score(prompts, completions).rewards.data());
    scorer_s += seconds_since(t0);
    t0 = Clock::now();
    benchmark::DoNotOptimize(kaizen::score(serial, prompts, completions).data());
    serial_s += seconds_since(t0);
  }
  state.counters["items/s"] = static_cast<double>(n) * static_cast<double>(state.iterations()) / scorer_s;
  state.counters["x_serial"] = scorer_s / serial_s;
}

std::string build_db() {
  const std::string path = std::string(KAIZEN_EXEC_BUILD_DIR) + "/bench_shop.db";
  std::remove(path.c_str());
  std::ifstream in(std::string(KAIZEN_EXEC_DATA_DIR) + "/shop.sql");
  std::stringstream sql;
  sql << in.rdbuf();
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, sql.str().c_str(), nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return path;
}

void BM_sql_execution(benchmark::State& state) {
  static const std::string path = build_db();
  const auto db = std::make_shared<const kaizen::reward::SqlDatabase>(path);
  kaizen::reward::SqlExecutionReward ex(db);
  const std::string gold =
      "SELECT c.name, SUM(o.quantity) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id";
  const std::string candidate =
      "SELECT name, (SELECT SUM(quantity) FROM orders WHERE customer_id = customers.id) FROM customers "
      "WHERE id IN (SELECT customer_id FROM orders)";
  sqlite3* raw = nullptr;
  sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  double ours = 0, base = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    benchmark::DoNotOptimize(ex.score_sql(candidate, gold));
    ours += seconds_since(t0);
    t0 = Clock::now();
    int rows = 0;
    sqlite3_exec(raw, candidate.c_str(), [](void* r, int, char**, char**) { ++*static_cast<int*>(r); return 0; },
                 &rows, nullptr);
    benchmark::DoNotOptimize(rows);
    base += seconds_since(t0);
  }
  sqlite3_close(raw);
  state.counters["queries/s"] = static_cast<double>(state.iterations()) / ours;
  state.counters["x_raw_sqlite"] = ours / base;
}

void BM_python_sandbox(benchmark::State& state) {
  kaizen::reward::SandboxOptions o;
  if (::access(o.bwrap.c_str(), X_OK) != 0) {
    state.SkipWithError("no bubblewrap");
    return;
  }
  double ours = 0, base = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    const auto r = kaizen::reward::run_python("pass", "", o);
    benchmark::DoNotOptimize(r.exit_code);
    ours += seconds_since(t0);
    t0 = Clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) {
      char* argv[] = {const_cast<char*>("/usr/bin/python3"), const_cast<char*>("-I"), const_cast<char*>("-B"),
                      const_cast<char*>("-c"), const_cast<char*>("pass"), nullptr};
      ::execv(argv[0], argv);
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    base += seconds_since(t0);
  }
  state.counters["runs/s"] = static_cast<double>(state.iterations()) / ours;
  state.counters["x_bare_python"] = ours / base;
}

}  // namespace

BENCHMARK(BM_scorer)->Args({0, 2})->Args({20000, 1})->Args({20000, 2})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sql_execution)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_python_sandbox)->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
