// Pair builders: oracles from the digest, property tests on random scored samples (no self-pairs,
// chosen >= rejected + margin, determinism under a seed, nothing from all-tied prompts), bad input.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/core/rng.hpp>
#include <kaizen/preference/pair_builder.hpp>

namespace pref = kaizen::preference;
using pref::ScoredSample;

namespace {

// Prompts interleaved in random order, 1-6 samples each, small integer scores so ties are common.
std::vector<ScoredSample> random_samples(std::uint64_t seed, int prompts = 12) {
  kaizen::Rng rng(seed);
  std::vector<ScoredSample> out;
  for (int p = 0; p < prompts; ++p) {
    const auto n = 1 + kaizen::uniform_index(rng, 6);
    for (std::uint64_t k = 0; k < n; ++k)
      out.push_back({100 + p, static_cast<double>(kaizen::uniform_index(rng, 5)),
                     static_cast<std::int64_t>(kaizen::uniform_index(rng, 3))});
  }
  for (std::size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[kaizen::uniform_index(rng, i)]);
  return out;
}

void check_pair_invariants(std::span<const ScoredSample> samples, const std::vector<pref::PreferencePair>& pairs,
                           double margin) {
  for (const auto& p : pairs) {
    REQUIRE(p.chosen < samples.size());
    REQUIRE(p.rejected < samples.size());
    CHECK(p.chosen != p.rejected);
    CHECK(samples[p.chosen].prompt == p.prompt);
    CHECK(samples[p.rejected].prompt == p.prompt);
    CHECK(p.chosen_score == samples[p.chosen].score);
    CHECK(p.rejected_score == samples[p.rejected].score);
    CHECK(p.chosen_score > p.rejected_score);
    CHECK(p.chosen_score >= p.rejected_score + margin);
  }
}

auto as_tuples(const std::vector<pref::PreferencePair>& pairs) {
  std::vector<std::tuple<std::int64_t, std::size_t, std::size_t>> out;
  for (const auto& p : pairs) out.emplace_back(p.prompt, p.chosen, p.rejected);
  return out;
}

std::map<std::int64_t, std::pair<double, double>> score_range(std::span<const ScoredSample> samples) {
  std::map<std::int64_t, std::pair<double, double>> out;
  for (const auto& s : samples) {
    auto [it, inserted] = out.try_emplace(s.prompt, s.score, s.score);
    it->second.first = std::min(it->second.first, s.score);
    it->second.second = std::max(it->second.second, s.score);
  }
  return out;
}

}  // namespace

TEST_CASE("best_vs_worst_pairs pairs each prompt's best with its worst", "[preference][pairs]") {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    const auto samples = random_samples(seed);
    for (double margin : {0.0, 1.0, 3.0}) {
      for (auto tie : {pref::TieBreak::first, pref::TieBreak::random}) {
        const auto pairs = pref::best_vs_worst_pairs(samples, {.margin = margin, .tie_break = tie, .seed = seed});
        check_pair_invariants(samples, pairs, margin);
        const auto range = score_range(samples);
        std::size_t eligible = 0;
        for (const auto& [prompt, r] : range) eligible += (r.second > r.first && r.second - r.first >= margin) ? 1 : 0;
        CHECK(pairs.size() == eligible);
        for (const auto& p : pairs) {
          CHECK(p.chosen_score == range.at(p.prompt).second);
          CHECK(p.rejected_score == range.at(p.prompt).first);
        }
      }
    }
  }
}

TEST_CASE("tie-breaking is deterministic: earliest sample, or a seeded draw", "[preference][pairs]") {
  const std::vector<ScoredSample> samples = {{1, 5.0}, {1, 1.0}, {1, 5.0}, {1, 1.0}, {1, 5.0}, {1, 3.0}};
  const auto first = pref::best_vs_worst_pairs(samples);
  REQUIRE(first.size() == 1);
  CHECK(first[0].chosen == 0);
  CHECK(first[0].rejected == 1);
  std::vector<std::tuple<std::int64_t, std::size_t, std::size_t>> seen;
  for (std::uint64_t seed = 0; seed < 16; ++seed) {
    const auto a = pref::best_vs_worst_pairs(samples, {.tie_break = pref::TieBreak::random, .seed = seed});
    const auto b = pref::best_vs_worst_pairs(samples, {.tie_break = pref::TieBreak::random, .seed = seed});
    CHECK(as_tuples(a) == as_tuples(b));
    seen.push_back(as_tuples(a).front());
  }
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  CHECK(seen.size() > 1);  // different seeds do pick different tied samples
  for (const auto& [prompt, chosen, rejected] : seen) {
    CHECK(samples[chosen].score == 5.0);
    CHECK(samples[rejected].score == 1.0);
  }
}

TEST_CASE("all-tied prompts give no pairs from any builder", "[preference][pairs]") {
  const std::vector<ScoredSample> tied = {{7, 2.0, 0}, {7, 2.0, 1}, {7, 2.0, 2}, {8, -1.0, 1}, {8, -1.0, 0}};
  CHECK(pref::best_vs_worst_pairs(tied).empty());
  CHECK(pref::best_vs_worst_pairs(tied, {.tie_break = pref::TieBreak::random, .seed = 3}).empty());
  CHECK(pref::margin_pairs(tied).empty());
  CHECK(pref::temporal_pairs(tied).empty());
  CHECK(pref::best_vs_worst_pairs({}).empty());
}

TEST_CASE("margin_pairs emits every pair above the margin, or a seeded subset", "[preference][pairs]") {
  const std::vector<ScoredSample> hand = {{0, 3.0}, {0, 1.0}, {0, 2.0}, {1, 0.0}};
  const auto all = pref::margin_pairs(hand);
  REQUIRE(all.size() == 3);
  CHECK(as_tuples(all) == decltype(as_tuples(all)){{0, 0, 1}, {0, 0, 2}, {0, 2, 1}});
  CHECK(pref::margin_pairs(hand, {.margin = 1.5}).size() == 1);

  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    const auto samples = random_samples(seed);
    for (double margin : {0.0, 2.0}) {
      const auto pairs = pref::margin_pairs(samples, {.margin = margin});
      check_pair_invariants(samples, pairs, margin);
      std::size_t brute = 0;
      for (const auto& a : samples)
        for (const auto& b : samples)
          brute += (a.prompt == b.prompt && a.score > b.score && a.score - b.score >= margin) ? 1 : 0;
      CHECK(pairs.size() == brute);
      const auto capped = pref::margin_pairs(samples, {.margin = margin, .max_pairs_per_prompt = 2, .seed = seed});
      const auto again = pref::margin_pairs(samples, {.margin = margin, .max_pairs_per_prompt = 2, .seed = seed});
      CHECK(as_tuples(capped) == as_tuples(again));
      std::map<std::int64_t, int> per_prompt;
      for (const auto& p : capped) ++per_prompt[p.prompt];
      for (const auto& [prompt, count] : per_prompt) CHECK(count <= 2);
      const auto full = as_tuples(pairs);
      for (const auto& t : as_tuples(capped)) CHECK(std::find(full.begin(), full.end(), t) != full.end());
    }
  }
}

TEST_CASE("self_rewarding_pairs scores completions with the judge, then pairs best with worst", "[preference][pairs]") {
  // The judge prefers longer completions; a group where all lengths match gives no pair.
  struct LengthJudge {
    int calls = 0;
    double operator()(const kaizen::Prompt&, const kaizen::Completion& c) {
      ++calls;
      return static_cast<double>(c.tokens.size());
    }
  } judge;
  std::vector<kaizen::Group> groups(3);
  groups[0].completions = {{.tokens = {1, 2}}, {.tokens = {1, 2, 3, 4}}, {.tokens = {1}}};
  groups[1].completions = {{.tokens = {5}}, {.tokens = {6}}};
  groups[2].completions = {{.tokens = {1, 1, 1}}, {.tokens = {}}};
  const auto out = pref::self_rewarding_pairs(std::span<const kaizen::Group>(groups), judge);
  CHECK(judge.calls == 7);
  REQUIRE(out.samples.size() == 7);
  CHECK(out.samples[1].score == 4.0);
  CHECK(out.samples[5].prompt == 2);
  REQUIRE(out.pairs.size() == 2);
  CHECK(as_tuples(out.pairs) == decltype(as_tuples(out.pairs)){{0, 1, 2}, {2, 5, 6}});
  check_pair_invariants(out.samples, out.pairs, 0.0);

  struct NanJudge {
    double operator()(const kaizen::Prompt&, const kaizen::Completion&) const { return std::nan(""); }
  } nan_judge;
  CHECK_THROWS_WITH(pref::self_rewarding_pairs(std::span<const kaizen::Group>(groups), nan_judge),
                    Catch::StartsWith("score: reward nan for completion 0 is not finite"));
}

TEST_CASE("temporal_pairs anchors the rejected sample in the past and upgrades the chosen from the future",
          "[preference][pairs]") {
  const pref::TemporalOptions ids{.anchor_model = 0, .current_model = 1, .future_model = 2};
  // The digest's oracle: current {7, 9}, anchor {2, 5}, future {10, 8} -> (future 10, anchor 2).
  const std::vector<ScoredSample> oracle = {{0, 7, 1}, {0, 9, 1}, {0, 2, 0}, {0, 5, 0}, {0, 10, 2}, {0, 8, 2}};
  const auto pairs = pref::temporal_pairs(oracle, ids);
  REQUIRE(pairs.size() == 1);
  CHECK(pairs[0].chosen == 4);
  CHECK(pairs[0].rejected == 2);
  // A future best that only ties the current best does not replace it.
  const std::vector<ScoredSample> tie = {{0, 9, 1}, {0, 2, 0}, {0, 9, 2}};
  CHECK(pref::temporal_pairs(tie, ids).at(0).chosen == 0);
  // No current sample: the future best is chosen. No anchor sample: no pair. Anchor better: dropped.
  CHECK(pref::temporal_pairs(std::vector<ScoredSample>{{0, 3, 2}, {0, 1, 0}}, ids).at(0).chosen == 0);
  CHECK(pref::temporal_pairs(std::vector<ScoredSample>{{0, 3, 1}, {0, 1, 2}}, ids).empty());
  CHECK(pref::temporal_pairs(std::vector<ScoredSample>{{0, 3, 1}, {0, 4, 0}}, ids).empty());

  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    const auto samples = random_samples(seed);
    for (double margin : {0.0, 2.0}) {
      const auto out = pref::temporal_pairs(samples, {.margin = margin, .tie_break = pref::TieBreak::random, .seed = seed});
      check_pair_invariants(samples, out, margin);
      for (const auto& p : out) {
        CHECK(samples[p.rejected].model == 0);  // always from the anchor model
        CHECK(samples[p.chosen].model != 0);
      }
      const auto again = pref::temporal_pairs(samples, {.margin = margin, .tie_break = pref::TieBreak::random, .seed = seed});
      CHECK(as_tuples(out) == as_tuples(again));
    }
  }
}

TEST_CASE("self_correction_pairs keeps only episodes whose correctness changed", "[preference][pairs]") {
  const std::vector<double> initial = {1, 1, 0, 0, 0.7};
  const std::vector<double> refined = {1, 0, 1, 0, 0.2};
  const auto pairs = pref::self_correction_pairs(initial, refined);
  REQUIRE(pairs.size() == 3);
  CHECK(pairs[0].episode == 1);
  CHECK(pairs[0].chosen == pref::Attempt::initial);
  CHECK(pairs[0].rejected == pref::Attempt::refined);
  CHECK(pairs[1].episode == 2);
  CHECK(pairs[1].chosen == pref::Attempt::refined);
  CHECK(pairs[1].rejected == pref::Attempt::initial);
  CHECK(pairs[2].episode == 4);
  CHECK(pairs[2].chosen == pref::Attempt::initial);
  CHECK(pref::self_correction_pairs(initial, refined, 0.1).size() == 2);  // 0.7 and 0.2 both count as correct
}

TEST_CASE("pair builders reject non-finite scores, negative margins and bad settings", "[preference][pairs]") {
  const std::vector<ScoredSample> nan = {{0, 1.0}, {0, std::numeric_limits<double>::quiet_NaN()}};
  CHECK_THROWS_WITH(pref::best_vs_worst_pairs(nan),
                    Catch::StartsWith("best_vs_worst_pairs: expected finite scores, sample 1 has nan"));
  CHECK_THROWS_WITH(pref::margin_pairs(nan), Catch::StartsWith("margin_pairs: expected finite scores, sample 1 has nan"));
  const std::vector<ScoredSample> ok = {{0, 1.0}, {0, 2.0}};
  CHECK_THROWS_WITH(pref::best_vs_worst_pairs(ok, {.margin = -1.0}),
                    Catch::StartsWith("best_vs_worst_pairs: expected margin >= 0 and finite, got -1"));
  CHECK_THROWS_WITH(pref::temporal_pairs(ok, {.anchor_model = 1, .current_model = 1, .future_model = 2}),
                    Catch::StartsWith("temporal_pairs: expected distinct anchor, current and future model ids, got 1, 1, 2"));
  const std::vector<double> three = {1, 0, 1}, two = {0, 1};
  CHECK_THROWS_WITH(pref::self_correction_pairs(three, two),
                    Catch::StartsWith("self_correction_pairs: expected one refined score per initial score, got 3 initial and 2 refined"));
  const std::vector<double> inf = {0, std::numeric_limits<double>::infinity()};
  CHECK_THROWS_WITH(pref::self_correction_pairs(two, inf),
                    Catch::StartsWith("self_correction_pairs: expected finite scores, episode 1 has 1 and inf"));
}

TEST_CASE("newer_beats_older_pairs chooses the newer model's samples and drops identical completions",
          "[preference][pairs]") {
  // Prompt 0: newer {a, b}, older {a, c}; prompt 1: newer {d}, older {e}; a model-2 sample is ignored.
  const std::vector<ScoredSample> samples = {{0, 0.2, 1}, {0, 0.9, 1}, {0, 0.5, 0}, {0, 0.1, 0},
                                             {1, 0.3, 1}, {1, 0.4, 0}, {1, 1.0, 2}};
  const std::vector<std::string> text = {"a", "b", "a", "c", "d", "e", "f"};
  auto same = [&](std::size_t i, std::size_t j) { return text[i] == text[j]; };
  const auto pairs = pref::newer_beats_older_pairs(samples, same, {.newer_model = 1, .older_model = 0});
  using T = std::tuple<std::int64_t, std::size_t, std::size_t>;
  // (0: a over a) is dropped as identical; the rest in order newer i, then older j.
  CHECK(as_tuples(pairs) == std::vector<T>{{0, 0, 3}, {0, 1, 2}, {0, 1, 3}, {1, 4, 5}});
  for (const auto& p : pairs) {
    CHECK(samples[p.chosen].model == 1);
    CHECK(samples[p.rejected].model == 0);
    CHECK(text[p.chosen] != text[p.rejected]);
    CHECK(p.chosen_score == samples[p.chosen].score);
  }
  // The consistency filter keeps only pairs whose newer score is not lower.
  const auto filtered = pref::newer_beats_older_pairs(
      samples, same, {.newer_model = 1, .older_model = 0, .require_score_not_lower = true});
  CHECK(as_tuples(filtered) == std::vector<T>{{0, 0, 3}, {0, 1, 2}, {0, 1, 3}});
  // Swapping the roles swaps chosen and rejected.
  const auto swapped = pref::newer_beats_older_pairs(samples, same, {.newer_model = 0, .older_model = 1});
  CHECK(as_tuples(swapped) == std::vector<T>{{0, 2, 1}, {0, 3, 0}, {0, 3, 1}, {1, 5, 4}});
  // A cap keeps a seeded subset, in input order, the same for the same seed.
  const auto capped = pref::newer_beats_older_pairs(samples, same, {.max_pairs_per_prompt = 2, .seed = 3});
  CHECK(capped.size() == 3);  // 2 of prompt 0's 3, prompt 1's single pair
  CHECK(as_tuples(capped) == as_tuples(pref::newer_beats_older_pairs(samples, same, {.max_pairs_per_prompt = 2, .seed = 3})));
  CHECK(std::is_sorted(capped.begin(), capped.begin() + 2,
                       [](const auto& a, const auto& b) { return std::tie(a.chosen, a.rejected) < std::tie(b.chosen, b.rejected); }));
  // Errors with the values.
  CHECK_THROWS_WITH(pref::newer_beats_older_pairs(samples, same, {.newer_model = 2, .older_model = 2}),
                    Catch::StartsWith("newer_beats_older_pairs: expected distinct newer and older model ids, got 2 and 2"));
  const std::vector<ScoredSample> nan = {{0, 1.0, 1}, {0, std::numeric_limits<double>::quiet_NaN(), 0}};
  CHECK_THROWS_WITH(pref::newer_beats_older_pairs(nan, [](std::size_t, std::size_t) { return false; }),
                    Catch::StartsWith("newer_beats_older_pairs: expected finite scores, sample 1 has nan"));
}
