// ReST-MCTS* (loop/rest_mcts.hpp) and step segmentation (loop/steps.hpp): the algorithms.md oracles
// (quality values 1/3, 2/3, 1 and the 0.25 case, UCT 1.1660, visit-weighted backup 0.25), values in
// [0, 1] on searched trees, step splitting by a delimiter or a callable, a delimiter never produced
// (bounded depth, no hang), a PRM with the wrong count or non-finite scores, exact resume in the middle
// of the search, PRM and SFT phases, the kept traces and PRM targets recomputed from the trees, and errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/rest_mcts.hpp>
#include <kaizen/loop/steps.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/models/value_head.hpp>
#include <kaizen/search/mcts.hpp>
#include <kaizen/search/process_reward_adapter.hpp>
#include <kaizen/search/trace.hpp>
#include <kaizen/tasks/tokenizer.hpp>

#include "loop_test_support.hpp"

namespace {

using namespace kaizen;
using Catch::Matchers::Contains;
using kaizen_test::check_same_parameters;
using kaizen_test::kOneThread;
using kaizen_test::TempDir;

// ---------------------------------------------------------------------------------------------------
// Oracles from algorithms.md §3.

TEST_CASE("ReST-MCTS* oracles: quality values, UCT and the visit-weighted backup") {
  const std::vector<std::size_t> m{2, 1, 0};
  const std::vector<double> v = search::quality_values(m, {true, true, true});
  REQUIRE(v.size() == 3);
  CHECK(v[0] == Approx(1.0 / 3.0));
  CHECK(v[1] == Approx(2.0 / 3.0));
  CHECK(v[2] == Approx(1.0));
  CHECK(search::quality_value_step(0.5, 1, false) == Approx(0.25));
  CHECK(search::quality_value_step(0.1, 0, false) == 0.0);  // never below 0
  CHECK(search::uct_score(0.5, 4.0, 1.0, 0.4, 0.8) == Approx(1.1660).margin(5e-5));
  const std::vector<std::pair<double, double>> children{{1.0, 1.0}, {0.0, 3.0}};
  CHECK(search::visit_weighted_mean(children).value() == Approx(0.25));
  // The loop's defaults are the paper's.
  const search::MctsOptions d = loop::rest_mcts_search_defaults();
  CHECK(d.selection == search::Selection::uct);
  CHECK(d.c == 0.4);
  CHECK(d.unvisited_bonus == 0.8);
  CHECK(d.backup == search::Backup::rest_mcts);
  CHECK(d.rollout_alpha == 0.5);
  CHECK(d.branch == 3);
}

// ---------------------------------------------------------------------------------------------------
// Step segmentation.

TEST_CASE("split_steps: a delimiter, a callable, end tokens and the max_steps / max_step_tokens bounds") {
  const std::vector<TokenId> t{5, 6, 9, 7, 9, 8, 1};  // 9 = delimiter, 1 = end
  loop::StepSegmenter seg{.delimiter = 9, .end_tokens = {1}, .max_step_tokens = 8, .max_steps = 8};
  CHECK(loop::split_steps(t, seg) == std::vector<std::size_t>{3, 2, 2});
  seg.max_steps = 2;  // the last step takes the rest
  CHECK(loop::split_steps(t, seg) == std::vector<std::size_t>{3, 4});
  seg.max_steps = 8;
  seg.max_step_tokens = 2;  // a step is never longer
  CHECK(loop::split_steps(t, seg) == std::vector<std::size_t>{2, 1, 2, 2});
  // A callable: a step ends after two equal tokens in a row.
  loop::StepSegmenter by_call{.ends = [](std::span<const TokenId> s) { return s.size() >= 2 && s[s.size() - 1] == s[s.size() - 2]; },
                              .max_step_tokens = 16, .max_steps = 8};
  const std::vector<TokenId> u{3, 4, 4, 5, 5, 6};
  CHECK(loop::split_steps(u, by_call) == std::vector<std::size_t>{3, 2, 1});
  // Tokens after an end token stay in its step; no delimiter at all: bounded by max_step_tokens.
  const std::vector<TokenId> w{5, 1, 6, 7};
  CHECK(loop::split_steps(w, seg) == std::vector<std::size_t>{4});
  loop::StepSegmenter none{.delimiter = 9, .max_step_tokens = 3, .max_steps = 3};
  CHECK(loop::split_steps(std::vector<TokenId>(20, 4), none) == std::vector<std::size_t>{3, 3, 14});
  CHECK(loop::split_steps(std::vector<TokenId>{}, none).empty());
  REQUIRE_THROWS_WITH(loop::split_steps(w, loop::StepSegmenter{}),
                      Contains("split_steps: expected a delimiter token, an `ends` callable or end tokens; got none"));
  REQUIRE_THROWS_WITH(loop::split_steps(w, loop::StepSegmenter{.delimiter = 9, .max_step_tokens = 0}),
                      Contains("max_step_tokens must be > 0, got 0"));
}

/// A sampler that writes `token` forever (never a delimiter, never an end token) up to max_new_tokens.
struct Babbler {
  TokenId token = 4;
  std::int64_t calls = 0;
  std::vector<Completion> sample(std::span<const Prompt> prompts, const SamplingParams& params) {
    ++calls;
    std::vector<Completion> out(prompts.size());
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      // Distinct samples per prompt so expansion gets `count` different children.
      for (std::int64_t t = 0; t < params.max_new_tokens; ++t) out[i].tokens.push_back(token + static_cast<TokenId>(i % 3));
      out[i].logprobs.assign(out[i].tokens.size(), -1.0f);
      out[i].finish = FinishReason::length;
    }
    return out;
  }
};

struct ConstantEval {
  double value = 0.5;
  template <class State>
  void operator()(const search::Tree<State>&, std::span<const search::NodeId>, std::span<double> values) {
    for (double& v : values) v = value;
  }
};

TEST_CASE("A delimiter the policy never produces bounds the step length and the tree depth (no hang)") {
  Babbler sampler;
  ConstantEval eval;
  Prompt p;
  p.tokens = {2, 3};
  loop::StepSearchOptions so{.segmenter = {.delimiter = 9, .end_tokens = {1}, .max_step_tokens = 4, .max_steps = 3}};
  loop::StepSearchProblem problem(sampler, eval, p, so);
  search::MctsOptions mo = loop::rest_mcts_search_defaults();
  mo.simulations = 200;
  mo.branch = 2;
  search::Mcts mcts(problem, mo);
  const search::SearchStats stats = mcts.search();
  CHECK(stats.simulations == 200);
  std::uint32_t deepest = 0;
  for (const search::Node& n : mcts.tree().nodes()) {
    deepest = std::max(deepest, n.depth);
    CHECK(n.token_length <= 4);
  }
  CHECK(deepest == 3);
  for (search::NodeId id = 0; id < mcts.tree().size(); ++id)
    if (mcts.tree()[id].depth == 3) CHECK(mcts.tree()[id].terminal);
  // Every sampled token is counted: each call samples 2 continuations of 4 tokens.
  CHECK(problem.generated_tokens() > 0);
  CHECK(problem.generated_tokens() == 8 * problem.sampler_calls());
}

TEST_CASE("oversample draws count x oversample samples per request and proposes the distinct ones") {
  Babbler sampler;  // sample i of a call writes token 4 + i % 3: 4 samples give 3 distinct steps
  ConstantEval eval;
  Prompt p;
  p.tokens = {2, 3};
  loop::StepSearchOptions so{.segmenter = {.delimiter = 9, .max_step_tokens = 2, .max_steps = 2}, .oversample = 2};
  loop::StepSearchProblem problem(sampler, eval, p, so);
  search::Mcts mcts(problem, [] {
    search::MctsOptions o = loop::rest_mcts_search_defaults();
    o.branch = 2;
    o.simulations = 20;
    return o;
  }());
  mcts.search();
  CHECK(problem.generated_tokens() == 2 * 4 * problem.sampler_calls());
  CHECK(mcts.tree()[0].num_children == 2);
  for (const search::Node& n : mcts.tree().nodes()) CHECK(n.num_children <= 2);
  Prompt q = p;
  REQUIRE_THROWS_WITH(loop::StepSearchProblem(sampler, eval, q, loop::StepSearchOptions{.segmenter = so.segmenter, .oversample = 0}),
                      Contains("oversample must be > 0, got 0"));
}

TEST_CASE("A PRM returning the wrong count or a non-finite score stops the search with the values") {
  Babbler sampler;
  Prompt p;
  p.tokens = {2, 3};
  p.text = "q";
  struct Short {
    std::vector<double> operator()(const Prompt&, std::span<const std::string> steps) {
      return std::vector<double>(steps.size() + 1, 0.5);
    }
  };
  struct NaN {
    std::vector<double> operator()(const Prompt&, std::span<const std::string> steps) {
      std::vector<double> v(steps.size(), 0.5);
      v.back() = std::numeric_limits<double>::quiet_NaN();
      return v;
    }
  };
  loop::StepSearchOptions so{.segmenter = {.delimiter = 9, .max_step_tokens = 2, .max_steps = 3}};
  auto decode = [](std::span<const TokenId> t) { return std::string(t.size(), 'x'); };
  {
    Short prm;
    search::ProcessRewardEvaluator eval(prm, p);
    loop::StepSearchProblem problem(sampler, eval, p, so, decode);
    search::Mcts mcts(problem, loop::rest_mcts_search_defaults());
    REQUIRE_THROWS_WITH(mcts.search(), Contains("the process reward returned 2 scores for the 1 steps of node 1"));
  }
  {
    NaN prm;
    search::ProcessRewardEvaluator eval(prm, p);
    loop::StepSearchProblem problem(sampler, eval, p, so, decode);
    search::Mcts mcts(problem, loop::rest_mcts_search_defaults());
    REQUIRE_THROWS_WITH(mcts.search(), Contains("scored step 0 of node 1 as nan, expected a finite score"));
  }
  // A value model with diverged weights: the batched evaluator reports the value.
  torch::manual_seed(1);
  lm::LlamaConfig c;
  c.vocab_size = 16;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.max_position_embeddings = 16;
  lm::ValueModel vm(c);
  {
    torch::NoGradGuard g;
    vm.head->bias.fill_(std::numeric_limits<float>::infinity());
    vm.head->weight.fill_(-std::numeric_limits<float>::infinity());
  }
  lm::ValueModelEvaluator veval(vm, p.tokens);
  loop::StepSearchProblem problem(sampler, veval, p, so);
  search::Mcts mcts(problem, loop::rest_mcts_search_defaults());
  REQUIRE_THROWS_WITH(mcts.search(), Contains("nan, expected a finite value"));
}

// ---------------------------------------------------------------------------------------------------
// The loop on a tiny Llama model.

struct Setup {
  tasks::CharTokenizer tokenizer{"0123456789+=;"};  // ';' = step delimiter (id 14); EOS = 1
  TokenId delimiter = 14;

  [[nodiscard]] lm::LlamaConfig config() const {
    lm::LlamaConfig c;
    c.vocab_size = tokenizer.vocab_size();
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 16;
    return c;
  }
  [[nodiscard]] lm::LlamaModel policy(std::uint64_t seed) const {
    torch::manual_seed(seed);
    return lm::LlamaModel(config());
  }
  [[nodiscard]] std::shared_ptr<lm::ValueModel> value(std::uint64_t seed) const {
    torch::manual_seed(seed);
    return std::make_shared<lm::ValueModel>(config());
  }
  [[nodiscard]] std::vector<Prompt> prompts() const {
    std::vector<Prompt> out;
    for (const char* t : {"1+2=", "3+4=", "5+1=", "2+2="}) {
      Prompt p;
      p.text = t;
      p.tokens = tokenizer.encode(t);
      out.push_back(p);
    }
    return out;
  }
  [[nodiscard]] loop::RestMctsConfig loop_config(const std::filesystem::path& dir) const {
    loop::RestMctsConfig c;
    c.iterations = 2;
    c.search.simulations = 6;
    c.search.branch = 2;
    c.steps.segmenter = {.delimiter = delimiter, .end_tokens = {tokenizer.eos_id()}, .max_step_tokens = 2, .max_steps = 3};
    c.steps.sampling.temperature = 1.0;
    c.min_trace_value = 0.0;
    c.cap = 2;
    c.prm_steps = 3;
    c.prm_batch = 8;
    c.prm_optimizer.learning_rate = 3e-3;
    c.sft_steps = 3;
    c.sft_batch = 4;
    c.sft_optimizer.learning_rate = 3e-3;
    c.collate = {.pad_id = 0, .vocab_size = tokenizer.vocab_size(), .max_length = 16};
    c.seed = 21;
    c.checkpoint_every = 1;
    c.checkpoint_dir = dir;
    return c;
  }
};

/// Correct when the trace's first token is an even digit: an untrained model gets it about 5/15 of the time.
struct FirstEven {
  const tasks::CharTokenizer* tokenizer;
  bool operator()(const Prompt&, const Completion& c) const {
    if (c.tokens.empty()) return false;
    const std::string s = tokenizer->decode(std::span<const TokenId>(c.tokens).first(1));
    return s.size() == 1 && s[0] >= '0' && s[0] <= '9' && (s[0] - '0') % 2 == 0;
  }
};

nlohmann::json without_timing(nlohmann::json m) {
  for (const char* k : {"search_seconds", "prm_seconds", "sft_seconds"}) m.erase(k);
  return m;
}

void check_same_values(lm::ValueModel& a, lm::ValueModel& b) {
  const auto pa = a.named_parameters();
  const auto pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (const auto& p : pa) {
    INFO(p.key());
    CHECK(torch::equal(p.value(), pb[p.key()]));
  }
}

TEST_CASE("rest_mcts: targets in 0..1 recomputed from each tree, kept traces verified and capped, both models trained") {
  REQUIRE(kOneThread);
  const Setup s;
  TempDir dir("rest_mcts_basic");
  lm::LlamaModel policy = s.policy(3);
  auto value = s.value(4);
  lm::LlamaModel policy0 = s.policy(3);
  auto value0 = s.value(4);
  lm::LlamaSampler sampler(policy, s.tokenizer);
  FirstEven verifier{&s.tokenizer};
  const std::vector<Prompt> prompts = s.prompts();
  loop::RestMctsConfig c = s.loop_config(dir.path);
  c.checkpoint_every = 0;
  std::int64_t trees = 0, expected_examples = 0, expected_kept = 0, correct_seen = 0;
  loop::RestMctsHooks hooks;
  hooks.on_tree = [&](const Prompt&, const search::Tree<loop::StepState>& tree, const search::QualityTargets& q) {
    ++trees;
    std::int64_t kept = 0;
    for (search::NodeId id = 1; id < tree.size(); ++id) {
      CHECK((q.value[id] >= 0.0 && q.value[id] <= 1.0));
      if (tree[id].terminal || tree[id].visits >= 1) ++expected_examples;
      // A terminal that reaches a correct answer scores 1; a wrong terminal scores 0 or less than its parent.
      if (tree[id].terminal && q.reaches_correct[id]) {
        CHECK(q.value[id] == Approx(1.0));
        ++correct_seen;
        ++kept;
      }
      CHECK(tree[id].depth <= 3);
    }
    expected_kept += std::min<std::int64_t>(kept, 2);  // distinct paths are distinct node ids here (merged duplicates)
  };
  std::vector<nlohmann::json> events;
  const loop::RestMctsResult r = loop::rest_mcts(policy, sampler, *value, verifier, std::span<const Prompt>(prompts), c,
                                                 [&](const nlohmann::json& m) { events.push_back(m); }, hooks);
  CHECK(r.iterations == 2);
  CHECK_FALSE(r.stopped);
  CHECK(trees == 8);
  REQUIRE(r.history.size() == 2);
  std::int64_t examples = 0, kept = 0, correct = 0;
  for (const auto& h : r.history) {
    examples += h["prm_examples"].get<std::int64_t>();
    correct += h["correct_terminals"].get<std::int64_t>();
    CHECK(h["searched"] == 4);
    CHECK(h["generated_tokens"].get<std::int64_t>() > 0);
    kept += h["kept"].get<std::int64_t>();
  }
  CHECK(examples == expected_examples);
  CHECK(correct == correct_seen);
  CHECK(kept == expected_kept);
  CHECK(correct > 0);
  // Both models moved.
  bool policy_moved = false, value_moved = false;
  for (std::size_t i = 0; i < policy.parameters().size(); ++i)
    policy_moved = policy_moved || !torch::equal(policy.parameters()[i], policy0.parameters()[i]);
  for (std::size_t i = 0; i < value->parameters().size(); ++i)
    value_moved = value_moved || !torch::equal(value->parameters()[i], value0->parameters()[i]);
  CHECK(policy_moved);
  CHECK(value_moved);
  std::int64_t prm_events = 0, sft_events = 0;
  for (const auto& e : events) {
    prm_events += e["event"] == "rest_mcts_prm" ? 1 : 0;
    sft_events += e["event"] == "rest_mcts_sft" ? 1 : 0;
  }
  CHECK(prm_events == 6);
  CHECK(sft_events == 6);
}

TEST_CASE("rest_mcts: sft_epochs sizes SFT by the kept traces, accumulate_prm_data keeps earlier targets") {
  REQUIRE(kOneThread);
  const Setup s;
  TempDir dir("rest_mcts_epochs");
  lm::LlamaModel policy = s.policy(3);
  auto value = s.value(4);
  lm::LlamaSampler sampler(policy, s.tokenizer);
  FirstEven verifier{&s.tokenizer};
  const std::vector<Prompt> prompts = s.prompts();
  loop::RestMctsConfig c = s.loop_config(dir.path);
  c.checkpoint_every = 0;
  c.sft_epochs = 1.5;
  c.accumulate_prm_data = true;
  std::vector<std::int64_t> examples_per_tree;
  loop::RestMctsHooks hooks;
  hooks.on_tree = [&](const Prompt&, const search::Tree<loop::StepState>& tree, const search::QualityTargets&) {
    std::int64_t n = 0;
    for (search::NodeId id = 1; id < tree.size(); ++id) n += (tree[id].terminal || tree[id].visits >= 1) ? 1 : 0;
    examples_per_tree.push_back(n);
  };
  std::vector<std::int64_t> sft_per_iteration(2, 0);
  const auto r = loop::rest_mcts(policy, sampler, *value, verifier, std::span<const Prompt>(prompts), c,
                                 [&](const nlohmann::json& m) {
                                   if (m["event"] == "rest_mcts_sft") ++sft_per_iteration[m["iteration"].get<std::size_t>() - 1];
                                 }, hooks);
  REQUIRE(r.history.size() == 2);
  REQUIRE(examples_per_tree.size() == 8);
  std::int64_t first = 0, all = 0;
  for (std::size_t i = 0; i < 8; ++i) (i < 4 ? first : all) += examples_per_tree[i];
  all += first;
  CHECK(r.history[0]["prm_examples"] == first);
  CHECK(r.history[1]["prm_examples"] == all);
  for (std::size_t t = 0; t < 2; ++t) {
    const auto kept = r.history[t]["kept"].get<double>();
    CHECK(sft_per_iteration[t] == static_cast<std::int64_t>(std::ceil(1.5 * kept / 4.0)));
  }
  c.sft_epochs = -1.0;
  REQUIRE_THROWS_WITH(loop::rest_mcts(policy, sampler, *value, verifier, std::span<const Prompt>(prompts), c),
                      Contains("sft_epochs must be finite and >= 0, got -1"));
}

TEST_CASE("rest_mcts resumed in the middle of search, PRM training or SFT continues exactly") {
  REQUIRE(kOneThread);
  const Setup s;
  const std::vector<Prompt> prompts = s.prompts();
  FirstEven verifier{&s.tokenizer};
  TempDir full_dir("rest_mcts_full");
  lm::LlamaModel full = s.policy(3);
  auto full_value = s.value(4);
  lm::LlamaSampler full_sampler(full, s.tokenizer);
  const loop::RestMctsResult expected =
      loop::rest_mcts(full, full_sampler, *full_value, verifier, std::span<const Prompt>(prompts), s.loop_config(full_dir.path));
  REQUIRE(expected.iterations == 2);
  // Units per iteration: 4 searches + 3 PRM steps + 3 SFT steps (when traces were kept).
  for (const std::int64_t stop : {2, 5, 9, 13}) {
    INFO("interrupted after unit " << stop);
    TempDir dir("rest_mcts_stop");
    lm::LlamaModel first = s.policy(3);
    auto first_value = s.value(4);
    lm::LlamaSampler first_sampler(first, s.tokenizer);
    loop::RestMctsConfig c = s.loop_config(dir.path);
    c.stop_after_units = stop;
    const auto stopped = loop::rest_mcts(first, first_sampler, *first_value, verifier, std::span<const Prompt>(prompts), c);
    REQUIRE(stopped.stopped);
    CHECK(stopped.units == stop);
    lm::LlamaModel resumed = s.policy(99);  // other weights: everything must come from the checkpoint
    auto resumed_value = s.value(98);
    lm::LlamaSampler resumed_sampler(resumed, s.tokenizer);
    loop::RestMctsConfig rc = s.loop_config(dir.path);
    rc.resume_from = dir.path;
    const auto rest = loop::rest_mcts(resumed, resumed_sampler, *resumed_value, verifier, std::span<const Prompt>(prompts), rc);
    CHECK_FALSE(rest.stopped);
    CHECK(rest.iterations == 2);
    CHECK(rest.units == expected.units);
    check_same_parameters(full, resumed);
    check_same_values(*full_value, *resumed_value);
    std::vector<nlohmann::json> all = stopped.history;
    for (const auto& h : rest.history) all.push_back(h);
    REQUIRE(all.size() == expected.history.size());
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(without_timing(all[i]) == without_timing(expected.history[i]));
  }
}

TEST_CASE("rest_mcts rejects bad input with messages that name it") {
  const Setup s;
  TempDir dir("rest_mcts_errors");
  lm::LlamaModel policy = s.policy(3);
  auto value = s.value(4);
  lm::LlamaSampler sampler(policy, s.tokenizer);
  FirstEven verifier{&s.tokenizer};
  const std::vector<Prompt> prompts = s.prompts();
  const std::vector<Prompt> none;
  const loop::RestMctsConfig ok = s.loop_config(dir.path);
  REQUIRE_THROWS_WITH(loop::rest_mcts(policy, sampler, *value, verifier, std::span<const Prompt>(none), ok),
                      Contains("rest_mcts: the prompt set is empty"));
  loop::RestMctsConfig c = ok;
  c.cap = 0;
  REQUIRE_THROWS_WITH(loop::rest_mcts(policy, sampler, *value, verifier, std::span<const Prompt>(prompts), c),
                      Contains("rest_mcts: cap must be > 0, got 0"));
  c = ok;
  c.steps.segmenter = {};
  REQUIRE_THROWS_WITH(loop::rest_mcts(policy, sampler, *value, verifier, std::span<const Prompt>(prompts), c),
                      Contains("rest_mcts: expected a delimiter token, an `ends` callable or end tokens; got none"));
  c = ok;
  c.checkpoint_every = 0;
  c.stop_after_units = 3;
  REQUIRE_THROWS_WITH(loop::rest_mcts(policy, sampler, *value, verifier, std::span<const Prompt>(prompts), c),
                      Contains("stop_after_units > 0 needs checkpoint_every > 0"));
  c = ok;
  c.search.simulations = 0;
  REQUIRE_THROWS_WITH(loop::rest_mcts(policy, sampler, *value, verifier, std::span<const Prompt>(prompts), c),
                      Contains("MctsOptions: expected simulations > 0, got 0"));
  c = ok;
  c.resume_from = dir.path / "missing";
  REQUIRE_THROWS_WITH(loop::rest_mcts(policy, sampler, *value, verifier, std::span<const Prompt>(prompts), c),
                      Contains("state.json does not exist"));
}

}  // namespace
