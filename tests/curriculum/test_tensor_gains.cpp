// advantage_gains over a tensor of advantages (kaizen/curriculum/tensor_gains.hpp) equals the span form.
#include <catch2/catch.hpp>

#include <vector>

#include <torch/torch.h>

#include <kaizen/curriculum/tensor_gains.hpp>
#include <kaizen/policy_gradient/advantages.hpp>

TEST_CASE("advantage_gains takes the tensor group_advantages returns", "[curriculum][sec]") {
  const std::vector<kaizen::ArmId> arms{0, 0, 1, 1, 2, 2};
  const torch::Tensor rewards = torch::tensor({1.0, 0.0, 1.0, 1.0, 0.0, 1.0}, torch::kFloat);
  const torch::Tensor groups = torch::tensor({0, 0, 1, 1, 2, 2}, torch::kLong);
  const torch::Tensor advantages = kaizen::policy_gradient::group_advantages(rewards, groups);
  const auto from_tensor = kaizen::curriculum::advantage_gains(arms, advantages);
  const torch::Tensor host = advantages.to(torch::kDouble);
  const std::vector<double> values(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
  const auto from_span = kaizen::curriculum::advantage_gains(std::span<const kaizen::ArmId>(arms), values);
  CHECK(from_tensor.arms == from_span.arms);
  REQUIRE(from_tensor.gains.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(from_tensor.gains[i] == Approx(from_span.gains[i]));
  CHECK(from_tensor.gains[1] == 0.0);   // a group with equal rewards earns nothing
  CHECK(from_tensor.gains[0] > 0.5);
}

TEST_CASE("advantage_gains rejects tensors of the wrong kind", "[curriculum][sec][errors]") {
  const std::vector<kaizen::ArmId> arms{0, 1};
  CHECK_THROWS_WITH(kaizen::curriculum::advantage_gains(arms, torch::zeros({2, 1})),
                    Catch::StartsWith("advantage_gains: expected advantages of shape [B], got [2, 1]"));
  CHECK_THROWS_WITH(kaizen::curriculum::advantage_gains(arms, torch::zeros({2}, torch::kLong)),
                    Catch::StartsWith("advantage_gains: expected floating-point advantages, got Long"));
  CHECK_THROWS_WITH(kaizen::curriculum::advantage_gains(arms, torch::zeros({3})),
                    Catch::StartsWith("advantage_gains: expected one advantage per arm id, got 2 arm ids and 3"));
}
