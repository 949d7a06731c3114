// Tests of kaizen/distributed/ on c10d Gloo over 127.0.0.1: 2 and 3 real processes (this program started again as
// each rank) all-reduce every dtype the loops use on odd sizes against closed-form sums, all-gather byte blobs of
// different sizes (an empty one included), broadcast from a non-zero root, meet at barriers, reduce bucketed
// gradients, and compare parameter hashes; a rank killed mid-collective makes the others throw a kaizen::Error
// naming it within a bounded time; bad launch environments are refused with the variable and value named.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/distributed/c10d.hpp>
#include <kaizen/distributed/communicator.hpp>
#include <kaizen/distributed/data_parallel.hpp>
#include <kaizen/distributed/single_process.hpp>

#include "spawn.hpp"

namespace {

namespace kd = kaizen::distributed;
using Catch::Contains;

/// A scratch folder for one job, emptied before and after (file by file: see tests/loop/loop_test_support.hpp).
struct Scratch {
  std::filesystem::path path;
  explicit Scratch(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("kaizen_dist_" + name + "_" + std::to_string(::getpid()))) {
    clear();
  }
  ~Scratch() { clear(); }
  void clear() const {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return;
    for (const auto& e : std::filesystem::directory_iterator(path, ec)) std::filesystem::remove(e.path(), ec);
    std::filesystem::remove(path, ec);
  }
};

kd::C10dOptions worker_options() {
  kd::C10dOptions o;
  o.backend = "gloo";
  o.timeout = std::chrono::milliseconds(kaizen_test::env_int("KAIZEN_TEST_TIMEOUT_MS", 20000));
  o.diagnose_timeout = std::chrono::milliseconds(2000);
  return o;
}

/// Fails the worker (exit status 1 through Catch) with a message on stderr.
#define WORKER_CHECK(cond, what)                                         \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::cerr << "rank check failed: " << what << " (" #cond ")\n";   \
      REQUIRE((cond));                                                  \
    }                                                                   \
  } while (false)

/// x_r[i] = (i % 13) * (r + 1) + r, exact in every dtype used here; its sum over W ranks is
/// (i % 13) * W(W+1)/2 + W(W-1)/2, its max (W-1 is largest) (i % 13) * W + W - 1, its min (i % 13).
torch::Tensor rank_values(std::int64_t n, int r, torch::ScalarType dtype) {
  return (torch::arange(n, torch::kLong).remainder(13) * (r + 1) + r).to(dtype);
}

void run_collectives(kd::Communicator& comm) {
  const int W = comm.world_size(), r = comm.rank();
  for (const std::int64_t n : {1, 7, 1001, 100003}) {
    const torch::Tensor base = torch::arange(n, torch::kLong).remainder(13);
    for (const auto dtype : {torch::kFloat32, torch::kFloat64, torch::kBFloat16, torch::kFloat16, torch::kInt64,
                             torch::kInt32, torch::kUInt8}) {
      if (dtype == torch::kUInt8 && W * (W + 1) / 2 * 12 + W > 255) continue;
      torch::Tensor s = rank_values(n, r, dtype);
      comm.all_reduce(s, kd::ReduceOp::sum);
      const torch::Tensor expected_sum = (base * (W * (W + 1) / 2) + W * (W - 1) / 2).to(dtype);
      WORKER_CHECK(torch::equal(s, expected_sum), "sum n=" << n << " dtype=" << dtype);
      torch::Tensor mx = rank_values(n, r, dtype);
      comm.all_reduce(mx, kd::ReduceOp::max);
      WORKER_CHECK(torch::equal(mx, (base * W + W - 1).to(dtype)), "max n=" << n << " dtype=" << dtype);
      torch::Tensor mn = rank_values(n, r, dtype);
      comm.all_reduce(mn, kd::ReduceOp::min);
      WORKER_CHECK(torch::equal(mn, base.to(dtype)), "min n=" << n << " dtype=" << dtype);
      if (torch::isFloatingType(dtype)) {
        torch::Tensor m = rank_values(n, r, dtype);
        comm.all_reduce(m, kd::ReduceOp::mean);
        const torch::Tensor expected_mean = expected_sum.to(torch::kDouble) / W;
        const double tol = dtype == torch::kBFloat16 ? 0.05 : dtype == torch::kFloat16 ? 0.01 : 1e-6;
        WORKER_CHECK(torch::allclose(m.to(torch::kDouble), expected_mean, tol, 0.0), "mean n=" << n << " dtype=" << dtype);
      }
    }
  }
  // Several tensors in one call.
  std::vector<torch::Tensor> many{rank_values(5, r, torch::kFloat32), rank_values(3, r, torch::kInt64)};
  comm.all_reduce(std::span<torch::Tensor>(many), kd::ReduceOp::sum);
  WORKER_CHECK(many[1][2].item<std::int64_t>() == 2 * W * (W + 1) / 2 + W * (W - 1) / 2, "two tensors");
  // Variable-size blobs, rank 1's empty: rank q sends q*37+5 bytes of value (q*11+i) % 256 (rank 1 none).
  std::vector<std::uint8_t> blob;
  if (r != 1)
    for (int i = 0; i < r * 37 + 5; ++i) blob.push_back(static_cast<std::uint8_t>((r * 11 + i) % 256));
  const kd::Blobs all = comm.all_gather(std::span<const std::uint8_t>(blob));
  WORKER_CHECK(static_cast<int>(all.size()) == W, "all_gather count");
  for (int q = 0; q < W; ++q) {
    std::vector<std::uint8_t> expected;
    if (q != 1)
      for (int i = 0; i < q * 37 + 5; ++i) expected.push_back(static_cast<std::uint8_t>((q * 11 + i) % 256));
    WORKER_CHECK(all[static_cast<std::size_t>(q)] == expected, "blob of rank " << q);
  }
  // Everyone sends nothing.
  const kd::Blobs none = comm.all_gather(std::span<const std::uint8_t>());
  for (const auto& b : none) WORKER_CHECK(b.empty(), "empty all_gather");
  // Broadcast from the last rank, two dtypes.
  std::vector<torch::Tensor> bc{rank_values(9, r, torch::kFloat64), rank_values(4, r, torch::kInt32)};
  comm.broadcast(std::span<torch::Tensor>(bc), W - 1);
  WORKER_CHECK(torch::equal(bc[0], rank_values(9, W - 1, torch::kFloat64)), "broadcast f64");
  WORKER_CHECK(torch::equal(bc[1], rank_values(4, W - 1, torch::kInt32)), "broadcast i32");
  comm.barrier();
  // Rows of different counts per rank, gathered in rank order.
  const torch::Tensor rows = torch::full({r + 1, 3}, static_cast<float>(r));
  const torch::Tensor cat = kd::concat_gathered(comm, rows);
  WORKER_CHECK(cat.size(0) == W * (W + 1) / 2 && cat.size(1) == 3, "concat_gathered shape");
  WORKER_CHECK(cat[cat.size(0) - 1][0].item<float>() == static_cast<float>(W - 1), "concat_gathered order");
  // Bucketed gradients: 5 parameters of two dtypes, buckets of at most 64 bytes; parameter 2 has no gradient
  // on rank 0. The all-reduced sum must equal the closed form.
  std::vector<torch::Tensor> params{torch::zeros({7}), torch::zeros({3, 5}), torch::zeros({11}),
                                    torch::zeros({2}, torch::kDouble), torch::zeros({13}, torch::kDouble)};
  for (std::size_t k = 0; k < params.size(); ++k) {
    if (k == 2 && r == 0) continue;
    params[k].mutable_grad() = rank_values(params[k].numel(), r, params[k].scalar_type()).view_as(params[k]);
  }
  kd::GradientBuckets buckets(comm, params, 64);
  WORKER_CHECK(buckets.bucket_count() >= 4, "bucket count " << buckets.bucket_count());
  buckets.all_reduce(kd::ReduceOp::sum);
  for (std::size_t k = 0; k < params.size(); ++k) {
    const auto n = params[k].numel();
    torch::Tensor expected = (torch::arange(n, torch::kLong).remainder(13) * (W * (W + 1) / 2) + W * (W - 1) / 2);
    if (k == 2) expected = expected - torch::arange(n, torch::kLong).remainder(13);  // rank 0's x_0 missing
    WORKER_CHECK(torch::equal(params[k].grad().reshape({-1}), expected.to(params[k].scalar_type())), "bucketed grad " << k);
  }
  // Overlapped with backward: hooks fill buckets of at most 40 bytes as backward runs; rank 0 has nothing to
  // back-propagate (an empty share of a mini-batch) and only arms and finishes.
  std::vector<torch::Tensor> w{torch::zeros({7}, torch::requires_grad()), torch::zeros({3, 5}, torch::requires_grad()),
                               torch::zeros({11}, torch::requires_grad())};
  kd::GradientBuckets overlapped(comm, w, 40);
  for (int round = 0; round < 2; ++round) {
    for (auto& p : w) p.mutable_grad() = torch::Tensor();
    overlapped.arm();
    if (r != 0) {
      torch::Tensor loss = torch::zeros({});
      for (auto& p : w) loss = loss + (p * rank_values(p.numel(), r, torch::kFloat).view_as(p)).sum() * (round + 1);
      loss.backward();
    }
    overlapped.finish();
    for (auto& p : w) {
      const torch::Tensor base = torch::arange(p.numel(), torch::kLong).remainder(13);
      const torch::Tensor expected = (base * (W * (W + 1) / 2 - 1) + W * (W - 1) / 2) * (round + 1);
      WORKER_CHECK(torch::equal(p.grad().reshape({-1}), expected.to(torch::kFloat)), "overlapped grad, round " << round);
    }
  }
  // Same parameters pass; a different one on the last rank is named on every rank.
  kd::check_same_parameters(comm, params);
  std::vector<torch::Tensor> mine{torch::full({4}, r == W - 1 ? 1.0f : 0.0f)};
  bool named = false;
  try {
    kd::check_same_parameters(comm, mine);
  } catch (const kaizen::Error& e) {
    named = std::string(e.what()).find("rank " + std::to_string(W - 1) + " differ") != std::string::npos;
  }
  WORKER_CHECK(named, "check_same_parameters names the odd rank");
  comm.barrier();
}

}  // namespace

// ---- workers (hidden: run only when a parent test starts this program with their name) ----------------------

TEST_CASE("distributed collectives worker", "[.worker]") {
  kd::C10dCommunicator comm(kd::LaunchEnv::from_environment(), worker_options());
  REQUIRE(comm.backend() == "gloo");
  run_collectives(comm);
}

TEST_CASE("distributed kill worker", "[.worker]") {
  const int victim = kaizen_test::env_int("KAIZEN_TEST_VICTIM");
  kd::C10dCommunicator comm(kd::LaunchEnv::from_environment(), worker_options());
  torch::Tensor t = torch::ones({1000});
  comm.all_reduce(t);  // everybody is connected
  comm.barrier();
  if (comm.rank() == victim) ::_exit(9);  // dies mid-step: the others are about to all-reduce
  const auto t0 = std::chrono::steady_clock::now();
  std::string message;
  try {
    for (int i = 0; i < 3; ++i) {
      torch::Tensor g = torch::ones({100003});
      comm.all_reduce(g);
    }
  } catch (const kaizen::Error& e) {
    message = e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << "survivor " << comm.rank() << " after " << seconds << " s: " << message << "\n";
  REQUIRE_FALSE(message.empty());
  std::ofstream(std::filesystem::path(std::getenv("KAIZEN_TEST_DIR")) / ("message" + std::to_string(comm.rank()))) << message;
}

// ---- tests -----------------------------------------------------------------------------------------------------

namespace {

void run_job(const std::string& name, int world) {
  Scratch dir(name + std::to_string(world));
  kaizen_test::Job job("distributed collectives worker", world, dir.path);
  const auto results = job.wait_all(120.0);
  for (const auto& c : results) {
    INFO("rank " << c.rank << " log:\n" << c.log);
    CHECK_FALSE(c.timed_out);
    CHECK(c.status == 0);
  }
}

}  // namespace

TEST_CASE("Gloo collectives are exact on 2 processes: every dtype, odd sizes, blobs, broadcast, buckets", "[distributed]") {
  if (!kd::kHasGloo) {
    std::cout << "KAIZEN_SKIP: built without c10d Gloo\n";
    return;
  }
  run_job("collectives", 2);
}

TEST_CASE("Gloo collectives are exact on 3 processes: every dtype, odd sizes, blobs, broadcast, buckets", "[distributed]") {
  if (!kd::kHasGloo) {
    std::cout << "KAIZEN_SKIP: built without c10d Gloo\n";
    return;
  }
  run_job("collectives", 3);
}

TEST_CASE("A rank killed mid-step makes the others fail naming it, within the timeout", "[distributed]") {
  if (!kd::kHasGloo) {
    std::cout << "KAIZEN_SKIP: built without c10d Gloo\n";
    return;
  }
  for (const int victim : {1, 0}) {  // 0 also serves the store
    INFO("victim rank " << victim);
    Scratch dir("kill" + std::to_string(victim));
    kaizen_test::Job job("distributed kill worker", 3, dir.path,
                         {{"KAIZEN_TEST_VICTIM", std::to_string(victim)}, {"KAIZEN_TEST_TIMEOUT_MS", "8000"}});
    const auto results = job.wait_all(60.0);
    for (const auto& c : results) {
      INFO("rank " << c.rank << " log:\n" << c.log);
      CHECK_FALSE(c.timed_out);
      if (c.rank == victim) {
        CHECK(c.status == 9);
        continue;
      }
      CHECK(c.status == 0);
      // Bounded: the collective timeout (8 s) plus the diagnosis (2 s) plus start-up, well under the deadline.
      CHECK(c.seconds < 40.0);
      const std::string message = kaizen_test::read_file(dir.path / ("message" + std::to_string(c.rank)));
      CHECK_THAT(message, Contains("rank " + std::to_string(victim)));
      CHECK_THAT(message, Contains("C10dCommunicator: all_reduce"));
    }
  }
}

namespace {

/// Sets (or, for nullptr, unsets) the launch variables for one check, restoring nothing: each ctest case runs in
/// its own process.
void set_env(const char* rank, const char* world, const char* addr, const char* port) {
  auto put = [](const char* name, const char* value) {
    if (value == nullptr) ::unsetenv(name);
    else ::setenv(name, value, 1);
  };
  put("RANK", rank);
  put("WORLD_SIZE", world);
  put("MASTER_ADDR", addr);
  put("MASTER_PORT", port);
  ::unsetenv("SLURM_PROCID");
  ::unsetenv("SLURM_NTASKS");
}

}  // namespace

TEST_CASE("A bad launch environment is refused, naming the variable and its value", "[distributed][errors]") {
  using kd::LaunchEnv;
  set_env("3", "2", "127.0.0.1", "29500");
  REQUIRE_THROWS_WITH(LaunchEnv::from_environment(), Contains("RANK=3 must be < WORLD_SIZE=2"));
  set_env("0", nullptr, "127.0.0.1", "29500");
  REQUIRE_THROWS_WITH(LaunchEnv::from_environment(), Contains("WORLD_SIZE is not set (RANK='0')"));
  set_env(nullptr, "2", "127.0.0.1", "29500");
  REQUIRE_THROWS_WITH(LaunchEnv::from_environment(), Contains("RANK is not set (WORLD_SIZE='2')"));
  set_env("one", "2", "127.0.0.1", "29500");
  REQUIRE_THROWS_WITH(LaunchEnv::from_environment(), Contains("RANK must be an integer in [0, 1048576], got 'one'"));
  set_env("0", "0", "127.0.0.1", "29500");
  REQUIRE_THROWS_WITH(LaunchEnv::from_environment(), Contains("WORLD_SIZE must be an integer in [1, 1048576], got '0'"));
  set_env("0", "2", "127.0.0.1", "70000");
  REQUIRE_THROWS_WITH(LaunchEnv::from_environment(), Contains("MASTER_PORT must be an integer in [1, 65535], got '70000'"));
  set_env("1", "2", nullptr, "29500");
  REQUIRE_THROWS_WITH(LaunchEnv::from_environment(), Contains("MASTER_ADDR is not set (WORLD_SIZE=2)"));
  set_env("1", "2", "127.0.0.1", nullptr);
  REQUIRE_THROWS_WITH(LaunchEnv::from_environment(), Contains("MASTER_PORT is not set (WORLD_SIZE=2)"));
  // Slurm's variables stand in for torchrun's.
  set_env(nullptr, nullptr, "127.0.0.1", "29500");
  ::setenv("SLURM_PROCID", "4", 1);
  ::setenv("SLURM_NTASKS", "4", 1);
  REQUIRE_THROWS_WITH(LaunchEnv::from_environment(), Contains("SLURM_PROCID=4 must be < SLURM_NTASKS=4"));
  ::setenv("SLURM_PROCID", "3", 1);
  ::setenv("SLURM_LOCALID", "1", 1);
  const LaunchEnv slurm = LaunchEnv::from_environment();
  CHECK(slurm.rank == 3);
  CHECK(slurm.world_size == 4);
  CHECK(slurm.local_rank == 1);
  ::unsetenv("SLURM_LOCALID");
  // No job variables: one process.
  set_env(nullptr, nullptr, nullptr, nullptr);
  CHECK_FALSE(LaunchEnv::present());
  const auto single = kd::make_communicator();
  CHECK(single->world_size() == 1);
  CHECK(single->backend() == "single");
}

TEST_CASE("An unreachable master fails within the timeout, naming MASTER_ADDR and MASTER_PORT", "[distributed][errors]") {
  if (!kd::kHasGloo) {
    std::cout << "KAIZEN_SKIP: built without c10d Gloo\n";
    return;
  }
  const int port = kaizen_test::free_port();  // nobody listens there
  kd::LaunchEnv env;
  env.rank = 1;
  env.world_size = 2;
  env.master_addr = "127.0.0.1";
  env.master_port = port;
  kd::C10dOptions options;
  options.timeout = std::chrono::milliseconds(2000);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(kd::C10dCommunicator(env, options),
                      Contains("rank 1 could not reach the store at MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                               std::to_string(port) + " within 2000 ms"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(seconds < 15.0);
  // Rank 0 alone: the store waits for WORLD_SIZE workers that never come.
  env.rank = 0;
  env.master_port = kaizen_test::free_port();
  REQUIRE_THROWS_WITH(kd::C10dCommunicator(env, options), Contains("rank 0 could not"));
  // Values the constructor refuses before connecting.
  env.rank = 2;
  REQUIRE_THROWS_WITH(kd::C10dCommunicator(env, options), Contains("RANK=2 must be in [0, WORLD_SIZE=2)"));
  env.rank = 0;
  options.backend = "mpi";
  REQUIRE_THROWS_WITH(kd::C10dCommunicator(env, options), Contains("backend must be \"gloo\", \"nccl\" or \"auto\", got \"mpi\""));
}

TEST_CASE("SingleProcess is an identity with the same argument checks, and shard_range splits evenly", "[distributed]") {
  kd::SingleProcess one;
  torch::Tensor t = torch::arange(5, torch::kFloat);
  one.all_reduce(t, kd::ReduceOp::mean);
  CHECK(torch::equal(t, torch::arange(5, torch::kFloat)));
  torch::Tensor ints = torch::arange(5, torch::kLong);
  REQUIRE_THROWS_WITH(one.all_reduce(ints, kd::ReduceOp::mean), Contains("mean of tensor 0 needs a floating-point dtype"));
  torch::Tensor strided = torch::zeros({4, 4}).t();
  REQUIRE_THROWS_WITH(one.all_reduce(strided), Contains("tensor 0 is not contiguous"));
  const std::vector<std::uint8_t> blob{1, 2, 3};
  const kd::Blobs all = one.all_gather(std::span<const std::uint8_t>(blob));
  REQUIRE(all.size() == 1);
  CHECK(all[0] == blob);
  REQUIRE_THROWS_WITH(one.broadcast(t, 1), Contains("root must be 0 in a world of 1, got 1"));
  // 10 items over 3 ranks: 4, 3, 3, contiguous and covering.
  CHECK(kd::shard_range(10, 0, 3).begin == 0);
  CHECK(kd::shard_range(10, 0, 3).end == 4);
  CHECK(kd::shard_range(10, 1, 3).end == 7);
  CHECK(kd::shard_range(10, 2, 3).end == 10);
  CHECK(kd::shard_range(2, 2, 3).size() == 0);
  REQUIRE_THROWS_WITH(kd::shard_range(4, 3, 3), Contains("expected 0 <= rank < world, got rank 3, world 3"));
  // The hash sees every byte.
  std::vector<torch::Tensor> a{torch::zeros({3})}, b{torch::zeros({3})};
  CHECK(kd::parameter_hash(a) == kd::parameter_hash(b));
  b[0][1] = 1e-30f;
  CHECK(kd::parameter_hash(a) != kd::parameter_hash(b));
  kd::check_same_parameters(one, a);
}
