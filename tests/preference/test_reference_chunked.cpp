// Reference-model strategies (frozen, TR-DPO soft and hard updates, reference-free) on a toy Policy,
// and chunked evaluation, which must reproduce the whole-batch loss and gradients.
#include <functional>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <kaizen/core/policy.hpp>
#include <kaizen/preference/chunked.hpp>
#include <kaizen/preference/cpo.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/reference_strategy.hpp>

namespace pref = kaizen::preference;

namespace {

struct ToyPolicy {
  torch::Tensor weight;
  torch::Tensor bias;
  explicit ToyPolicy(double seed)
      : weight(torch::full({3, 2}, seed, torch::kFloat64).requires_grad_()),
        bias(torch::full({2}, -seed, torch::kFloat64).requires_grad_()) {}
  torch::Tensor logits(const kaizen::TokenBatch& batch) {
    return torch::zeros({batch.batch_size(), batch.length(), 2}, torch::kFloat64) + bias;
  }
  std::vector<torch::Tensor> parameters() { return {weight, bias}; }
};
static_assert(kaizen::Policy<ToyPolicy>);

bool same(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!a[i].equal(b[i])) return false;
  return true;
}

std::vector<torch::Tensor> snapshot(ToyPolicy& p) {
  std::vector<torch::Tensor> out;
  for (const auto& t : p.parameters()) out.push_back(t.detach().clone());
  return out;
}

}  // namespace

TEST_CASE("a frozen reference never changes", "[preference][reference]") {
  ToyPolicy policy(1.0), reference(0.0);
  pref::FrozenReference frozen;
  STATIC_REQUIRE(pref::FrozenReference::kUsesReference);
  const auto before = snapshot(reference);
  for (int i = 0; i < 5; ++i) CHECK_FALSE(frozen.after_step(policy, reference));
  CHECK(same(reference.parameters(), before));
}

TEST_CASE("the soft update mixes alpha of the policy into the reference every k steps", "[preference][reference]") {
  ToyPolicy policy(1.0), reference(0.2);
  const auto* data = reference.weight.data_ptr<double>();
  pref::SoftUpdateReference soft(0.25, 2);
  const auto before = snapshot(reference);
  CHECK_FALSE(soft.after_step(policy, reference));
  CHECK(same(reference.parameters(), before));
  CHECK(soft.after_step(policy, reference));
  CHECK(reference.weight.allclose(torch::full({3, 2}, 0.75 * 0.2 + 0.25 * 1.0, torch::kFloat64), 0, 1e-15));
  CHECK(reference.bias.allclose(torch::full({2}, 0.75 * -0.2 + 0.25 * -1.0, torch::kFloat64), 0, 1e-15));
  CHECK(reference.weight.data_ptr<double>() == data);  // in place: optimisers and views stay valid
  CHECK(reference.weight.requires_grad());
  CHECK(reference.weight.grad_fn() == nullptr);
  CHECK(soft.steps() == 2);
  // Repeated mixing converges to the policy geometrically.
  for (int i = 0; i < 200; ++i) (void)soft.after_step(policy, reference);
  CHECK(reference.weight.allclose(policy.weight, 0, 1e-12));
}

TEST_CASE("the hard sync copies the policy every k steps", "[preference][reference]") {
  ToyPolicy policy(1.5), reference(0.0);
  pref::HardSyncReference hard(3);
  CHECK_FALSE(hard.after_step(policy, reference));
  CHECK_FALSE(hard.after_step(policy, reference));
  CHECK(reference.weight.abs().sum().item<double>() == 0.0);
  CHECK(hard.after_step(policy, reference));
  CHECK(same(reference.parameters(), policy.parameters()));
  STATIC_REQUIRE_FALSE(pref::ReferenceFree::kUsesReference);
}

TEST_CASE("reference strategies reject bad settings and mismatched models", "[preference][reference]") {
  CHECK_THROWS_WITH(pref::SoftUpdateReference(0.0, 1),
                    Catch::StartsWith("SoftUpdateReference: expected alpha in (0, 1], got 0"));
  CHECK_THROWS_WITH(pref::SoftUpdateReference(0.5, 0),
                    Catch::StartsWith("SoftUpdateReference: expected every >= 1 step, got 0"));
  CHECK_THROWS_WITH(pref::HardSyncReference(-2), Catch::StartsWith("HardSyncReference: expected every >= 1 step, got -2"));
  const std::vector<torch::Tensor> two = {torch::zeros({2}), torch::zeros({3})};
  CHECK_THROWS_WITH(pref::mix_parameters(two, {torch::zeros({2})}, 0.5),
                    Catch::StartsWith("mix_parameters: expected as many reference as policy parameters, got 2 and 1"));
  CHECK_THROWS_WITH(pref::mix_parameters(two, {torch::zeros({2}), torch::zeros({4})}, 0.5),
                    Catch::StartsWith("mix_parameters: parameter 1 has shape [3] in the reference but [4] in the policy"));
  CHECK_THROWS_WITH(pref::mix_parameters(two, two, 1.5), Catch::StartsWith("mix_parameters: expected alpha in (0, 1], got 1.5"));
}

namespace {

// A linear "model": sequence log-probs of pair i are features_i · w − 20, so gradients reach w.
struct ChunkFixture {
  std::int64_t n = 10;
  torch::Tensor w = (0.1 * torch::randn({4}, torch::kFloat64)).requires_grad_();
  torch::Tensor xc = torch::randn({10, 4}, torch::kFloat64), xr = torch::randn({10, 4}, torch::kFloat64);
  torch::Tensor rc = -20 + torch::randn({10}, torch::kFloat64), rr = -20 + torch::randn({10}, torch::kFloat64);
  torch::Tensor lc = torch::randint(3, 30, {10}, torch::kFloat64), lr = torch::randint(3, 30, {10}, torch::kFloat64);

  pref::PairLogProbs pairs(std::int64_t begin, std::int64_t end) {
    const std::int64_t k = end - begin;
    return {xc.narrow(0, begin, k).matmul(w) - 20, xr.narrow(0, begin, k).matmul(w) - 20, rc.narrow(0, begin, k),
            rr.narrow(0, begin, k), lc.narrow(0, begin, k), lr.narrow(0, begin, k)};
  }
};

void check_chunked_matches(const std::function<pref::PreferenceLoss(const pref::PairLogProbs&)>& loss) {
  torch::manual_seed(3);
  ChunkFixture f;
  const auto full = loss(f.pairs(0, f.n));
  full.loss.backward();
  const auto full_grad = f.w.grad().clone();
  f.w.mutable_grad().zero_();
  for (std::int64_t chunk : {1, 3, 4, 10, 64}) {
    INFO("chunk " << chunk);
    const auto chunked = pref::chunked_loss(
        f.n, [&](std::int64_t b, std::int64_t e) { return f.pairs(b, e); }, loss, {.chunk_size = chunk});
    CHECK(chunked.loss.item<double>() == Approx(full.loss.item<double>()).epsilon(1e-12));
    CHECK(chunked.per_example.allclose(full.per_example.detach(), 0, 1e-12));
    CHECK(chunked.chosen_rewards.allclose(full.chosen_rewards, 0, 1e-12));
    CHECK(chunked.metrics.margin.item<double>() == Approx(full.metrics.margin.item<double>()).epsilon(1e-12));
    CHECK(chunked.metrics.accuracy.item<double>() == full.metrics.accuracy.item<double>());
    CHECK(chunked.metrics.nll.defined() == full.metrics.nll.defined());
    if (full.metrics.nll.defined())
      CHECK(chunked.metrics.nll.item<double>() == Approx(full.metrics.nll.item<double>()).epsilon(1e-12));
    CHECK(f.w.grad().allclose(full_grad, 0, 1e-12));
    f.w.mutable_grad().zero_();
  }
  // Without backward, no gradient accumulates.
  (void)pref::chunked_loss(f.n, [&](std::int64_t b, std::int64_t e) { return f.pairs(b, e); }, loss,
                           {.chunk_size = 4, .backward = false});
  CHECK(f.w.grad().abs().sum().item<double>() == 0.0);
}

}  // namespace

TEST_CASE("chunked evaluation reproduces the whole-batch loss, metrics and gradients", "[preference][chunked]") {
  SECTION("DPO") { check_chunked_matches([](const pref::PairLogProbs& p) { return pref::dpo_loss(p); }); }
  SECTION("CPO, whose NLL metric is averaged across chunks") {
    check_chunked_matches([](const pref::PairLogProbs& p) { return pref::cpo_loss(p, {.beta = 0.2}); });
  }
}

TEST_CASE("chunked evaluation rejects bad sizes", "[preference][chunked]") {
  ChunkFixture f;
  const auto dpo = [](const pref::PairLogProbs& p) { return pref::dpo_loss(p); };
  const auto pairs = [&](std::int64_t b, std::int64_t e) { return f.pairs(b, e); };
  CHECK_THROWS_WITH(pref::chunked_loss(0, pairs, dpo), Catch::StartsWith("chunked_loss: expected num_pairs >= 1, got 0"));
  CHECK_THROWS_WITH(pref::chunked_loss(10, pairs, dpo, {.chunk_size = 0}),
                    Catch::StartsWith("chunked_loss: expected chunk_size >= 1, got 0"));
  const auto short_chunks = [&](std::int64_t b, std::int64_t e) { return f.pairs(b, std::max(b + 1, e - 1)); };
  CHECK_THROWS_WITH(pref::chunked_loss(10, short_chunks, dpo, {.chunk_size = 4}),
                    Catch::StartsWith("chunked_loss: chunk [0, 4) returned 3 per-pair losses, expected 4"));
}
