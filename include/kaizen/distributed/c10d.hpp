// kaizen/distributed/c10d.hpp - a Communicator over LibTorch's own collective engine, c10d: ProcessGroupGloo on
// CPU tensors, ProcessGroupNCCL on CUDA tensors, meeting through a c10d::TCPStore on rank 0.
//
// Configured like a torchrun job, from the environment (LaunchEnv::from_environment):
//   RANK         this process, in [0, WORLD_SIZE)            (Slurm: SLURM_PROCID when RANK is unset)
//   WORLD_SIZE   number of processes, >= 1                   (Slurm: SLURM_NTASKS)
//   LOCAL_RANK   rank on this machine, picks the GPU         (Slurm: SLURM_LOCALID; default 0)
//   MASTER_ADDR  host of rank 0, which serves the store      (default 127.0.0.1)
//   MASTER_PORT  its TCP port, in [1, 65535]                 (default 29500)
//   GLOO_SOCKET_IFNAME  optional network interface for Gloo's connections (else the address of MASTER_ADDR's
//                       loopback when MASTER_ADDR is loopback, else this host's name)
// A missing or inconsistent variable (RANK >= WORLD_SIZE, a non-number, a port out of range) throws kaizen::Error
// naming the variable and its value before anything connects. Rendezvous and every collective are bounded by
// C10dOptions::timeout; a master that cannot be reached throws kaizen::Error naming MASTER_ADDR and MASTER_PORT.
//
// Failures name the rank: when a collective fails (a peer's connection closed, or the timeout passed), this rank
// writes "kaizen/alive/<collective>/<rank>" into the store and waits up to `diagnose_timeout` for every other
// rank's key; the ranks whose key never came are named in the kaizen::Error ("rank 2 did not answer ...").
// When the store itself is gone, rank 0 (which serves it) is named.
//
// Built with USE_C10D_GLOO (the kaizen::distributed CMake target: Gloo's headers from Debian's libgloo-dev; the
// symbols are in libtorch_cpu) and, for GPUs, USE_C10D_NCCL. Without them this header still compiles, and
// asking for the missing backend throws kaizen::Error saying how to build it.
//
// References: PyTorch distributed (torch.distributed, c10d ProcessGroup / TCPStore) and torchrun's environment
// variables, https://pytorch.org/docs/stable/distributed.html and https://pytorch.org/docs/stable/elastic/run.html.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <kaizen/core/error.hpp>
#include <kaizen/distributed/communicator.hpp>
#include <kaizen/distributed/single_process.hpp>

namespace kaizen::distributed {

/// Whether this build has c10d's Gloo / NCCL process groups.
#if defined(USE_C10D_GLOO)
inline constexpr bool kHasGloo = true;
#else
inline constexpr bool kHasGloo = false;
#endif
#if defined(USE_C10D_NCCL)
inline constexpr bool kHasNccl = true;
#else
inline constexpr bool kHasNccl = false;
#endif

/// Where this process sits in the job (the torchrun variables).
struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;

  /// Whether the environment describes a multi-process job: RANK or WORLD_SIZE (or Slurm's SLURM_PROCID with
  /// SLURM_NTASKS) is set.
  [[nodiscard]] static bool present() {
    return std::getenv("RANK") != nullptr || std::getenv("WORLD_SIZE") != nullptr ||
           (std::getenv("SLURM_PROCID") != nullptr && std::getenv("SLURM_NTASKS") != nullptr);
  }

  /// Reads and checks the variables (see the top of the file). Throws kaizen::Error naming the variable.
  [[nodiscard]] static LaunchEnv from_environment() {
    auto get = [](const char* name) -> std::optional<std::string> {
      const char* v = std::getenv(name);
      if (v == nullptr) return std::nullopt;
      return std::string(v);
    };
    auto parse = [](const char* name, const std::string& text, long lo, long hi) {
      char* end = nullptr;
      errno = 0;
      const long v = std::strtol(text.c_str(), &end, 10);
      KAIZEN_CHECK(!text.empty() && end != nullptr && *end == '\0' && errno == 0 && v >= lo && v <= hi,
                   "LaunchEnv: ", name, " must be an integer in [", lo, ", ", hi, "], got '", text, "'");
      return static_cast<int>(v);
    };
    const bool slurm = !get("RANK") && !get("WORLD_SIZE") && get("SLURM_PROCID") && get("SLURM_NTASKS");
    const char* rank_var = slurm ? "SLURM_PROCID" : "RANK";
    const char* world_var = slurm ? "SLURM_NTASKS" : "WORLD_SIZE";
    const char* local_var = slurm ? "SLURM_LOCALID" : "LOCAL_RANK";
    const auto rank_text = get(rank_var);
    const auto world_text = get(world_var);
    KAIZEN_CHECK(world_text.has_value(), "LaunchEnv: ", world_var, " is not set (", rank_var, "='",
                 rank_text.value_or(""), "'); a multi-process job needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
    KAIZEN_CHECK(rank_text.has_value(), "LaunchEnv: ", rank_var, " is not set (", world_var, "='", *world_text,
                 "'); a multi-process job needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
    LaunchEnv e;
    e.world_size = parse(world_var, *world_text, 1, 1 << 20);
    e.rank = parse(rank_var, *rank_text, 0, 1 << 20);
    KAIZEN_CHECK(e.rank < e.world_size, "LaunchEnv: ", rank_var, "=", e.rank, " must be < ", world_var, "=",
                 e.world_size);
    if (const auto local = get(local_var)) e.local_rank = parse(local_var, *local, 0, 1 << 20);
    if (const auto addr = get("MASTER_ADDR")) {
      KAIZEN_CHECK(!addr->empty(), "LaunchEnv: MASTER_ADDR is set but empty");
      e.master_addr = *addr;
    } else {
      KAIZEN_CHECK(e.world_size == 1 || slurm, "LaunchEnv: MASTER_ADDR is not set (", world_var, "=", e.world_size,
                   "); set it to the host of rank 0");
    }
    if (const auto port = get("MASTER_PORT")) {
      e.master_port = parse("MASTER_PORT", *port, 1, 65535);
    } else {
      KAIZEN_CHECK(e.world_size == 1 || slurm, "LaunchEnv: MASTER_PORT is not set (", world_var, "=", e.world_size,
                   "); set it to a free TCP port on MASTER_ADDR");
    }
    return e;
  }
};

struct C10dOptions {
  /// "gloo" (CPU tensors), "nccl" (CUDA tensors), or "auto": nccl when built with it and CUDA is available.
  std::string backend = "auto";
  /// Bounds the rendezvous (connecting to the store, meeting every rank) and every collective.
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};
  /// After a failed collective: how long to wait for the other ranks to say they are alive.
  std::chrono::milliseconds diagnose_timeout{std::chrono::seconds(5)};
};

/// Communicator over a c10d process group (see the top of the file).
class C10dCommunicator final : public Communicator {
 public:
  /// Connects to the job described by `env`. Throws kaizen::Error on an unknown or missing backend, an
  /// unreachable master, or a rendezvous that does not complete within options.timeout.
  C10dCommunicator(const LaunchEnv& env, const C10dOptions& options = {}) : env_(env), options_(options) {
    KAIZEN_CHECK(env.world_size >= 1 && env.rank >= 0 && env.rank < env.world_size,
                 "C10dCommunicator: RANK=", env.rank, " must be in [0, WORLD_SIZE=", env.world_size, ")");
    KAIZEN_CHECK(env.master_port >= 1 && env.master_port <= 65535, "C10dCommunicator: MASTER_PORT must be in "
                 "[1, 65535], got ", env.master_port);
    KAIZEN_CHECK(options.timeout.count() > 0, "C10dCommunicator: timeout must be > 0 ms, got ", options.timeout.count());
    backend_ = options.backend;
    if (backend_ == "auto") backend_ = (kHasNccl && torch::cuda::is_available()) ? "nccl" : "gloo";
    KAIZEN_CHECK(backend_ == "gloo" || backend_ == "nccl", "C10dCommunicator: backend must be \"gloo\", \"nccl\" or "
                 "\"auto\", got \"", options.backend, "\"");
    KAIZEN_CHECK(backend_ != "gloo" || kHasGloo, "C10dCommunicator: this build has no c10d Gloo; link the "
                 "kaizen::distributed CMake target (needs Gloo's headers, Debian: libgloo-dev)");
    KAIZEN_CHECK(backend_ != "nccl" || kHasNccl, "C10dCommunicator: this build has no c10d NCCL; link the "
                 "kaizen::distributed CMake target with a CUDA LibTorch and NCCL's headers");
    const std::string where = "MASTER_ADDR=" + env.master_addr + " MASTER_PORT=" + std::to_string(env.master_port);
    try {
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(env.master_port);
      so.isServer = env.rank == 0;
      so.numWorkers = static_cast<std::size_t>(env.world_size);
      so.waitWorkers = true;
      so.timeout = options.timeout;
      store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    } catch (const std::exception& e) {
      fail("C10dCommunicator: rank ", env.rank, " could not ", env.rank == 0 ? "serve" : "reach",
           " the store at ", where, " within ", options.timeout.count(), " ms (WORLD_SIZE=", env.world_size,
           env.rank == 0 ? "; is the port free and did every rank start?" : "; is rank 0 running there?",
           "): ", first_line(e.what()));
    }
    try {
      if (backend_ == "gloo") {
#if defined(USE_C10D_GLOO)
        auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
        if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0') {
          gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
        } else if (is_loopback(env.master_addr)) {
          gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
        } else {
          gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        }
        gloo_options->threads = 1;
        group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, env.rank, env.world_size, gloo_options);
#endif
      } else {
#if defined(USE_C10D_NCCL)
        device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
        auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
        nccl_options->timeout = options.timeout;
        group_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, env.rank, env.world_size, nccl_options);
#endif
      }
    } catch (const std::exception& e) {
      fail("C10dCommunicator: rank ", env.rank, " could not form the ", backend_, " group of WORLD_SIZE=",
           env.world_size, " through the store at ", where, " within ", options.timeout.count(), " ms: ",
           first_line(e.what()));
    }
  }

  [[nodiscard]] int rank() const noexcept override { return env_.rank; }
  [[nodiscard]] int world_size() const noexcept override { return env_.world_size; }
  [[nodiscard]] int local_rank() const noexcept override { return env_.local_rank; }
  [[nodiscard]] std::string backend() const override { return backend_; }
  /// The device collectives run on: CPU for Gloo, cuda:LOCAL_RANK for NCCL.
  [[nodiscard]] torch::Device device() const noexcept { return device_; }
  [[nodiscard]] const LaunchEnv& env() const noexcept { return env_; }

  using Communicator::all_gather;
  using Communicator::all_reduce;
  using Communicator::broadcast;

  void all_reduce(std::span<torch::Tensor> tensors, ReduceOp op = ReduceOp::sum) override {
    check_reducible(tensors, op, "C10dCommunicator::all_reduce");
    if (tensors.empty()) return;
    std::vector<torch::Tensor> on_device = to_device(tensors);
    c10d::AllreduceOptions o;
    o.reduceOp = to_c10d(op);
    o.timeout = options_.timeout;
    // c10d reduces a list of tensors as copies of one tensor (one per device); kaizen's are different tensors,
    // so each is its own collective.
    for (torch::Tensor& t : on_device) {
      std::vector<torch::Tensor> one{t};
      run("all_reduce", [&] { return group_->allreduce(one, o); });
    }
    copy_back(tensors, on_device);
    if (op == ReduceOp::mean)
      for (torch::Tensor& t : tensors) t.div_(env_.world_size);
  }

  [[nodiscard]] Blobs all_gather(std::span<const std::uint8_t> blob) override {
    // Sizes first, then one gather of blobs padded to the largest.
    torch::Tensor size = torch::tensor({static_cast<std::int64_t>(blob.size())}, torch::kLong).to(device_);
    std::vector<torch::Tensor> sizes = gather_equal(size, "all_gather");
    std::int64_t largest = 0;
    std::vector<std::int64_t> n(sizes.size());
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      n[r] = sizes[r].cpu().item<std::int64_t>();
      largest = std::max(largest, n[r]);
    }
    Blobs out(sizes.size());
    if (largest == 0) return out;
    torch::Tensor mine = torch::zeros({largest}, torch::kUInt8);
    if (!blob.empty()) std::memcpy(mine.data_ptr<std::uint8_t>(), blob.data(), blob.size());
    std::vector<torch::Tensor> all = gather_equal(mine.to(device_), "all_gather");
    for (std::size_t r = 0; r < all.size(); ++r) {
      const torch::Tensor t = all[r].cpu().contiguous();
      const auto* p = t.data_ptr<std::uint8_t>();
      out[r].assign(p, p + n[r]);
    }
    return out;
  }

  void broadcast(std::span<torch::Tensor> tensors, int root = 0) override {
    KAIZEN_CHECK(root >= 0 && root < env_.world_size, "C10dCommunicator::broadcast: root must be in [0, ",
                 env_.world_size, "), got ", root);
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      KAIZEN_CHECK(tensors[i].defined() && tensors[i].is_contiguous(), "C10dCommunicator::broadcast: tensor ", i,
                   " must be defined and contiguous");
    }
    std::vector<torch::Tensor> on_device = to_device(tensors);
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = options_.timeout;
    for (torch::Tensor& t : on_device) {
      std::vector<torch::Tensor> one{t};
      run("broadcast", [&] { return group_->broadcast(one, o); });
    }
    copy_back(tensors, on_device);
  }

  void barrier() override {
    // An all-reduce of one element: unlike c10d's barrier on NCCL it needs no device guess, and it fails the
    // same way on a missing rank.
    torch::Tensor t = torch::zeros({1}, torch::kInt).to(device_);
    std::vector<torch::Tensor> one{t};
    c10d::AllreduceOptions o;
    o.timeout = options_.timeout;
    run("barrier", [&] { return group_->allreduce(one, o); });
  }

  /// Collectives issued so far (each failure diagnosis is keyed by it).
  [[nodiscard]] std::int64_t collectives() const noexcept { return sequence_; }

  [[nodiscard]] std::function<void()> start_all_reduce(torch::Tensor& tensor, ReduceOp op = ReduceOp::sum) override {
    check_reducible(std::span<const torch::Tensor>(&tensor, 1), op, "C10dCommunicator::start_all_reduce");
    KAIZEN_CHECK(tensor.device() == device_, "C10dCommunicator::start_all_reduce: the tensor is on ", tensor.device(),
                 " but this ", backend_, " group works on ", device_);
    c10::intrusive_ptr<c10d::Work> work = all_reduce_async(tensor, op);
    return [this, work, op, tensor]() mutable {
      wait(work);
      if (op == ReduceOp::mean) tensor.div_(env_.world_size);
    };
  }

  /// Starts a raw c10d all-reduce (sum, max, min; mean sums) of one tensor on this group's device without waiting;
  /// wait with wait(). The benchmark's baseline.
  [[nodiscard]] c10::intrusive_ptr<c10d::Work> all_reduce_async(torch::Tensor& tensor, ReduceOp op = ReduceOp::sum) {
    std::vector<torch::Tensor> one{tensor};
    c10d::AllreduceOptions o;
    o.reduceOp = to_c10d(op);
    o.timeout = options_.timeout;
    ++sequence_;
    try {
      return group_->allreduce(one, o);
    } catch (const std::exception& e) {
      diagnose_and_throw("all_reduce", e.what());
    }
  }
  void wait(const c10::intrusive_ptr<c10d::Work>& work, std::string_view what = "all_reduce") {
    try {
      work->wait(options_.timeout);
    } catch (const std::exception& e) {
      diagnose_and_throw(what, e.what());
    }
  }

 private:
  [[nodiscard]] static std::string first_line(const char* what) {
    std::string s(what);
    const auto nl = s.find('\n');
    if (nl != std::string::npos) s.resize(nl);
    return s;
  }
  [[nodiscard]] static bool is_loopback(const std::string& addr) {
    return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
  }
  [[nodiscard]] static c10d::ReduceOp to_c10d(ReduceOp op) {
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::mean: return c10d::ReduceOp::SUM;
      case ReduceOp::max: return c10d::ReduceOp::MAX;
      case ReduceOp::min: return c10d::ReduceOp::MIN;
    }
    return c10d::ReduceOp::SUM;
  }
  [[nodiscard]] std::vector<torch::Tensor> to_device(std::span<torch::Tensor> tensors) const {
    std::vector<torch::Tensor> out;
    out.reserve(tensors.size());
    for (torch::Tensor& t : tensors) out.push_back(t.device() == device_ ? t : t.to(device_));
    return out;
  }
  static void copy_back(std::span<torch::Tensor> tensors, const std::vector<torch::Tensor>& on_device) {
    for (std::size_t i = 0; i < tensors.size(); ++i)
      if (!on_device[i].is_same(tensors[i])) tensors[i].copy_(on_device[i]);
  }
  [[nodiscard]] std::vector<torch::Tensor> gather_equal(const torch::Tensor& input, std::string_view what) {
    std::vector<std::vector<torch::Tensor>> outputs(1);
    for (int r = 0; r < env_.world_size; ++r) outputs[0].push_back(torch::empty_like(input));
    std::vector<torch::Tensor> inputs{input};
    c10d::AllgatherOptions o;
    o.timeout = options_.timeout;
    run(what, [&] { return group_->allgather(outputs, inputs, o); });
    return outputs[0];
  }

  template <class Start>
  void run(std::string_view what, Start&& start) {
    ++sequence_;
    try {
      c10::intrusive_ptr<c10d::Work> work = start();
      work->wait(options_.timeout);
    } catch (const std::exception& e) {
      diagnose_and_throw(what, e.what());
    }
  }

  /// Finds which ranks are gone (see the top of the file) and throws kaizen::Error naming them.
  [[noreturn]] void diagnose_and_throw(std::string_view what, const char* cause) {
    const std::string prefix = "kaizen/alive/" + std::to_string(sequence_) + "/";
    std::string missing;
    std::string store_problem;
    try {
      store_->setTimeout(options_.diagnose_timeout);
      store_->set(prefix + std::to_string(env_.rank), std::vector<std::uint8_t>{1});
      const auto deadline = std::chrono::steady_clock::now() + options_.diagnose_timeout;
      for (int r = 0; r < env_.world_size; ++r) {
        if (r == env_.rank) continue;
        bool seen = false;
        while (true) {
          if (store_->check({prefix + std::to_string(r)})) {
            seen = true;
            break;
          }
          if (std::chrono::steady_clock::now() >= deadline) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        if (!seen) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      }
    } catch (const std::exception& e) {
      store_problem = first_line(e.what());
    }
    if (!store_problem.empty()) {
      fail("C10dCommunicator: ", what, " #", sequence_, " failed on rank ", env_.rank, " of ", env_.world_size,
           ", and the store served by rank 0 at MASTER_ADDR=", env_.master_addr, " MASTER_PORT=", env_.master_port,
           " is gone too: rank 0 died or is unreachable (store: ", store_problem, "; collective: ", first_line(cause),
           ")");
    }
    if (!missing.empty()) {
      fail("C10dCommunicator: ", what, " #", sequence_, " failed on rank ", env_.rank, " of ", env_.world_size,
           ": rank ", missing, " did not answer within ", options_.diagnose_timeout.count(),
           " ms (dead, hung, or not in this collective): ", first_line(cause));
    }
    fail("C10dCommunicator: ", what, " #", sequence_, " failed on rank ", env_.rank, " of ", env_.world_size,
         " although every rank answered (mismatched shapes or dtypes between ranks?): ", first_line(cause));
  }

  LaunchEnv env_;
  C10dOptions options_;
  std::string backend_;
  torch::Device device_{torch::kCPU};
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> group_;
  std::int64_t sequence_ = 0;
};

/// The communicator of this process: C10dCommunicator when the environment describes a job (RANK / WORLD_SIZE,
/// or Slurm's), SingleProcess otherwise. Throws kaizen::Error as LaunchEnv::from_environment and
/// C10dCommunicator do.
[[nodiscard]] inline std::unique_ptr<Communicator> make_communicator(const C10dOptions& options = {}) {
  if (!LaunchEnv::present()) return std::make_unique<SingleProcess>();
  return std::make_unique<C10dCommunicator>(LaunchEnv::from_environment(), options);
}

}  // namespace kaizen::distributed
