// kaizen/distributed/communicator.hpp - the collective operations a data-parallel loop needs, behind one small
// interface: all-reduce of tensors (sum, mean, max, min), all-gather of variable-size byte blobs (rollouts,
// metrics), broadcast of tensors from one rank, barrier.
//
// Every rank must call the same collectives in the same order (as with any process group). Tensors are reduced
// in place; `mean` is the sum divided by the world size (floating-point dtypes only). A failed or timed-out
// collective throws kaizen::Error naming the rank that did not take part where it can be found out (see
// distributed/c10d.hpp). Implementations: SingleProcess (distributed/single_process.hpp, world size 1, every
// operation an identity) and C10dCommunicator (distributed/c10d.hpp, LibTorch's Gloo or NCCL process group).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/error.hpp>

namespace kaizen::distributed {

enum class ReduceOp : std::uint8_t { sum, mean, max, min };

[[nodiscard]] constexpr std::string_view to_string(ReduceOp op) noexcept {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::mean: return "mean";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "unknown";
}

/// One byte blob per rank, in rank order.
using Blobs = std::vector<std::vector<std::uint8_t>>;

/// The collectives of one group of `world_size()` processes, this one being `rank()`.
class Communicator {
 public:
  virtual ~Communicator() = default;

  [[nodiscard]] virtual int rank() const noexcept = 0;
  [[nodiscard]] virtual int world_size() const noexcept = 0;
  /// The rank among the processes of this machine (LOCAL_RANK; picks the GPU).
  [[nodiscard]] virtual int local_rank() const noexcept = 0;
  /// "gloo", "nccl", "single".
  [[nodiscard]] virtual std::string backend() const = 0;

  /// Reduces each tensor elementwise over the ranks, in place (contiguous tensors, same shape and dtype on
  /// every rank). Throws kaizen::Error on a non-contiguous tensor, `mean` of an integer tensor, or a failure.
  virtual void all_reduce(std::span<torch::Tensor> tensors, ReduceOp op = ReduceOp::sum) = 0;
  /// Every rank's blob, in rank order (sizes may differ per rank, 0 included).
  [[nodiscard]] virtual Blobs all_gather(std::span<const std::uint8_t> blob) = 0;
  /// Overwrites each tensor with `root`'s (same shapes and dtypes on every rank).
  virtual void broadcast(std::span<torch::Tensor> tensors, int root = 0) = 0;
  /// Returns once every rank has called it.
  virtual void barrier() = 0;
  /// Starts an in-place all-reduce of one contiguous tensor and returns the function that waits for it (and
  /// divides, for mean). Every rank must start the same tensors in the same order. This default reduces at once
  /// and returns a no-op; C10dCommunicator returns while the engine works.
  [[nodiscard]] virtual std::function<void()> start_all_reduce(torch::Tensor& tensor, ReduceOp op = ReduceOp::sum) {
    all_reduce(tensor, op);
    return [] {};
  }

  /// Convenience: one tensor.
  void all_reduce(torch::Tensor& tensor, ReduceOp op = ReduceOp::sum) { all_reduce(std::span<torch::Tensor>(&tensor, 1), op); }
  void broadcast(torch::Tensor& tensor, int root = 0) { broadcast(std::span<torch::Tensor>(&tensor, 1), root); }
  /// Reduces one double over the ranks (metrics).
  [[nodiscard]] double all_reduce(double value, ReduceOp op) {
    torch::Tensor t = torch::tensor({value}, torch::kDouble);
    all_reduce(t, op);
    return t.item<double>();
  }
  [[nodiscard]] Blobs all_gather(std::string_view text) {
    return all_gather(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  }
};

/// The checks every implementation applies before a reduction (shared so messages agree).
inline void check_reducible(std::span<const torch::Tensor> tensors, ReduceOp op, std::string_view who) {
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const torch::Tensor& t = tensors[i];
    KAIZEN_CHECK(t.defined(), who, ": tensor ", i, " is undefined");
    KAIZEN_CHECK(t.is_contiguous(), who, ": tensor ", i, " is not contiguous (shape ", t.sizes(), ", strides ",
                 t.strides(), "); reduce a contiguous tensor and copy back");
    KAIZEN_CHECK(op != ReduceOp::mean || t.is_floating_point(), who, ": mean of tensor ", i, " needs a floating-point "
                 "dtype, got ", t.scalar_type(), "; reduce with sum and divide");
  }
}

/// [begin, end) of the items that rank `rank` of `world` owns when `count` items are split into contiguous
/// blocks whose sizes differ by at most one (the first count % world ranks get one more).
struct ShardRange {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  [[nodiscard]] std::int64_t size() const noexcept { return end - begin; }
};

[[nodiscard]] inline ShardRange shard_range(std::int64_t count, int rank, int world) {
  KAIZEN_CHECK(world >= 1 && rank >= 0 && rank < world, "shard_range: expected 0 <= rank < world, got rank ", rank,
               ", world ", world);
  KAIZEN_CHECK(count >= 0, "shard_range: count must be >= 0, got ", count);
  const std::int64_t base = count / world;
  const std::int64_t extra = count % world;
  const std::int64_t begin = rank * base + std::min<std::int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

}  // namespace kaizen::distributed
