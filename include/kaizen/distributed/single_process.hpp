// kaizen/distributed/single_process.hpp - the communicator of a run in one process: rank 0 of a world of 1.
// Every collective is an identity (all_reduce leaves the tensors as they are, mean included; all_gather returns
// the one blob; broadcast and barrier do nothing) after the same argument checks as the multi-process ones, so a
// loop written against kaizen::distributed::Communicator runs unchanged, and a bad call fails here too.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/distributed/communicator.hpp>

namespace kaizen::distributed {

class SingleProcess final : public Communicator {
 public:
  [[nodiscard]] int rank() const noexcept override { return 0; }
  [[nodiscard]] int world_size() const noexcept override { return 1; }
  [[nodiscard]] int local_rank() const noexcept override { return 0; }
  [[nodiscard]] std::string backend() const override { return "single"; }

  using Communicator::all_gather;
  using Communicator::all_reduce;
  using Communicator::broadcast;

  void all_reduce(std::span<torch::Tensor> tensors, ReduceOp op = ReduceOp::sum) override {
    check_reducible(tensors, op, "SingleProcess::all_reduce");
  }
  [[nodiscard]] Blobs all_gather(std::span<const std::uint8_t> blob) override {
    return Blobs{std::vector<std::uint8_t>(blob.begin(), blob.end())};
  }
  void broadcast(std::span<torch::Tensor> tensors, int root = 0) override {
    KAIZEN_CHECK(root == 0, "SingleProcess::broadcast: root must be 0 in a world of 1, got ", root);
    for (std::size_t i = 0; i < tensors.size(); ++i)
      KAIZEN_CHECK(tensors[i].defined(), "SingleProcess::broadcast: tensor ", i, " is undefined");
  }
  void barrier() override {}
};

}  // namespace kaizen::distributed
