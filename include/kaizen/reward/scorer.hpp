// kaizen/reward/scorer.hpp - a batched, multi-threaded scorer for any kaizen::OutcomeReward that
// never crashes a training step: every call has a wall-clock timeout, and a call that throws,
// times out or returns a non-finite value gives `failure_reward` (0) plus a counted failure record
// (index, kind, message) that the caller can log.
//
// Rules:
//   - Work units: one item per unit for a per-sample reward; for a reward that only has the batched
//     form, chunks of `chunk_size` items (a failure then fails every item of its chunk).
//   - `threads` workers take units from a shared counter; each unit's call starts its own clock.
//   - A call that has not returned `timeout` after it started is abandoned: its items fail with kind
//     timeout, the worker thread running it is detached and a fresh worker replaces it, so a hanging
//     judge blocks the batch for at most `timeout`. The abandoned thread finishes (or hangs) on its
//     own; when it returns, its result is dropped.
//   - Cost of that choice (threads, not processes): a call cannot be killed, so a judge that never
//     returns keeps one thread (its stack and whatever it holds) for the life of the process. The
//     scorer owns the reward through a shared_ptr and each batch copies its prompts and completions,
//     so an abandoned call never touches freed memory. score() refuses to start (kaizen::Error) once
//     `max_abandoned` abandoned calls are still running. For untrusted code, where a real kill is
//     needed, use process isolation: reward/code_sandbox.hpp runs each program in its own sandbox
//     with a wall-clock SIGKILL.
//   - When the system refuses a new thread the batch goes on with the workers it has; with none
//     left, the items nobody took fail (kind exception, "no worker thread could be started").
//   - The reward is called from `threads` threads at once: it must be safe to call concurrently
//     (threads = 1 calls it from one worker thread at a time).
//   - The library never prints: failures go to the report and to `on_failure` (called on the
//     caller's thread after the batch, in index order).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::reward {

/// Why one item got the failure reward.
enum class FailureKind { exception, timeout, non_finite, wrong_count };

[[nodiscard]] constexpr const char* to_string(FailureKind kind) noexcept {
  switch (kind) {
    case FailureKind::exception: return "exception";
    case FailureKind::timeout: return "timeout";
    case FailureKind::non_finite: return "non_finite";
    case FailureKind::wrong_count: return "wrong_count";
  }
  return "unknown";
}

/// One failed item.
struct ScoreFailure {
  std::size_t index = 0;  ///< the item's index in the batch
  FailureKind kind = FailureKind::exception;
  std::string message;
};

/// What score() returns.
struct ScoreReport {
  std::vector<double> rewards;          ///< one per item; failure_reward where it failed
  std::vector<ScoreFailure> failures;   ///< in index order
  std::size_t exceptions = 0, timeouts = 0, non_finite = 0, wrong_count = 0;
  double seconds = 0.0;                 ///< wall time of the batch
};

struct ScorerOptions {
  std::size_t threads = 0;                 ///< 0 = std::thread::hardware_concurrency() (at least 1)
  double timeout_seconds = 30.0;           ///< per call; > 0
  double failure_reward = 0.0;             ///< the reward of a failed item; finite
  std::size_t chunk_size = 64;             ///< items per call for a batched-only reward; > 0
  std::size_t max_abandoned = 256;         ///< score() throws once this many abandoned calls still run
  std::function<void(const ScoreFailure&)> on_failure;  ///< optional log hook
};

inline void validate(const ScorerOptions& o) {
  KAIZEN_CHECK(std::isfinite(o.timeout_seconds) && o.timeout_seconds > 0.0,
               "ScorerOptions: timeout_seconds must be finite and > 0, got ", o.timeout_seconds);
  KAIZEN_CHECK(std::isfinite(o.failure_reward), "ScorerOptions: failure_reward must be finite, got ",
               o.failure_reward);
  KAIZEN_CHECK(o.chunk_size > 0, "ScorerOptions: chunk_size must be > 0, got ", o.chunk_size);
  KAIZEN_CHECK(o.max_abandoned > 0, "ScorerOptions: max_abandoned must be > 0, got ", o.max_abandoned);
}

/// Scores batches with a thread pool and per-call timeouts (see the header comment).
template <OutcomeReward R>
class Scorer {
 public:
  explicit Scorer(R reward, ScorerOptions options = {})
      : Scorer(std::make_shared<R>(std::move(reward)), std::move(options)) {}

  explicit Scorer(std::shared_ptr<R> reward, ScorerOptions options = {})
      : reward_(std::move(reward)), options_(std::move(options)), shared_(std::make_shared<Shared>()) {
    KAIZEN_CHECK(reward_ != nullptr, "Scorer: the reward pointer is null");
    validate(options_);
    if (options_.threads == 0) options_.threads = std::max(1U, std::thread::hardware_concurrency());
  }

  Scorer(const Scorer&) = delete;
  Scorer& operator=(const Scorer&) = delete;

  [[nodiscard]] const ScorerOptions& options() const noexcept { return options_; }
  [[nodiscard]] R& reward() noexcept { return *reward_; }

  /// Abandoned calls (past their timeout) that have not returned yet.
  [[nodiscard]] std::size_t abandoned_running() const noexcept { return shared_->abandoned.load(); }
  /// Failures over every batch this scorer scored.
  [[nodiscard]] std::size_t total_failures() const noexcept { return shared_->failures.load(); }

  /// Scores prompts[i] x completions[i]; never throws for a failing reward call.
  [[nodiscard]] ScoreReport score(std::span<const Prompt> prompts, std::span<const Completion> completions) {
    KAIZEN_CHECK(prompts.size() == completions.size(), "Scorer::score: ", prompts.size(), " prompts but ",
                 completions.size(), " completions");
    KAIZEN_CHECK(abandoned_running() < options_.max_abandoned, "Scorer::score: ", abandoned_running(),
                 " timed-out calls are still running (max_abandoned = ", options_.max_abandoned,
                 "); the reward hangs: fix it or raise the limit");
    const auto t0 = Clock::now();
    auto batch = std::make_shared<Batch>();
    batch->prompts.assign(prompts.begin(), prompts.end());
    batch->completions.assign(completions.begin(), completions.end());
    const std::size_t n = completions.size();
    batch->unit_size = kPerSample ? 1 : options_.chunk_size;
    const std::size_t units = (n + batch->unit_size - 1) / batch->unit_size;
    batch->units.resize(units);
    ScoreReport report;
    report.rewards.assign(n, options_.failure_reward);
    if (units > 0) run(batch, units);

    for (std::size_t u = 0; u < units; ++u) {
      Unit& unit = batch->units[u];
      const std::size_t begin = u * batch->unit_size;
      const std::size_t end = std::min(n, begin + batch->unit_size);
      if (unit.state == State::done) {
        if (unit.values.size() != end - begin) {
          for (std::size_t i = begin; i < end; ++i)
            add_failure(report, {i, FailureKind::wrong_count,
                                 kaizen::detail::concat("the batched reward returned ", unit.values.size(), " scores for ",
                                                end - begin, " items")});
          continue;
        }
        for (std::size_t i = begin; i < end; ++i) {
          const double v = unit.values[i - begin];
          if (std::isfinite(v)) {
            report.rewards[i] = v;
          } else {
            add_failure(report, {i, FailureKind::non_finite, kaizen::detail::concat("the reward returned ", v)});
          }
        }
      } else {
        const FailureKind kind = unit.state == State::timed_out ? FailureKind::timeout : FailureKind::exception;
        const std::string message =
            kind == FailureKind::timeout
                ? kaizen::detail::concat("the call did not return within ", options_.timeout_seconds, " s (abandoned)")
                : unit.error;
        for (std::size_t i = begin; i < end; ++i) add_failure(report, {i, kind, message});
      }
    }
    report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    shared_->failures += report.failures.size();
    if (options_.on_failure)
      for (const ScoreFailure& f : report.failures) options_.on_failure(f);
    return report;
  }

  /// The batched OutcomeReward form: the rewards of score(); failures go to on_failure only.
  [[nodiscard]] std::vector<double> operator()(std::span<const Prompt> prompts, std::span<const Completion> completions) {
    return score(prompts, completions).rewards;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr bool kPerSample = PerSampleReward<R>;
  static constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();

  enum class State { pending, running, done, failed, timed_out };

  struct Unit {
    State state = State::pending;
    Clock::time_point start{};
    std::vector<double> values;
    std::string error;
  };

  struct Shared {
    std::atomic<std::size_t> abandoned{0};
    std::atomic<std::size_t> failures{0};
  };

  struct Batch {
    std::vector<Prompt> prompts;          // copies: an abandoned call may outlive score()
    std::vector<Completion> completions;
    std::size_t unit_size = 1;
    std::vector<Unit> units;
    std::mutex mutex;
    std::condition_variable cv;
    std::size_t next = 0;                 // next unit to hand out
    std::size_t finished = 0;             // units done, failed or timed out
    std::vector<std::size_t> current;     // current[w]: the unit worker w runs, kNone when idle
  };

  static void add_failure(ScoreReport& report, ScoreFailure failure) {
    switch (failure.kind) {
      case FailureKind::exception: ++report.exceptions; break;
      case FailureKind::timeout: ++report.timeouts; break;
      case FailureKind::non_finite: ++report.non_finite; break;
      case FailureKind::wrong_count: ++report.wrong_count; break;
    }
    report.failures.push_back(std::move(failure));
  }

  static std::vector<double> call(R& reward, const Batch& batch, std::size_t u) {
    const std::size_t begin = u * batch.unit_size;
    if constexpr (kPerSample) {
      return {static_cast<double>(reward(batch.prompts[begin], batch.completions[begin]))};
    } else {
      const std::size_t end = std::min(batch.completions.size(), begin + batch.unit_size);
      return reward(std::span<const Prompt>(batch.prompts).subspan(begin, end - begin),
                    std::span<const Completion>(batch.completions).subspan(begin, end - begin));
    }
  }

  // One worker: takes units until none is left; exits after an abandoned call returns.
  static void work(std::shared_ptr<R> reward, std::shared_ptr<Batch> batch, std::shared_ptr<Shared> shared,
                   std::size_t w) {
    for (;;) {
      std::size_t u = 0;
      {
        std::lock_guard<std::mutex> lock(batch->mutex);
        if (batch->next >= batch->units.size()) return;
        u = batch->next++;
        batch->units[u].state = State::running;
        batch->units[u].start = Clock::now();
        batch->current[w] = u;
        batch->cv.notify_all();  // the coordinator may be waiting without a deadline
      }
      std::vector<double> values;
      std::string error;
      bool ok = false;
      try {
        values = call(*reward, *batch, u);
        ok = true;
      } catch (const std::exception& e) {
        error = e.what();
      } catch (...) {
        error = "unknown exception (not derived from std::exception)";
      }
      std::lock_guard<std::mutex> lock(batch->mutex);
      Unit& unit = batch->units[u];
      if (unit.state == State::timed_out) {  // abandoned by the coordinator: result dropped
        shared->abandoned.fetch_sub(1);
        return;
      }
      unit.values = std::move(values);
      unit.error = std::move(error);
      unit.state = ok ? State::done : State::failed;
      batch->current[w] = kNone;
      ++batch->finished;
      batch->cv.notify_all();
    }
  }

  void run(const std::shared_ptr<Batch>& batch, std::size_t units) {
    const auto timeout = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.timeout_seconds));
    std::vector<std::thread> workers;
    std::vector<bool> abandoned;
    std::unique_lock<std::mutex> lock(batch->mutex);
    std::size_t live = 0;
    // Starts a worker; false when the system refuses a thread (the batch then runs on fewer).
    const auto spawn = [&]() -> bool {
      const std::size_t w = workers.size();
      batch->current.push_back(kNone);
      abandoned.push_back(false);
      try {
        workers.emplace_back(&Scorer::work, reward_, batch, shared_, w);
      } catch (const std::system_error&) {
        batch->current.pop_back();
        abandoned.pop_back();
        return false;
      }
      ++live;
      return true;
    };
    // With no worker left, the units nobody took fail instead of waiting forever.
    const auto fail_untaken = [&] {
      for (; batch->next < units; ++batch->next) {
        batch->units[batch->next].state = State::failed;
        batch->units[batch->next].error = "no worker thread could be started";
        ++batch->finished;
      }
    };
    const std::size_t initial = std::min(options_.threads, units);
    for (std::size_t k = 0; k < initial; ++k) spawn();
    if (live == 0) fail_untaken();
    while (batch->finished < units) {
      Clock::time_point earliest = Clock::time_point::max();
      for (std::size_t w = 0; w < workers.size(); ++w)
        if (!abandoned[w] && batch->current[w] != kNone)
          earliest = std::min(earliest, batch->units[batch->current[w]].start + timeout);
      if (earliest == Clock::time_point::max())
        batch->cv.wait(lock);
      else
        batch->cv.wait_until(lock, earliest);
      const auto now = Clock::now();
      const std::size_t count = workers.size();
      for (std::size_t w = 0; w < count; ++w) {
        if (abandoned[w] || batch->current[w] == kNone) continue;
        Unit& unit = batch->units[batch->current[w]];
        if (unit.state != State::running || now < unit.start + timeout) continue;
        unit.state = State::timed_out;
        ++batch->finished;
        batch->current[w] = kNone;
        abandoned[w] = true;
        --live;
        shared_->abandoned.fetch_add(1);
        workers[w].detach();
        if (batch->next < units) spawn();
      }
      if (live == 0) fail_untaken();
    }
    lock.unlock();
    for (std::size_t w = 0; w < workers.size(); ++w)
      if (!abandoned[w]) workers[w].join();
  }

  std::shared_ptr<R> reward_;
  ScorerOptions options_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace kaizen::reward
