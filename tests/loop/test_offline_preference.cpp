// Tests of loop/offline_preference.hpp: the JSON Lines reader (both forms, strings and token ids, precomputed
// references, errors naming the line and field), the split, offline DPO raising held-out reward accuracy on a
// preference set built from the embedded addition task, every other loss lowering its held-out loss, the
// precomputed reference giving the live reference's run, and the errors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/offline_preference.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/preference/kto.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>

#include "loop_test_support.hpp"
#include "preference_loop_support.hpp"

namespace {

namespace loop = kaizen::loop;
using kaizen::TokenId;
using kaizen::lm::LlamaModel;
using kaizen_test::kOneThread;
using kaizen_test::preference_loops::Setup;

/// Addition pairs over distinct problems: chosen = the correct answer, rejected = the two operands written side by
/// side (a wrong answer a model that copies its prompt would give), both ending with the end-of-sequence token.
/// The distinct one-digit problems are shuffled by `seed`; the first `n` are returned from index `offset`, so two
/// calls with the same seed and disjoint ranges share no prompt.
loop::PreferenceDataset addition_pairs(const Setup& s, std::size_t n, std::uint64_t seed, std::size_t offset = 0) {
  std::vector<std::pair<int, int>> problems;
  for (int a = 0; a <= 9; ++a)
    for (int b = 0; b <= 9; ++b)
      if (std::to_string(a) + std::to_string(b) != std::to_string(a + b)) problems.emplace_back(a, b);
  kaizen::Rng rng(seed);
  for (std::size_t i = problems.size(); i > 1; --i) std::swap(problems[i - 1], problems[kaizen::uniform_index(rng, i)]);
  REQUIRE(offset + n <= problems.size());
  loop::PreferenceDataset out;
  for (std::size_t i = offset; i < offset + n; ++i) {
    const auto [a, b] = problems[i];
    loop::PreferenceExample e;
    e.prompt = s.tokenizer.encode(std::to_string(a) + "+" + std::to_string(b) + "=");
    e.chosen = s.tokenizer.encode(std::to_string(a + b));
    e.chosen.push_back(s.tokenizer.eos_id());
    e.rejected = s.tokenizer.encode(std::to_string(a) + std::to_string(b));
    e.rejected.push_back(s.tokenizer.eos_id());
    out.pairs.push_back(std::move(e));
  }
  return out;
}

loop::OfflinePreferenceConfig base_config(const Setup& s, const std::string& loss) {
  loop::OfflinePreferenceConfig c{.loss = loss, .steps = 40, .batch_size = 16, .learning_rate = 2e-3, .seed = 3,
                                  .collate = s.collate()};
  return c;
}

}  // namespace

TEST_CASE("read_preference_jsonl reads paired and unpaired lines, strings or token ids", "[loop][offline_preference]") {
  const Setup s;
  auto tokenize = [&](const std::string& text) { return s.tokenizer.encode(text); };
  std::istringstream in(
      R"({"prompt": "1+2=", "chosen": "3", "rejected": "12"})"
      "\n\n"
      R"({"prompt": [4, 5], "chosen": [6], "rejected": [7, 8], "reference_chosen": -1.5, "reference_rejected": -2})"
      "\n"
      R"({"prompt": "2+2=", "completion": "4", "label": true, "reference": -0.25})"
      "\n"
      R"({"prompt": "2+2=", "completion": "5", "label": false})"
      "\n");
  const loop::PreferenceDataset d = loop::read_preference_jsonl(in, tokenize);
  REQUIRE(d.pairs.size() == 2);
  REQUIRE(d.unpaired.size() == 2);
  CHECK(d.size() == 4);
  CHECK(d.pairs[0].prompt == s.tokenizer.encode("1+2="));
  CHECK(d.pairs[0].rejected == s.tokenizer.encode("12"));
  CHECK(!d.pairs[0].reference_chosen.has_value());
  CHECK(d.pairs[1].prompt == std::vector<TokenId>{4, 5});
  CHECK(d.pairs[1].rejected == std::vector<TokenId>{7, 8});
  CHECK(d.pairs[1].reference_chosen == -1.5);
  CHECK(d.pairs[1].reference_rejected == -2.0);
  CHECK(d.unpaired[0].desirable);
  CHECK(d.unpaired[0].reference == -0.25);
  CHECK(!d.unpaired[1].desirable);
  CHECK(d.unpaired[1].completion == s.tokenizer.encode("5"));

  auto error = [&](const std::string& text) {
    std::istringstream bad(text);
    return loop::read_preference_jsonl(bad, tokenize);
  };
  CHECK_THROWS_WITH(error("{\"prompt\": \"1\", \"chosen\": \"2\", \"rejected\": \"3\"}\n{not json\n"),
                    Catch::StartsWith("load_preference_jsonl: line 2 is not a JSON object"));
  CHECK_THROWS_WITH(error(R"({"prompt": "1", "chosen": "2"})"),
                    Catch::StartsWith("load_preference_jsonl: line 1: missing field 'rejected'"));
  CHECK_THROWS_WITH(error(R"({"prompt": "1", "chosen": "2", "rejected": 3})"),
                    Catch::StartsWith("load_preference_jsonl: line 1: field 'rejected' must be a string or an array"));
  CHECK_THROWS_WITH(error(R"({"prompt": "1", "chosen": [1, -2], "rejected": "3"})"),
                    Catch::StartsWith("load_preference_jsonl: line 1: field 'chosen' must hold non-negative integer"));
  CHECK_THROWS_WITH(error(R"({"prompt": "1", "chosen": "2", "rejected": "3", "reference_chosen": -1})"),
                    Catch::StartsWith("load_preference_jsonl: line 1: give both reference_chosen and reference_rejected"));
  CHECK_THROWS_WITH(error(R"({"prompt": "1", "completion": "2", "label": 1})"),
                    Catch::StartsWith("load_preference_jsonl: line 1: field 'label' must be true or false"));
  CHECK_THROWS_WITH(error(R"({"prompt": "1", "completion": "2", "label": true, "reference": "x"})"),
                    Catch::StartsWith("load_preference_jsonl: line 1: field 'reference' must be a number"));
  CHECK_THROWS_WITH(error(R"({"prompt": "1", "answer": "2"})"),
                    Catch::StartsWith("load_preference_jsonl: line 1: expected a paired example"));
  CHECK_THROWS_WITH(loop::load_preference_jsonl("/nonexistent/kaizen.jsonl", tokenize),
                    Catch::StartsWith("load_preference_jsonl: cannot open /nonexistent/kaizen.jsonl"));

  // The split is a partition, reproducible from its seed.
  const loop::PreferenceDataset many = addition_pairs(s, 50, 1);
  const auto [train, eval] = loop::split_preference_dataset(many, 0.2, 9);
  CHECK(train.pairs.size() == 40);
  CHECK(eval.pairs.size() == 10);
  const auto [train2, eval2] = loop::split_preference_dataset(many, 0.2, 9);
  CHECK(eval2.pairs[3].prompt == eval.pairs[3].prompt);
  CHECK_THROWS_WITH(loop::split_preference_dataset(many, 1.0, 0),
                    Catch::StartsWith("split_preference_dataset: eval_fraction must be in [0, 1), got 1"));
}

TEST_CASE("Offline DPO raises the chosen-over-rejected reward accuracy on held-out addition pairs",
          "[loop][offline_preference]") {
  REQUIRE(kOneThread);
  const Setup s;
  const loop::PreferenceDataset train = addition_pairs(s, 70, 1);
  const loop::PreferenceDataset eval = addition_pairs(s, 29, 1, 70);  // problems the training never saw
  LlamaModel policy = s.model(5);
  LlamaModel reference = s.model(5);
  std::vector<nlohmann::json> streamed;
  const auto run = loop::offline_preference(policy, train, eval, base_config(s, "dpo"),
                                            [&](const nlohmann::json& m) { streamed.push_back(m); }, &reference);
  CHECK(run.steps == 40);
  CHECK(streamed == run.history);
  CHECK(run.history.front()["event"] == "offline_preference_eval");
  CHECK(run.history.back()["event"] == "offline_preference_eval");
  // Policy = reference at the start: every implicit reward is 0, so no held-out pair is ranked right.
  CHECK(run.initial_eval.reward_accuracy == 0.0);
  CHECK(run.initial_eval.margin == Approx(0.0).margin(1e-6));
  CHECK(run.initial_eval.examples == 29);
  INFO("held-out reward accuracy " << run.initial_eval.reward_accuracy << " -> " << run.final_eval.reward_accuracy
       << ", margin " << run.initial_eval.margin << " -> " << run.final_eval.margin);
  CHECK(run.final_eval.reward_accuracy >= 0.8);
  CHECK(run.final_eval.margin > 0.5);
  CHECK(run.final_eval.loss < run.initial_eval.loss);

  SECTION("precomputed reference log-probs give the live reference's run") {
    loop::PreferenceDataset pre_train = train, pre_eval = eval;
    for (auto* d : {&pre_train, &pre_eval}) {
      for (auto& e : d->pairs) {
        for (int which = 0; which < 2; ++which) {
          kaizen::Rollout r;
          r.prompt = e.prompt;
          r.completion.tokens = which == 0 ? e.chosen : e.rejected;
          const kaizen::TokenBatch b = kaizen::collate(std::span<const kaizen::Rollout>(&r, 1), s.collate());
          const double sum = (loop::frozen_logprobs(reference, b) * b.completion_mask).sum().item<double>();
          (which == 0 ? e.reference_chosen : e.reference_rejected) = sum;
        }
      }
    }
    LlamaModel again = s.model(5);
    const auto pre = loop::offline_preference(again, pre_train, pre_eval, base_config(s, "dpo"), {},
                                              static_cast<LlamaModel*>(nullptr));
    REQUIRE(pre.history.size() == run.history.size());
    for (std::size_t i = 0; i < run.history.size(); ++i) {
      INFO("record " << i);
      CHECK(pre.history[i]["loss"].get<double>() == Approx(run.history[i]["loss"].get<double>()).margin(1e-4));
    }
    CHECK(pre.final_eval.reward_accuracy == Approx(run.final_eval.reward_accuracy).margin(0.051));
  }
}

TEST_CASE("IPO, KTO, ORPO, SimPO and CPO lower their held-out loss through the same trainer",
          "[loop][offline_preference]") {
  REQUIRE(kOneThread);
  const Setup s;
  const loop::PreferenceDataset train = addition_pairs(s, 70, 1);
  const loop::PreferenceDataset eval = addition_pairs(s, 29, 1, 70);
  for (const std::string loss : {"ipo", "kto", "orpo", "simpo", "cpo"}) {
    INFO(loss);
    LlamaModel policy = s.model(5);
    LlamaModel reference = s.model(5);
    loop::OfflinePreferenceConfig config = base_config(s, loss);
    config.steps = 25;
    const auto run = loop::offline_preference(policy, train, eval, config, {}, &reference);
    INFO("held-out loss " << run.initial_eval.loss << " -> " << run.final_eval.loss << ", accuracy "
         << run.initial_eval.reward_accuracy << " -> " << run.final_eval.reward_accuracy);
    CHECK(run.final_eval.loss < run.initial_eval.loss);
    CHECK(run.final_eval.reward_accuracy > 0.5);
    CHECK(run.history[1]["event"] == "offline_preference");
    CHECK(run.history[1]["grad_norm"].get<double>() > 0.0);
  }

  SECTION("KTO on unpaired examples, APO-zero form with precomputed references") {
    loop::PreferenceDataset unpaired;
    for (const auto& e : train.pairs) {
      unpaired.unpaired.push_back({.prompt = e.prompt, .completion = e.chosen, .desirable = true, .reference = -3.0});
      unpaired.unpaired.push_back({.prompt = e.prompt, .completion = e.rejected, .desirable = false, .reference = -3.0});
    }
    LlamaModel policy = s.model(5);
    loop::OfflinePreferenceConfig config = base_config(s, "kto");
    config.steps = 10;
    config.kto.loss = kaizen::preference::KtoVariant::apo_zero_unpaired;
    const auto run = loop::offline_preference(policy, unpaired, {}, config);
    CHECK(run.steps == 10);
    CHECK(run.final_eval.examples == 0);
    CHECK(run.history[1]["examples"] == 16);
  }
}

TEST_CASE("offline_preference rejects bad configs and data with messages that name them",
          "[loop][offline_preference][errors]") {
  REQUIRE(kOneThread);
  const Setup s;
  const loop::PreferenceDataset train = addition_pairs(s, 8, 1);
  LlamaModel policy = s.model(5);
  LlamaModel reference = s.model(6);
  CHECK_THROWS_WITH(loop::offline_preference(policy, train, {}, base_config(s, "slic"), {}, &reference),
                    Catch::StartsWith("offline_preference: unknown loss 'slic'; accepted: dpo, ipo, kto, orpo, simpo, cpo"));
  CHECK_THROWS_WITH(loop::offline_preference(policy, train, {}, base_config(s, "dpo")),
                    Catch::StartsWith("offline_preference: the dpo loss needs reference log-probs: pass a reference "
                                      "policy or give every example its precomputed reference log-probs"));
  CHECK_THROWS_WITH(loop::offline_preference(policy, train, {}, base_config(s, "kto")),
                    Catch::StartsWith("offline_preference: the kto loss needs reference log-probs"));
  loop::PreferenceDataset only_unpaired;
  only_unpaired.unpaired.push_back({.prompt = train.pairs[0].prompt, .completion = train.pairs[0].chosen});
  CHECK_THROWS_WITH(loop::offline_preference(policy, only_unpaired, {}, base_config(s, "simpo")),
                    Catch::StartsWith("offline_preference: the training split has no paired examples for the simpo loss"));
  loop::OfflinePreferenceConfig bad = base_config(s, "simpo");
  bad.batch_size = 0;
  CHECK_THROWS_WITH(loop::offline_preference(policy, train, {}, bad),
                    Catch::StartsWith("offline_preference: batch_size must be > 0, got 0"));
}
