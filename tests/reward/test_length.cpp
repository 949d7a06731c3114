// GroupLengthReward: the group-relative length term as a reward combinator for the GRPO loop's
// batches (group_size consecutive samples per prompt). Oracles: algorithms.md section 14 (Kimi form
// [100, 200, 300] with correct [1, 1, 0] => [0.5, 0, -0.5]) and apply_length_reward per Group.
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/core/reward.hpp>
#include <kaizen/reward/length.hpp>

using namespace kaizen;
using namespace kaizen::reward;
using Catch::Contains;

namespace {
/// Correct when the completion's text is "ok" (per-sample form).
struct TextVerifier {
  bool operator()(const Prompt&, const Completion& c) const { return c.text == "ok"; }
};
/// Batched form: 1 for "ok", 0.2 otherwise (below the 0.5 threshold).
struct BatchedAccuracy {
  int calls = 0;
  std::vector<double> operator()(std::span<const Prompt>, std::span<const Completion> cs) {
    ++calls;
    std::vector<double> out;
    for (const auto& c : cs) out.push_back(c.text == "ok" ? 1.0 : 0.2);
    return out;
  }
};
struct NanReward {
  double operator()(const Prompt&, const Completion&) const { return std::numeric_limits<double>::quiet_NaN(); }
};
Completion sample(std::size_t length, bool correct) {
  Completion c;
  c.tokens.assign(length, 3);
  c.text = correct ? "ok" : "no";
  return c;
}
Prompt prompt(TokenId id) {
  Prompt p{.tokens = {id}};
  p.text = std::to_string(id);  // ("p" + to_string trips GCC 12's -Wrestrict false positive)
  return p;
}
}  // namespace

static_assert(OutcomeReward<GroupLengthReward<TextVerifier>>);
static_assert(BatchedReward<GroupLengthReward<BatchedAccuracy>>);

TEST_CASE("GroupLengthReward adds the Kimi oracle to the accuracy reward, group by group", "[length]") {
  TextVerifier verifier;
  GroupLengthReward<TextVerifier> reward(verifier, 3);
  // group 0: the section 14 oracle; group 1: all lengths equal => term 0
  const std::vector<Prompt> prompts{prompt(1), prompt(1), prompt(1), prompt(2), prompt(2), prompt(2)};
  const std::vector<Completion> cs{sample(100, true), sample(200, true), sample(300, false),
                                   sample(50, true),  sample(50, false), sample(50, true)};
  const std::vector<double> r = score(reward, std::span<const Prompt>(prompts), std::span<const Completion>(cs));
  REQUIRE(r.size() == 6);
  CHECK(r[0] == Approx(1.0 + 0.5));
  CHECK(r[1] == Approx(1.0 + 0.0));
  CHECK(r[2] == Approx(0.0 - 0.5));
  CHECK(r[3] == 1.0);
  CHECK(r[4] == 0.0);
  CHECK(r[5] == 1.0);
  CHECK(reward.last_accuracy_mean() == Approx(4.0 / 6.0));
  CHECK(reward.last_term_mean() == Approx(0.0));  // 0.5 + 0 - 0.5
}

TEST_CASE("GroupLengthReward equals apply_length_reward on each Group, in every mode", "[length]") {
  BatchedAccuracy base;
  const std::vector<std::size_t> lengths{7, 3, 12, 5, 9, 4, 4, 10};
  const std::vector<bool> correct{true, true, false, true, false, true, true, false};
  for (LengthMode mode : {LengthMode::kimi, LengthMode::zscore, LengthMode::minmax}) {
    const LengthRewardOptions options{.mode = mode, .alpha = 0.7, .acc_gate = 0.25, .weight = 0.3};
    GroupLengthReward<BatchedAccuracy> reward(base, 4, options);
    std::vector<Prompt> prompts;
    std::vector<Completion> cs;
    for (std::size_t i = 0; i < lengths.size(); ++i) {
      prompts.push_back(prompt(static_cast<TokenId>(i / 4)));
      cs.push_back(sample(lengths[i], correct[i]));
    }
    const std::vector<double> r = reward(prompts, cs);
    for (std::size_t g = 0; g < 2; ++g) {
      Group group{.prompt = prompts[g * 4]};
      for (std::size_t i = 0; i < 4; ++i) {
        group.completions.push_back(cs[g * 4 + i]);
        group.rewards.push_back(correct[g * 4 + i] ? 1.0 : 0.2);
      }
      apply_length_reward(group, options);
      for (std::size_t i = 0; i < 4; ++i) CHECK(r[g * 4 + i] == Approx(group.rewards[i]).margin(1e-12));
    }
  }
  CHECK(base.calls == 3);  // the base reward is called once per batch
}

TEST_CASE("GroupLengthReward: a shorter correct sample always earns more than a longer correct one", "[length]") {
  TextVerifier verifier;
  GroupLengthReward<TextVerifier> reward(verifier, 5, {.mode = LengthMode::zscore, .alpha = 0.5});
  const std::vector<Prompt> prompts(5, prompt(4));
  const std::vector<Completion> cs{sample(8, true), sample(2, true), sample(5, true), sample(1, false), sample(3, true)};
  const std::vector<double> r = reward(prompts, cs);
  CHECK(r[1] > r[4]);
  CHECK(r[4] > r[2]);
  CHECK(r[2] > r[0]);
  CHECK(r[3] == 0.0);  // wrong: no length term in the zscore form
  for (std::size_t i : {0, 1, 2, 4}) CHECK(r[i] > 0.5);  // alpha = 0.5 < 1 keeps every correct sample above wrong
}

TEST_CASE("GroupLengthReward rejects bad input with the values", "[length]") {
  TextVerifier verifier;
  REQUIRE_THROWS_WITH(GroupLengthReward<TextVerifier>(verifier, 0), Contains("group_size must be >= 1, got 0"));
  REQUIRE_THROWS_WITH(GroupLengthReward<TextVerifier>(verifier, 2, {.acc_gate = -0.1}),
                      Contains("acc_gate must be in [0, 1], got -0.1"));
  REQUIRE_THROWS_WITH(GroupLengthReward<TextVerifier>(verifier, 2, {}, std::nan("")),
                      Contains("correct_threshold must be finite"));
  GroupLengthReward<TextVerifier> reward(verifier, 2);
  const std::vector<Prompt> three(3, prompt(1));
  const std::vector<Completion> cs3{sample(1, true), sample(2, true), sample(3, true)};
  REQUIRE_THROWS_WITH(reward(three, cs3), Contains("3 completions is not a multiple of group_size 2"));
  const std::vector<Prompt> mixed{prompt(1), prompt(2)};
  const std::vector<Completion> cs2{sample(1, true), sample(2, true)};
  REQUIRE_THROWS_WITH(reward(mixed, cs2), Contains("prompt 1 differs from prompt 0 of its group"));
  REQUIRE_THROWS_WITH(reward(std::span<const Prompt>(three).first(2), cs3),
                      Contains("2 prompts but 3 completions"));
  NanReward nan;
  GroupLengthReward<NanReward> bad(nan, 2);
  const std::vector<Prompt> same(2, prompt(1));
  REQUIRE_THROWS_WITH(bad(same, cs2), Contains("is not finite"));
}
