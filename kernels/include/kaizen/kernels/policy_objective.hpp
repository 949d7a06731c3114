// kaizen/kernels/policy_objective.hpp - the fused policy-gradient objective over per-token quantities.
//
// For [rows, cols] log-probs lp, old, ref, advantages A, mask m, entropy H and sampler log-probs (the
// last three optional), one CTA per row computes, in two sweeps over the row:
//   1. the row sums: n_i = Σ m, the GSPO / GMPO log-ratio sum, the sequence-level importance gap, the
//      count of non-finite inputs on valid tokens;
//   2. per token ℓ_t and dℓ_t/dlp_t (kaizen/policy_gradient/detail/token_objective.hpp, the math the
//      CPU path runs too), writing grad_logprobs[t] = m_t · dℓ_t/dlp_t / div_i (div_i = n_i for
//      SeqMeanTokenMean, else 1; 0 on padding) and the row's statistics (RowStat) in double.
// A second one-CTA kernel sums the row statistics in a fixed order (deterministic) into `totals`.
// The caller multiplies by the aggregation scale 1/N (1/(N · L_c)) in the backward (kaizen::ops).
// The kernel template is instantiated for every supported (ratio level, clip mode, KL estimator) of
// policy_gradient::Objective and both dtypes; SymmetricClip shares AsymmetricClip's instantiation
// (same formula with ε_low = ε_high). Entropy and importance sampling are runtime inputs.
#pragma once

#include <cstdint>

#include <kaizen/policy_gradient/detail/token_objective.hpp>
#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::kernels {

/// Element type of every per-token input (and of grad_logprobs).
enum class ObjectiveDType : std::uint8_t { f32, f64 };

/// Device pointers of one call; every [rows, cols] array is dense (row stride cols).
struct PolicyObjectiveTensors {
  const void* logprobs = nullptr;
  const void* old_logprobs = nullptr;
  const void* ref_logprobs = nullptr;      ///< required with a KL estimator, else ignored
  const void* advantages = nullptr;        ///< read at row · advantage_row_stride + t · advantage_col_stride
  std::int64_t advantage_row_stride = 0;   ///< cols for [rows, cols], 1 for per-sequence [rows]
  std::int64_t advantage_col_stride = 0;   ///< 1 for [rows, cols], 0 for per-sequence [rows]
  const void* mask = nullptr;              ///< mask weights in the input dtype (0 = padding)
  const void* entropy = nullptr;           ///< H_t or nullptr (then the entropy metric sums lp)
  const void* sampler_logprobs = nullptr;  ///< required when params.importance_action != none
  void* grad_logprobs = nullptr;           ///< out [rows, cols]
  double* row_stats = nullptr;             ///< out [rows, kRowStatCount] (token_objective.hpp RowStat)
  double* totals = nullptr;                ///< out [kRowStatCount]: sums over rows (max for kStatRatioMax)
};

/// Runs the objective selected by (ratio, clip, kl) with `params` (token_objective_params of the
/// Objective) on `stream` (a cudaStream_t; nullptr = default). Inputs are not validated beyond what
/// is listed: kaizen::ops::policy_objective checks shapes, options and values, and reports the rows
/// the statistics flag (kStatEmptyRows, kStatNonFinite).
/// Throws kaizen::Error on rows or cols < 0 or ≥ 2^31, a combination Objective rejects, a missing
/// ref_logprobs / sampler_logprobs the options need, or a failed launch.
void policy_objective(policy_gradient::RatioLevel ratio, policy_gradient::ClipMode clip,
                      policy_gradient::KlEstimator kl, const policy_gradient::detail::TokenObjectiveParams<double>& params,
                      ObjectiveDType dtype, const PolicyObjectiveTensors& tensors, std::int64_t rows, std::int64_t cols,
                      void* stream);

}  // namespace kaizen::kernels
