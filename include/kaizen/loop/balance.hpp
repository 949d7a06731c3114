// kaizen/loop/balance.hpp - B-STaR's monitors and its balance score, and the per-iteration search of the
// sampling temperature and the reward threshold that maximise it (torch-free).
//
// For query i with K samples, selection scores s_ij and correctness c_ij ∈ {0, 1}:
//   kept_i = select_indices(score > τ, at most `cap`, distinct) (loop/rejection_sampling.hpp), n_i = |kept_i|,
//   n'_i = Σ_{j ∈ kept_i} c_ij
//   balance score   bs_i = min(n'_i / n*, 1) · (n'_i / n_i)    (n_i = 0: the query is skipped, or counts 0 with
//                   skip_empty = false); overall = mean over the counted queries (0 when none is counted)
//   pass@K          = fraction of queries with ≥ 1 correct among their K samples       (exploration)
//   pass@K-S        = fraction of queries with ≥ S correct among their K samples       (exploration)
//   distinct correct = mean over queries of the number of distinct correct samples (token sequences)
//   kept precision  = Σ n'_i / Σ n_i, the reward's precision on what it keeps (0 when nothing is kept)
//                                                                                      (exploitation)
// Tuning: for each temperature t of the grid, one set of samples of the held-out queries; for each
// threshold τ, the mean balance score; the (t, τ) with the highest score wins, ties to the earlier in grid
// order (temperature-major).
//
// Reference: Zeng et al. 2024, "B-STaR: Monitoring and Balancing Exploration and Exploitation in
// Self-Taught Reasoners" (arXiv 2412.17256; n* = 8 in its released code).
#pragma once

#include <algorithm>
#include <cstdint>
#include <set>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/rejection_sampling.hpp>

namespace kaizen::loop {

/// Kept and kept-correct counts of one query.
struct KeptCounts {
  std::int64_t kept = 0;
  std::int64_t kept_correct = 0;
};

/// bs = min(n' / n*, 1) · (n' / n); 0 when nothing is kept. Throws kaizen::Error when n* < 1,
/// a count is negative, or kept_correct > kept.
[[nodiscard]] inline double balance_score(const KeptCounts& q, std::int64_t n_star) {
  KAIZEN_CHECK(n_star >= 1, "balance_score: n* (desired correct samples per query) must be >= 1, got ", n_star);
  KAIZEN_CHECK(q.kept >= 0 && q.kept_correct >= 0 && q.kept_correct <= q.kept,
               "balance_score: need 0 <= kept_correct <= kept, got kept = ", q.kept, ", kept_correct = ", q.kept_correct);
  if (q.kept == 0) return 0.0;
  const auto correct = static_cast<double>(q.kept_correct);
  return std::min(correct / static_cast<double>(n_star), 1.0) * (correct / static_cast<double>(q.kept));
}

/// Mean balance score over queries; queries with nothing kept are skipped (skip_empty) or count 0.
[[nodiscard]] inline double mean_balance_score(std::span<const KeptCounts> queries, std::int64_t n_star, bool skip_empty = true) {
  double sum = 0.0;
  std::int64_t counted = 0;
  for (const KeptCounts& q : queries) {
    const double bs = balance_score(q, n_star);
    if (q.kept == 0 && skip_empty) continue;
    sum += bs;
    ++counted;
  }
  return counted == 0 ? 0.0 : sum / static_cast<double>(counted);
}

struct BalanceOptions {
  std::int64_t n_star = 8;     ///< desired correct samples per query, >= 1
  std::int64_t cap = 8;        ///< kept samples per query, > 0
  std::int64_t s = 4;          ///< S of pass@K-S, >= 1
  bool distinct = true;        ///< duplicates are kept once
  bool skip_empty = true;      ///< queries with nothing kept are absent from the mean balance score
};

/// One query's samples: scores (for selection) in group.rewards, correctness (0/1) per sample.
struct LabelledGroup {
  Group group;
  std::vector<double> correct;
};

/// The monitors of a set of labelled samples at one threshold.
struct Monitors {
  double pass_at_k = 0.0;
  double pass_at_k_s = 0.0;
  double distinct_correct = 0.0;
  double kept_precision = 0.0;
  double kept_per_query = 0.0;
  double balance_score = 0.0;
  std::int64_t queries = 0;

  [[nodiscard]] nlohmann::json to_json() const {
    return {{"pass_at_k", pass_at_k},           {"pass_at_k_s", pass_at_k_s},   {"distinct_correct", distinct_correct},
            {"kept_precision", kept_precision}, {"kept_per_query", kept_per_query}, {"balance_score", balance_score},
            {"queries", queries}};
  }
};

/// The monitors of `queries` when samples with score > threshold are kept (see the top of the file).
/// Throws kaizen::Error on no queries, a correctness vector of the wrong size or not 0/1, cap <= 0,
/// n* < 1 or S < 1.
[[nodiscard]] inline Monitors monitor(std::span<const LabelledGroup> queries, double threshold, const BalanceOptions& o) {
  KAIZEN_CHECK(!queries.empty(), "monitor: expected at least one query");
  KAIZEN_CHECK(o.s >= 1, "monitor: S of pass@K-S must be >= 1, got ", o.s);
  KAIZEN_CHECK(o.n_star >= 1, "monitor: n* must be >= 1, got ", o.n_star);
  const SelectionRule rule{.threshold = threshold, .strict = true, .cap = o.cap, .distinct = o.distinct};
  validate(rule, "monitor");
  Monitors m;
  m.queries = static_cast<std::int64_t>(queries.size());
  std::vector<KeptCounts> counts;
  std::int64_t kept = 0, kept_correct = 0;
  for (std::size_t q = 0; q < queries.size(); ++q) {
    const LabelledGroup& lg = queries[q];
    KAIZEN_CHECK(lg.correct.size() == lg.group.completions.size(), "monitor: query ", q, " has ",
                 lg.group.completions.size(), " samples but ", lg.correct.size(), " correctness labels");
    std::int64_t correct = 0;
    std::set<std::vector<TokenId>> distinct;
    for (std::size_t j = 0; j < lg.correct.size(); ++j) {
      KAIZEN_CHECK(lg.correct[j] == 0.0 || lg.correct[j] == 1.0, "monitor: correctness labels must be 0 or 1, got ",
                   lg.correct[j], " for sample ", j, " of query ", q);
      if (lg.correct[j] == 1.0) {
        ++correct;
        distinct.insert(lg.group.completions[j].tokens);
      }
    }
    m.pass_at_k += correct >= 1 ? 1.0 : 0.0;
    m.pass_at_k_s += correct >= o.s ? 1.0 : 0.0;
    m.distinct_correct += static_cast<double>(distinct.size());
    KeptCounts c;
    for (std::size_t j : select_indices(lg.group, rule)) {
      ++c.kept;
      if (lg.correct[j] == 1.0) ++c.kept_correct;
    }
    kept += c.kept;
    kept_correct += c.kept_correct;
    counts.push_back(c);
  }
  const auto n = static_cast<double>(queries.size());
  m.pass_at_k /= n;
  m.pass_at_k_s /= n;
  m.distinct_correct /= n;
  m.kept_per_query = static_cast<double>(kept) / n;
  m.kept_precision = kept == 0 ? 0.0 : static_cast<double>(kept_correct) / static_cast<double>(kept);
  m.balance_score = mean_balance_score(std::span<const KeptCounts>(counts), o.n_star, o.skip_empty);
  return m;
}

/// The winner of a temperature × threshold search.
struct TuneResult {
  double temperature = 0.0;
  double threshold = 0.0;
  Monitors monitors;           ///< at the winner
  nlohmann::json table;        ///< [{"temperature","threshold","balance_score"}...] in grid order
};

/// Searches the grid (see the top of the file). `sample_at(temperature)` returns the labelled samples of
/// the held-out queries at that temperature (it is called once per temperature, in grid order).
/// Throws kaizen::Error when either grid is empty.
template <class SampleAt>
  requires requires(SampleAt& f, double t) { { f(t) } -> std::convertible_to<std::vector<LabelledGroup>>; }
[[nodiscard]] TuneResult tune_balance(std::span<const double> temperatures, std::span<const double> thresholds,
                                      SampleAt&& sample_at, const BalanceOptions& options) {
  KAIZEN_CHECK(!temperatures.empty(), "tune_balance: the temperature grid is empty; give at least one temperature");
  KAIZEN_CHECK(!thresholds.empty(), "tune_balance: the reward-threshold grid is empty; give at least one threshold");
  TuneResult best;
  best.table = nlohmann::json::array();
  bool first = true;
  for (double t : temperatures) {
    const std::vector<LabelledGroup> samples = sample_at(t);
    for (double tau : thresholds) {
      const Monitors m = monitor(std::span<const LabelledGroup>(samples), tau, options);
      best.table.push_back({{"temperature", t}, {"threshold", tau}, {"balance_score", m.balance_score}});
      if (first || m.balance_score > best.monitors.balance_score) {
        best.temperature = t;
        best.threshold = tau;
        best.monitors = m;
        first = false;
      }
    }
  }
  return best;
}

}  // namespace kaizen::loop
