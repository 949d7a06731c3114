// Value / process-reward model (models/value_head.hpp): one forward pass scores every step of a path
// exactly as separate prefix passes do (causality) and padding changes nothing; the batched tree
// evaluator equals one-node-at-a-time scoring; training by MSE and BCE fits a learnable step label;
// the ProcessReward form plugs into search::ProcessRewardEvaluator; the policy's yes/no judge equals
// σ(l_yes − l_no) computed by hand; bad input and non-finite values are errors with the values.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/value_head.hpp>
#include <kaizen/search/process_reward_adapter.hpp>
#include <kaizen/search/tree.hpp>
#include <kaizen/tasks/tokenizer.hpp>

using namespace kaizen;
using Catch::Matchers::Contains;

namespace {

const bool kOneThread = [] {
  torch::set_num_threads(1);
  return true;
}();

lm::LlamaConfig tiny_config(std::int64_t vocab = 16) {
  lm::LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 24;
  return c;
}

/// A value model whose head is random (the default zero head would make every value 0.5).
lm::ValueModel random_model(std::uint64_t seed) {
  torch::manual_seed(seed);
  lm::ValueModel m(tiny_config());
  torch::NoGradGuard g;
  m.head->weight.normal_(0.0, 1.0);
  m.head->bias.fill_(0.1);
  return m;
}

double value_of(lm::ValueModel& m, const std::vector<TokenId>& seq) {
  const std::vector<std::vector<TokenId>> s{seq};
  const std::vector<std::vector<std::int64_t>> e{{static_cast<std::int64_t>(seq.size())}};
  return lm::score_paths(m, s, e).at(0);
}

}  // namespace

TEST_CASE("ValueModel: a zero head gives 0.5 everywhere, and one pass over a path equals each prefix scored alone") {
  REQUIRE(kOneThread);
  torch::manual_seed(1);
  lm::ValueModel fresh(tiny_config());
  const std::vector<std::vector<TokenId>> one{{3, 4, 5, 6}};
  const std::vector<std::vector<std::int64_t>> ends{{2, 4}};
  for (double v : lm::score_paths(fresh, one, ends)) CHECK(v == 0.5);

  lm::ValueModel m = random_model(2);
  const std::vector<TokenId> path{3, 4, 5, 6, 7, 8, 9};
  const std::vector<std::vector<TokenId>> seqs{path};
  const std::vector<std::vector<std::int64_t>> step_ends{{2, 5, 7}};
  const std::vector<double> all = lm::score_paths(m, seqs, step_ends);
  REQUIRE(all.size() == 3);
  CHECK(all[0] == Approx(value_of(m, {3, 4})).margin(1e-6));
  CHECK(all[1] == Approx(value_of(m, {3, 4, 5, 6, 7})).margin(1e-6));
  CHECK(all[2] == Approx(value_of(m, path)).margin(1e-6));
  for (double v : all) CHECK((v > 0.0 && v < 1.0));
  // Padding: a short path batched with a long one scores as it does alone.
  const std::vector<std::vector<TokenId>> two{{3, 4}, path};
  const std::vector<std::vector<std::int64_t>> two_ends{{2}, {7}};
  const std::vector<double> batched = lm::score_paths(m, two, two_ends);
  CHECK(batched[0] == Approx(all[0]).margin(1e-6));
  CHECK(batched[1] == Approx(all[2]).margin(1e-6));
  // Chunked batches give the same values.
  const std::vector<double> chunked = lm::score_paths(m, two, two_ends, 1);
  CHECK(chunked[0] == Approx(batched[0]).margin(1e-6));
  CHECK(chunked[1] == Approx(batched[1]).margin(1e-6));
}

TEST_CASE("ValueModelEvaluator scores all tree nodes in one call like node-by-node scoring, and ValueModelPrm is a ProcessReward") {
  lm::ValueModel m = random_model(3);
  struct S {};
  search::Tree<S> tree;
  const std::vector<TokenId> a{5, 6}, b{7}, c{8, 9, 10};
  const search::NodeId na = tree.add_child(0, {}, 1.0, "a", a);
  const search::NodeId nb = tree.add_child(0, {}, 1.0, "b", b);
  const search::NodeId nc = tree.add_child(na, {}, 1.0, "c", c);
  const std::vector<TokenId> prompt{2, 3, 4};
  lm::ValueModelEvaluator eval(m, prompt, 0.25, 2);
  const std::vector<search::NodeId> nodes{0, na, nb, nc};
  std::vector<double> values(nodes.size(), -1.0);
  eval(tree, std::span<const search::NodeId>(nodes), std::span<double>(values));
  CHECK(eval.calls() == 1);
  CHECK(eval.rows() == 3);
  CHECK(values[0] == 0.25);
  CHECK(values[1] == Approx(value_of(m, {2, 3, 4, 5, 6})).margin(1e-6));
  CHECK(values[2] == Approx(value_of(m, {2, 3, 4, 7})).margin(1e-6));
  CHECK(values[3] == Approx(value_of(m, {2, 3, 4, 5, 6, 8, 9, 10})).margin(1e-6));

  // The ProcessReward form over step texts: steps encoded by a character tokenizer.
  static_assert(ProcessReward<lm::ValueModelPrm>);
  const tasks::CharTokenizer tok("abcdefghijklmn");  // ids 2..15
  lm::ValueModelPrm prm(m, [&](std::string_view s) { return tok.encode(s); });
  Prompt p;
  p.tokens = tok.encode("abc");
  const std::vector<std::string> steps{"de", "ghi"};
  const std::vector<double> s = prm(p, std::span<const std::string>(steps));
  REQUIRE(s.size() == 2);
  CHECK(s[0] == Approx(value_of(m, tok.encode("abcde"))).margin(1e-6));
  CHECK(s[1] == Approx(value_of(m, tok.encode("abcdeghi"))).margin(1e-6));
  // Through the search adapter (StepValue::last) the node value is the last step's value.
  search::Tree<S> t2;
  const search::NodeId n1 = t2.add_child(0, {}, 1.0, "de");
  const search::NodeId n2 = t2.add_child(n1, {}, 1.0, "ghi");
  search::ProcessRewardEvaluator adapter(prm, p);
  const std::vector<search::NodeId> ids{n2};
  std::vector<double> out(1);
  adapter(t2, std::span<const search::NodeId>(ids), std::span<double>(out));
  CHECK(out[0] == Approx(s[1]).margin(1e-9));
}

TEST_CASE("ValueModel training: MSE and BCE fit a step label that depends on the step's last token") {
  // Label: 1 when the step's last token is even, else 0 (the path before it is random).
  for (const lm::ValueLoss loss : {lm::ValueLoss::mse, lm::ValueLoss::bce}) {
    INFO((loss == lm::ValueLoss::mse ? "mse" : "bce"));
    torch::manual_seed(4);
    lm::ValueModel m(tiny_config());
    auto opt = loop::make_adamw(m.parameters(), {.learning_rate = 3e-3});
    Rng rng(5);
    auto draw = [&](std::size_t n, std::vector<std::vector<TokenId>>& seq, std::vector<std::vector<std::int64_t>>& ends,
                    std::vector<double>& y) {
      seq.clear();
      ends.clear();
      y.clear();
      for (std::size_t i = 0; i < n; ++i) {
        std::vector<TokenId> s;
        const auto len = 2 + uniform_index(rng, 8);
        for (std::uint64_t t = 0; t < len; ++t) s.push_back(2 + static_cast<TokenId>(uniform_index(rng, 14)));
        // two scored steps per path: the middle and the end
        const auto mid = static_cast<std::int64_t>(len / 2);
        ends.push_back({mid, static_cast<std::int64_t>(len)});
        y.push_back(s[static_cast<std::size_t>(mid - 1)] % 2 == 0 ? 1.0 : 0.0);
        y.push_back(s.back() % 2 == 0 ? 1.0 : 0.0);
        seq.push_back(std::move(s));
      }
    };
    std::vector<std::vector<TokenId>> seq;
    std::vector<std::vector<std::int64_t>> ends;
    std::vector<double> y;
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 150; ++step) {
      draw(32, seq, ends, y);
      const lm::StepValueBatch b = lm::make_step_batch(seq, ends, y);
      const torch::Tensor l = m.value_loss(b, loss);
      loop::apply_update(opt, m.parameters(), l, 1.0);
      if (step == 0) first = l.item<double>();
      last = l.item<double>();
    }
    CHECK(last < first);
    // Held-out accuracy of the thresholded value.
    draw(200, seq, ends, y);
    const std::vector<double> v = lm::score_paths(m, seq, ends);
    int right = 0;
    for (std::size_t i = 0; i < v.size(); ++i) right += ((v[i] > 0.5) == (y[i] > 0.5)) ? 1 : 0;
    CHECK(static_cast<double>(right) / static_cast<double>(v.size()) > 0.95);
  }
}

TEST_CASE("YesNoJudge equals sigmoid(l_yes - l_no) of the policy's next-token logits") {
  torch::manual_seed(6);
  lm::LlamaModel policy(tiny_config());
  lm::YesNoJudge judge(policy, 3, 4, 1);
  std::vector<Prompt> prompts(2);
  prompts[0].tokens = {5, 6, 7};
  prompts[1].tokens = {8, 9, 10, 11, 12};
  const std::vector<double> p = judge(std::span<const Prompt>(prompts));
  REQUIRE(p.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    torch::NoGradGuard g;
    const auto n = static_cast<std::int64_t>(prompts[i].tokens.size());
    const torch::Tensor ids = torch::tensor(prompts[i].tokens, torch::kLong).unsqueeze(0);
    const torch::Tensor pos = torch::arange(n, torch::kLong).unsqueeze(0);
    const torch::Tensor mask = torch::ones({1, n}, torch::kBool);
    const torch::Tensor logits = policy.project(policy.forward(ids, pos, mask))[0][n - 1].to(torch::kDouble);
    const double ly = logits[3].item<double>(), ln = logits[4].item<double>();
    CHECK(p[i] == Approx(std::exp(ly) / (std::exp(ly) + std::exp(ln))).margin(1e-9));
  }
  REQUIRE_THROWS_WITH(lm::YesNoJudge(policy, 3, 3), Contains("expected two distinct token ids >= 0, got 3 and 3"));
  lm::YesNoJudge outside(policy, 3, 40);
  REQUIRE_THROWS_WITH(outside(std::span<const Prompt>(prompts)), Contains("token ids 3 and 40 must lie in the vocabulary [0, 16)"));
}

TEST_CASE("Value model errors: bad batches, wrong counts and non-finite values name the values") {
  lm::ValueModel m = random_model(7);
  const std::vector<std::vector<TokenId>> seq{{2, 3, 4}};
  const std::vector<std::vector<std::int64_t>> bad_end{{4}};
  REQUIRE_THROWS_WITH(lm::score_paths(m, seq, bad_end), Contains("step end 4 of sequence 0 is outside [1, 3]"));
  const std::vector<std::vector<std::int64_t>> ends{{1, 3}};
  const std::vector<double> bad_target{0.5, 1.5};
  REQUIRE_THROWS_WITH(lm::make_step_batch(seq, ends, bad_target), Contains("target 1 is 1.5, expected a value in [0, 1]"));
  const std::vector<double> one_target{0.5};
  REQUIRE_THROWS_WITH(lm::make_step_batch(seq, ends, one_target), Contains("1 targets for 2 scored steps"));
  const std::vector<std::vector<TokenId>> long_seq{std::vector<TokenId>(30, 2)};
  const std::vector<std::vector<std::int64_t>> long_end{{30}};
  REQUIRE_THROWS_WITH(lm::score_paths(m, long_seq, long_end), Contains("sequence 0 has 30 tokens but the model's context is 24"));
  REQUIRE_THROWS_WITH(lm::checked_values(torch::zeros({3}), 2, "test"), Contains("test: the value model returned 3 values for 2 steps"));
  {
    torch::NoGradGuard g;
    m.head->bias.fill_(std::numeric_limits<float>::quiet_NaN());
  }
  REQUIRE_THROWS_WITH(lm::score_paths(m, seq, ends), Contains("nan, expected a finite value"));
  const lm::StepValueBatch no_targets = lm::make_step_batch(seq, ends);
  REQUIRE_THROWS_WITH(m.value_loss(no_targets), Contains("expected one target per scored step (2), got 0"));
}
