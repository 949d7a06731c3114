// Gradient checkpointing (torch/checkpoint.hpp, LlamaConfig::gradient_checkpointing). Oracle: the same
// computation without checkpointing — values and gradients must agree (the recomputation replays the
// forward's random state and autocast state), and the caller's random stream must be left as it was.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/precision.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/torch/checkpoint.hpp>

namespace {

using kaizen::TokenBatch;
using kaizen::lm::LlamaConfig;
using kaizen::lm::LlamaModel;

const bool kOneThread = [] {
  torch::set_num_threads(1);
  return true;
}();

constexpr std::int64_t kVocab = 40;

LlamaConfig config() {
  LlamaConfig c;
  c.vocab_size = kVocab;
  c.hidden_size = 32;
  c.intermediate_size = 80;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 32;
  return c;
}

TokenBatch make_batch() {
  torch::manual_seed(11);
  std::vector<kaizen::Rollout> rollouts(6);
  for (std::size_t i = 0; i < rollouts.size(); ++i) {
    for (std::size_t t = 0; t < 3 + i % 2; ++t) rollouts[i].prompt.push_back(torch::randint(kVocab, {1}).item<std::int64_t>());
    for (std::size_t t = 0; t < 2 + 2 * i; ++t)
      rollouts[i].completion.tokens.push_back(torch::randint(kVocab, {1}).item<std::int64_t>());
    rollouts[i].group = static_cast<std::int64_t>(i);
  }
  return kaizen::collate(std::span<const kaizen::Rollout>(rollouts), {.vocab_size = kVocab, .max_length = 32});
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

struct Result {
  double loss = 0.0;
  torch::Tensor logprobs;
  std::vector<torch::Tensor> grads;
};

/// A loss of every parameter: the mean completion-token log-prob (fused path) plus a logits-path term.
template <class P>
Result loss_and_grads(P& policy, LlamaModel& model, const TokenBatch& batch) {
  for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
  Result r;
  r.logprobs = kaizen::loop::policy_logprobs(policy, batch);
  const torch::Tensor mask = batch.completion_mask.to(r.logprobs.scalar_type());
  const torch::Tensor loss = -(r.logprobs * mask).sum() / mask.sum() + 1e-3 * policy.logits(batch).pow(2).mean();
  loss.backward();
  r.loss = loss.item<double>();
  for (auto& p : model.parameters()) r.grads.push_back(p.grad().clone());
  return r;
}

void check_same(const Result& a, const Result& b, double tolerance) {
  CHECK(std::abs(a.loss - b.loss) <= tolerance);
  CHECK(max_abs_diff(a.logprobs, b.logprobs) <= tolerance);
  REQUIRE(a.grads.size() == b.grads.size());
  double worst = 0.0, largest = 0.0;
  for (std::size_t i = 0; i < a.grads.size(); ++i) {
    worst = std::max(worst, max_abs_diff(a.grads[i], b.grads[i]));
    largest = std::max(largest, b.grads[i].abs().max().item<double>());
  }
  CHECK(worst <= tolerance);
  CHECK(largest > 1e-4);  // the gradients compared are not all zero
}

}  // namespace

TEST_CASE("Checkpointed decoder layers give the same loss and gradients", "[models][checkpointing]") {
  REQUIRE(kOneThread);
  const TokenBatch batch = make_batch();
  for (const auto& [dtype, tolerance] : {std::pair{torch::kFloat, 1e-6}, std::pair{torch::kDouble, 1e-12}}) {
    INFO((dtype == torch::kFloat ? "float32" : "float64"));
    torch::manual_seed(2);
    LlamaModel plain(config());
    plain.to(dtype);
    LlamaConfig c = config();
    c.gradient_checkpointing = true;
    LlamaModel checkpointed(c);
    checkpointed.to(dtype);
    checkpointed.copy_from(plain);
    CHECK(checkpointed.config().gradient_checkpointing);
    const Result a = loss_and_grads(plain, plain, batch);
    const Result b = loss_and_grads(checkpointed, checkpointed, batch);
    check_same(b, a, tolerance);
    // The graph holds one node per layer instead of each layer's operations.
    const torch::Tensor h = checkpointed.hidden_states(batch);
    CHECK(h.grad_fn() != nullptr);
    // Turned off again: the plain path.
    checkpointed.set_gradient_checkpointing(false);
    check_same(loss_and_grads(checkpointed, checkpointed, batch), a, tolerance);
  }
}

TEST_CASE("Checkpointing under bf16 autocast recomputes in bf16", "[models][checkpointing]") {
  REQUIRE(kOneThread);
  const TokenBatch batch = make_batch();
  torch::manual_seed(2);
  LlamaModel plain(config());
  LlamaConfig c = config();
  c.gradient_checkpointing = true;
  LlamaModel checkpointed(c);
  checkpointed.copy_from(plain);
  kaizen::loop::Bf16Compute<LlamaModel> plain16{&plain}, checkpointed16{&checkpointed};
  const Result a = loss_and_grads(plain16, plain, batch);
  const Result b = loss_and_grads(checkpointed16, checkpointed, batch);
  // Were the recomputation run in fp32, the gradients would differ by bf16 rounding (~1e-3), not 1e-6.
  check_same(b, a, 1e-6);
  const Result fp32 = loss_and_grads(plain, plain, batch);
  CHECK(std::abs(fp32.loss - a.loss) > 1e-6);  // the bf16 run is a bf16 run
}

TEST_CASE("ops::checkpoint replays dropout and leaves the caller's random stream unchanged", "[models][checkpointing]") {
  REQUIRE(kOneThread);
  const torch::Tensor w = torch::randn({16, 16}, torch::kDouble).requires_grad_(true);
  const torch::Tensor x0 = torch::randn({8, 16}, torch::kDouble);
  auto fn = [&](const torch::Tensor& x) { return torch::tanh(torch::dropout(torch::matmul(x, w), 0.5, true)); };
  auto run = [&](bool checkpointed) {
    w.mutable_grad() = torch::Tensor();
    const torch::Tensor x = x0.clone().requires_grad_(true);
    torch::manual_seed(123);
    const torch::Tensor y = checkpointed ? kaizen::ops::checkpoint(fn, x, {w}) : fn(x);
    const torch::Tensor after_forward = torch::rand({4}, torch::kDouble);
    (y * torch::linspace(-1, 1, 16, torch::kDouble)).sum().backward();
    const torch::Tensor after_backward = torch::rand({4}, torch::kDouble);
    return std::vector<torch::Tensor>{y.detach(), x.grad().clone(), w.grad().clone(), after_forward, after_backward};
  };
  const auto plain = run(false);
  const auto ckpt = run(true);
  CHECK(torch::equal(plain[0], ckpt[0]));   // the same dropout mask in the forward
  CHECK(max_abs_diff(plain[1], ckpt[1]) <= 1e-12);  // ∂L/∂x
  CHECK(max_abs_diff(plain[2], ckpt[2]) <= 1e-12);  // ∂L/∂w: the recomputation drew the same mask
  CHECK(torch::equal(plain[3], ckpt[3]));
  CHECK(torch::equal(plain[4], ckpt[4]));  // backward left the generator where the plain run leaves it
  CHECK((plain[0] == 0).any().item<bool>());  // dropout did drop
}

TEST_CASE("ops::checkpoint without gradient, with frozen tensors, and its errors", "[models][checkpointing]") {
  REQUIRE(kOneThread);
  const torch::Tensor w = torch::randn({4, 4});
  const torch::Tensor frozen = torch::randn({4, 4});
  const torch::Tensor x = torch::randn({2, 4});
  auto fn = [&](const torch::Tensor& v) { return torch::matmul(torch::matmul(v, w), frozen); };
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor y = kaizen::ops::checkpoint(fn, x, {w, frozen});
    CHECK(torch::allclose(y, fn(x)));
    CHECK(y.grad_fn() == nullptr);
  }
  // Only w is trainable: the frozen tensor is skipped, x needs no gradient, w gets its gradient.
  const torch::Tensor wt = w.clone().requires_grad_(true);
  auto fn_t = [&](const torch::Tensor& v) { return torch::matmul(torch::matmul(v, wt), frozen); };
  kaizen::ops::checkpoint(fn_t, x, {wt, frozen}).sum().backward();
  const torch::Tensor g = wt.grad().clone();
  wt.mutable_grad() = torch::Tensor();
  fn_t(x).sum().backward();
  CHECK(torch::allclose(g, wt.grad(), 1e-6, 1e-6));
  CHECK_FALSE(frozen.grad().defined());

  CHECK_THROWS_WITH(kaizen::ops::checkpoint(fn, torch::Tensor(), {w}), Catch::Contains("checkpoint: the input is undefined"));
}

TEST_CASE("Decoding with a KV cache is unchanged by the checkpointing flag", "[models][checkpointing]") {
  REQUIRE(kOneThread);
  const TokenBatch batch = make_batch();
  torch::manual_seed(2);
  LlamaModel plain(config());
  LlamaConfig c = config();
  c.gradient_checkpointing = true;
  LlamaModel checkpointed(c);
  checkpointed.copy_from(plain);
  kaizen::lm::KvCache a, b;
  const torch::Tensor ha = plain.forward(batch.input_ids, batch.position_ids, batch.attention_mask, &a);
  const torch::Tensor hb = checkpointed.forward(batch.input_ids, batch.position_ids, batch.attention_mask, &b);
  CHECK(torch::equal(ha, hb));
  CHECK(a.length() == b.length());
}
