#include <cmath>
#include <limits>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <kaizen/preference/sequence_logprobs.hpp>

namespace pref = kaizen::preference;

TEST_CASE("sequence_logprobs sums and averages only the masked tokens", "[preference][sequence_logprobs]") {
  const double inf = std::numeric_limits<double>::infinity();
  // Padding holds -inf and NaN: they must not leak into the result or its gradient.
  const auto lp = torch::tensor({0.0, -1.0, -2.0, -inf, 0.0, -0.5, -0.25, std::nan("")}, torch::kFloat64)
                      .reshape({2, 4})
                      .requires_grad_();
  const auto mask = torch::tensor({0, 1, 1, 0, 0, 1, 1, 0}, torch::kBool).reshape({2, 4});
  const auto sum = pref::sequence_logprobs(lp, mask);
  CHECK(sum[0].item<double>() == Approx(-3.0));
  CHECK(sum[1].item<double>() == Approx(-0.75));
  const auto mean = pref::sequence_logprobs(lp, mask, pref::SequenceReduction::mean);
  CHECK(mean[0].item<double>() == Approx(-1.5));
  CHECK(mean[1].item<double>() == Approx(-0.375));
  (sum.sum() + mean.sum()).backward();
  const auto g = lp.grad();
  REQUIRE(torch::isfinite(g).all().item<bool>());
  CHECK(g[0][1].item<double>() == Approx(1.5));
  CHECK(g[0][0].item<double>() == 0.0);
  CHECK(g[0][3].item<double>() == 0.0);
  CHECK(g[1][3].item<double>() == 0.0);
  CHECK(pref::token_counts(mask).equal(torch::tensor({2.0F, 2.0F})));
}

TEST_CASE("a float mask works like a bool mask", "[preference][sequence_logprobs]") {
  const auto lp = torch::randn({3, 5}, torch::kFloat64);
  const auto mask = torch::tensor({1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1}, torch::kBool).reshape({3, 5});
  CHECK(pref::sequence_logprobs(lp, mask).allclose(pref::sequence_logprobs(lp, mask.to(torch::kFloat32))));
}

TEST_CASE("pair_logprobs splits a concatenated batch into chosen and rejected halves", "[preference][sequence_logprobs]") {
  const auto lp = -torch::rand({6, 4}, torch::kFloat64);
  const auto ref = -torch::rand({6, 4}, torch::kFloat64).requires_grad_();
  auto mask = torch::ones({6, 4}, torch::kBool);
  mask[2][3] = false;
  mask[4][0] = false;
  const auto p = pref::pair_logprobs(lp, mask, ref);
  const auto sums = (lp * mask).sum(1);
  CHECK(p.chosen.allclose(sums.narrow(0, 0, 3)));
  CHECK(p.rejected.allclose(sums.narrow(0, 3, 3)));
  CHECK(p.reference_chosen.allclose((ref * mask).sum(1).narrow(0, 0, 3)));
  CHECK_FALSE(p.reference_chosen.requires_grad());
  CHECK(p.chosen_lengths.equal(torch::tensor({4.0, 4.0, 3.0}, torch::kFloat64)));
  CHECK(p.rejected_lengths.equal(torch::tensor({4.0, 3.0, 4.0}, torch::kFloat64)));
  const auto no_ref = pref::pair_logprobs(lp, mask);
  CHECK_FALSE(no_ref.reference_chosen.defined());
}

TEST_CASE("split_chosen_rejected returns the two halves", "[preference][sequence_logprobs]") {
  const auto t = torch::arange(8);
  const auto [c, r] = pref::split_chosen_rejected(t);
  CHECK(c.equal(torch::arange(4)));
  CHECK(r.equal(torch::arange(4, 8)));
}

TEST_CASE("sequence log-prob helpers reject bad input", "[preference][sequence_logprobs]") {
  const auto lp = torch::zeros({2, 3});
  CHECK_THROWS_WITH(pref::sequence_logprobs(torch::zeros({6}), torch::ones({6}, torch::kBool)),
                    Catch::StartsWith("sequence_logprobs: expected token log-probs of shape [B, T], got [6]"));
  CHECK_THROWS_WITH(pref::sequence_logprobs(lp, torch::ones({2, 4}, torch::kBool)),
                    Catch::StartsWith("sequence_logprobs: expected a mask of shape [2, 3], got [2, 4]"));
  CHECK_THROWS_WITH(pref::sequence_logprobs(torch::zeros({2, 3}, torch::kInt64), torch::ones({2, 3}, torch::kBool)),
                    Catch::StartsWith("sequence_logprobs: expected floating-point token log-probs, got Long"));
  auto mask = torch::ones({2, 3}, torch::kBool);
  mask[1].fill_(false);
  CHECK_THROWS_WITH(pref::sequence_logprobs(lp, mask),
                    Catch::StartsWith("sequence_logprobs: expected at least one masked token per row, row 1 has none"));
  auto bad = torch::zeros({2, 3});
  bad[0][1] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(pref::sequence_logprobs(bad, torch::ones({2, 3}, torch::kBool)),
                    Catch::StartsWith("sequence_logprobs: expected finite log-probs under the mask, row 0 has a non-finite value"));
  CHECK_THROWS_WITH(pref::split_chosen_rejected(torch::zeros({5})),
                    Catch::StartsWith("split_chosen_rejected: expected an even, non-zero number of rows (chosen then rejected), got 5"));
  auto bad_reference = torch::zeros({4, 3});
  bad_reference[3][2] = -std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(pref::pair_logprobs(torch::zeros({4, 3}), torch::ones({4, 3}, torch::kBool), bad_reference),
                    Catch::StartsWith("pair_logprobs: expected finite log-probs under the mask, row 3 has a non-finite value"));
  CHECK_THROWS_WITH(pref::pair_logprobs(torch::zeros({4, 3}), torch::ones({4, 3}, torch::kBool), torch::zeros({4, 2})),
                    Catch::StartsWith("pair_logprobs: expected reference token log-probs of shape [4, 3], got [4, 2]"));
}
