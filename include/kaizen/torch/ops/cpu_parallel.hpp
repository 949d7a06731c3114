// kaizen/torch/ops/cpu_parallel.hpp - splitting the rows of a fused CPU op over LibTorch's threads.
//
// at::parallel_for is an inline template: with LibTorch's OpenMP backend (the PyPI wheels and the
// LibTorch downloads) it runs in parallel only in translation units compiled with -fopenmp, and on one
// thread otherwise, which is how a header-only library is usually compiled. parallel_rows does not
// depend on the user's flags: it hands chunks of rows to LibTorch's inter-op thread pool (at::launch,
// compiled into libtorch) and works through them on the calling thread as well. Pool tasks and the
// caller claim chunks from one atomic counter, and the caller waits only for chunks already claimed,
// so a busy or one-thread pool (or a call from inside a pool task) degrades to serial work on the
// caller instead of deadlocking; a task that starts late finds nothing left and touches only the
// shared state it co-owns. The thread count is LibTorch's intra-op setting (at::get_num_threads,
// torch::set_num_threads); inside a parallel region the call runs serially.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>

#include <ATen/Parallel.h>

namespace kaizen::ops::detail {

/// Least work (elements) worth a chunk of its own: below it, thread hand-off costs more than it saves.
inline constexpr std::int64_t kMinChunkWork = std::int64_t{1} << 16;

/// Calls f(begin, end) on disjoint row ranges covering [0, n), concurrently on up to
/// at::get_num_threads() threads (the caller among them), in chunks of at least kMinChunkWork
/// elements given `row_cost` elements per row; at most 4 chunks per thread so a thread slowed by
/// other load hands its share to the others. Returns after every range is done; rethrows the first
/// exception f threw (the other chunks still run).
template <class F>
void parallel_rows(std::int64_t n, std::int64_t row_cost, const F& f) {
  if (n <= 0) return;
  const std::int64_t threads = at::in_parallel_region() ? 1 : std::max(1, at::get_num_threads());
  const double work = static_cast<double>(n) * static_cast<double>(std::max<std::int64_t>(row_cost, 1));
  const auto by_work = static_cast<std::int64_t>(work / static_cast<double>(kMinChunkWork));
  std::int64_t chunks = std::min({n, by_work, 4 * threads});
  if (threads == 1 || chunks <= 1) {
    f(std::int64_t{0}, n);
    return;
  }
  const std::int64_t rows_per_chunk = (n + chunks - 1) / chunks;
  chunks = (n + rows_per_chunk - 1) / rows_per_chunk;

  struct State {
    std::atomic<std::int64_t> next{0};
    std::int64_t done = 0;
    std::exception_ptr error;
    std::mutex mutex;
    std::condition_variable finished;
  };
  const auto state = std::make_shared<State>();
  // `f` is reached only through a claimed chunk, and the caller outlives every claimed chunk.
  const auto drain = [state, fp = &f, n, rows_per_chunk, chunks] {
    for (;;) {
      const std::int64_t c = state->next.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks) return;
      const std::int64_t begin = c * rows_per_chunk;
      std::exception_ptr error;
      try {
        (*fp)(begin, std::min(n, begin + rows_per_chunk));
      } catch (...) {
        error = std::current_exception();
      }
      const std::lock_guard lock(state->mutex);
      if (error && !state->error) state->error = error;
      if (++state->done == chunks) state->finished.notify_all();
    }
  };
  const std::int64_t helpers = std::min(threads, chunks) - 1;
  for (std::int64_t k = 0; k < helpers; ++k) at::launch(drain);
  drain();
  std::unique_lock lock(state->mutex);
  state->finished.wait(lock, [&] { return state->done == chunks; });
  if (state->error) std::rethrow_exception(state->error);
}

}  // namespace kaizen::ops::detail
