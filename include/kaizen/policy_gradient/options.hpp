// kaizen/policy_gradient/options.hpp - the option types that select a policy-gradient objective.
//
// An objective is a composition of orthogonal choices, each a small aggregate type:
//
//   Objective<Ratio, Clip, Kl, Aggregate>
//     Ratio      TokenRatio | SequenceRatio (GSPO) | GeometricRatio (GMPO)
//     Clip       NoClip | SymmetricClip | AsymmetricClip (clip-higher) | DualClip | CispoClip | SapoGate
//     Kl         KlLoss<KlEstimator::none | k1 | k2 | k3 | k3_importance>  (KL to the reference, in the loss)
//     Aggregate  TokenMean | SeqMeanTokenMean | SeqMeanTokenSum | SeqMeanTokenSumNorm
//   plus an entropy-bonus coefficient and truncated importance sampling (TruncatedImportanceSampling).
//
// Per-token loss, with Δ_t = log π_θ − log π_old, A the advantage, w_t the truncated IS weight:
//   ℓ_t = −w_t · obj(r_t, A_t) + β · KL_t − c_H · H_t,
// where r_t is the ratio chosen by `Ratio`, obj the clipped/weighted surrogate chosen by `Clip`, KL_t
// the estimator chosen by `Kl` (coefficient β), H_t the per-token entropy, c_H the entropy coefficient;
// `Aggregate` turns [B, T] values of ℓ into the scalar loss. Every member's formula is on it below.
//
// The same types parameterise the LibTorch path (policy_loss.hpp) and the CUDA kernel templates: they
// are plain aggregates of doubles and enums (no std:: containers, no virtual functions), so they can
// be passed by value to device code. Combinations that have no meaning fail to compile with a
// static_assert naming the fix.
//
// References: PPO (Schulman et al. 2017, arXiv 1707.06347), dual-clip (Ye et al. 2020, arXiv
// 1912.09729), GRPO (Shao et al. 2024, arXiv 2402.03300), DAPO (Yu et al. 2025, arXiv 2503.14476),
// Dr. GRPO (Liu et al. 2025, arXiv 2503.20783), GSPO (Zheng et al. 2025, arXiv 2507.18071), GMPO (Zhao
// et al. 2025, arXiv 2507.20673), CISPO (MiniMax-M1, arXiv 2506.13585), SAPO (Gao et al. 2025, arXiv
// 2511.20347), KL estimators (Schulman 2020, "Approximating KL divergence"), truncated importance
// sampling (Yao et al. 2025, "Your efficient RL framework secretly brings you off-policy RL training").
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

namespace kaizen::policy_gradient {

// ---------------------------------------------------------------------------------------------------
// Ratio level: how the per-token log-ratio Δ_t = log π_θ(y_t) − log π_old(y_t) becomes the ratio r_t.
// ---------------------------------------------------------------------------------------------------

enum class RatioLevel : std::uint8_t { token, sequence, geometric };

/// r_t = exp(Δ_t). PPO / GRPO / DAPO.
struct TokenRatio {
  static constexpr RatioLevel level = RatioLevel::token;
};

/// GSPO: one ratio per sequence, s_i = exp(mean_{t∈y_i} Δ_t) (the length-normalised sequence ratio),
/// applied per token in the "GSPO-token" form r_t = sg(s_i) · exp(log π_θ(y_t) − sg(log π_θ(y_t))),
/// whose value is s_i and whose gradient is s_i ∇log π_θ(y_t). With a per-sequence advantage and
/// SeqMeanTokenMean this equals sequence-level GSPO exactly. Clipping then acts on s_i.
struct SequenceRatio {
  static constexpr RatioLevel level = RatioLevel::sequence;
};

/// GMPO: the geometric mean of per-token ratios, clipped per token in log space first.
/// Δ̃_t = min(Δ_t, clamp(Δ_t, −ε_low, ε_high)) if A_t ≥ 0, max(Δ_t, clamp(Δ_t, −ε_low, ε_high)) if
/// A_t < 0 (the pessimistic side, as in PPO); g_i = exp(mean_{t∈y_i} Δ̃_t); per token
/// r_t = sg(g_i) · exp(Δ̃_t − sg(Δ̃_t)), objective r_t · A_t, no further clipping. The ε of the clip
/// option are log-space bounds here (GMPO uses ε = 0.4). Only NoClip, SymmetricClip and
/// AsymmetricClip are meaningful with it.
struct GeometricRatio {
  static constexpr RatioLevel level = RatioLevel::geometric;
};

// ---------------------------------------------------------------------------------------------------
// Clipping / weighting: obj(r, A) per token (maximised; the loss is its negative).
// ---------------------------------------------------------------------------------------------------

enum class ClipMode : std::uint8_t { none, symmetric, asymmetric, dual, cispo, sapo };

/// obj = r · A (REINFORCE with importance ratio; on-policy r = 1 gives the vanilla policy gradient).
struct NoClip {
  static constexpr ClipMode mode = ClipMode::none;
};

/// PPO: obj = min(r · A, clamp(r, 1 − ε, 1 + ε) · A). Default ε = 0.2.
struct SymmetricClip {
  static constexpr ClipMode mode = ClipMode::symmetric;
  double epsilon = 0.2;  ///< ε: the ratio is clipped to [1 − ε, 1 + ε]
};

/// DAPO clip-higher: obj = min(r · A, clamp(r, 1 − ε_low, 1 + ε_high) · A). Defaults 0.2 / 0.28.
struct AsymmetricClip {
  static constexpr ClipMode mode = ClipMode::asymmetric;
  double epsilon_low = 0.2;    ///< lower bound 1 − ε_low (binds when A < 0)
  double epsilon_high = 0.28;  ///< upper bound 1 + ε_high (binds when A > 0)
};

/// Dual-clip PPO: obj = min(r · A, clamp(r, 1 − ε_low, 1 + ε_high) · A) for A ≥ 0, and
/// max(that, c · A) for A < 0, which bounds the loss of a negative-advantage token whose ratio has
/// grown large. Requires c > 1. Defaults ε = 0.2 / 0.2, c = 3 (verl).
struct DualClip {
  static constexpr ClipMode mode = ClipMode::dual;
  double epsilon_low = 0.2;
  double epsilon_high = 0.2;
  double c = 3.0;  ///< the dual-clip constant, > 1
};

/// How CISPO reports its loss value (the gradient is the same, sg(ŵ) · A · ∇log π_θ, in both).
enum class CispoLossValue : std::uint8_t {
  weight,    ///< obj = sg(ŵ) · A · exp(log π_θ − sg(log π_θ)): value ŵ · A (kaizen's default)
  log_prob,  ///< obj = sg(ŵ) · A · log π_θ: the published loss, as TRL 1.16 / Liger-Kernel 0.8.5 log it
};

/// CISPO: a clipped, stop-gradient importance weight on a REINFORCE term, ŵ = clamp(r, 1 − ε_low, 1 + ε_high):
///   value weight:   obj = sg(ŵ) · A · exp(log π_θ(y_t) − sg(log π_θ(y_t)))   (value ŵ · A)
///   value log_prob: obj = sg(ŵ) · A · log π_θ(y_t)                          (MiniMax-M1's loss; TRL, Liger)
/// Both have the gradient sg(ŵ) · A · ∇log π_θ, so every token keeps a gradient and only its weight is
/// bounded. The bounds are relative to 1 as for the other clips; the peers' absolute cap ε_max (TRL/Liger
/// `epsilon_high`, the weight is min(r, ε_max)) is cispo_cap(ε_max) = {ε_low = 1, ε_high = ε_max − 1}.
/// Defaults: ε_low = 1 (no lower bound: r > 0 always), ε_high = 4, i.e. the cap ε_max = 5 that TRL's
/// GRPOConfig documents for CISPO after ScaleRL (Khatri et al. 2025, arXiv 2510.13786). MiniMax-M1 publishes
/// no value; kaizen's earlier default 0.28 (cap 1.28) was DAPO's clip-higher bound carried over, which binds
/// on most off-policy tokens and is far tighter than what CISPO is run with.
struct CispoClip {
  static constexpr ClipMode mode = ClipMode::cispo;
  double epsilon_low = 1.0;
  double epsilon_high = 4.0;
  CispoLossValue value = CispoLossValue::weight;
};

/// The CISPO clip of the peers' absolute cap: weight min(r, ε_max) (TRL / Liger `epsilon_high` = ε_max).
[[nodiscard]] constexpr CispoClip cispo_cap(double epsilon_max, CispoLossValue value = CispoLossValue::log_prob) {
  return CispoClip{.epsilon_low = 1.0, .epsilon_high = epsilon_max - 1.0, .value = value};
}

/// SAPO soft gate: obj = (4 / τ) · σ(τ (r − 1)) · A with τ = τ_pos if A > 0 else τ_neg. The gate
/// equals r to first order at r = 1 (value 2/τ, slope 1) and smoothly flattens off-policy tokens
/// instead of zeroing their gradient. Defaults τ_pos = 1.0, τ_neg = 1.05 (from the SAPO paper, to
/// confirm).
struct SapoGate {
  static constexpr ClipMode mode = ClipMode::sapo;
  double tau_positive = 1.0;
  double tau_negative = 1.05;
};

// ---------------------------------------------------------------------------------------------------
// KL to the reference policy, in the loss (for KL in the reward, see kl.hpp: kl_penalized_rewards).
// With d_t = log π_ref(y_t) − log π_θ(y_t):
//   k1 = −d_t                                   (log π_θ − log π_ref; unbiased for KL, high variance)
//   k2 = d_t² / 2                               (biased, low variance; gradient = the KL gradient's
//                                                on-policy estimate)
//   k3 = exp(d_t) − d_t − 1                     (unbiased, ≥ 0; plain by default, optionally clamped to
//                                                [−k_max, k_max] as verl does with k_max = 10)
//   k3_importance = exp(log π_θ − log π_old) · k3   (k3 with the importance ratio to the sampling
//                                                policy, unbiased off-policy; gradient flows through
//                                                both factors)
// ---------------------------------------------------------------------------------------------------

enum class KlEstimator : std::uint8_t { none, k1, k2, k3, k3_importance };

/// β · KL_t added to the per-token loss. `KlLoss<>` (estimator none) switches the term off and lets
/// the reference log-probs be undefined.
/// The clamp: `clamp` = +∞ (the default) is the plain estimator, as in the papers, TRL 1.16 and Liger-Kernel
/// 0.8.5; verl clamps k3 to [−10, 10] (`kVerlKlClamp`). The clamp has a cost: where π_θ ≪ π_ref (d_t > ~2.5,
/// k3 > 10) it zeroes the KL gradient, exactly where the policy has drifted furthest. The plain value
/// overflows only when e^(d_t) does (d_t > 709 in float64, > 88 in float32).
template <KlEstimator Estimator = KlEstimator::none>
struct KlLoss {
  static constexpr KlEstimator estimator = Estimator;
  double coefficient = Estimator == KlEstimator::none ? 0.0 : 0.04;  ///< β (DeepSeekMath: 0.04)
  /// k3 and k3_importance's k3 factor are clamped to [−clamp, clamp]; > 0, +∞ = no clamp (default)
  double clamp = std::numeric_limits<double>::infinity();
};

/// verl's k3 clamp (`kl_penalty = "low_var_kl"`): KlLoss<KlEstimator::k3>{.clamp = kVerlKlClamp}.
inline constexpr double kVerlKlClamp = 10.0;

using NoKl = KlLoss<KlEstimator::none>;

// ---------------------------------------------------------------------------------------------------
// Aggregation: [B, T] per-token loss ℓ and mask m → scalar. N is the normaliser: by default computed
// from this batch; pass the value for the whole global batch (global_normaliser() summed over
// micro-batches / ranks) to make the summed micro-batch gradients equal the full-batch gradient.
// n_i = Σ_t m_it is the length of row i.
// ---------------------------------------------------------------------------------------------------

enum class AggregationMode : std::uint8_t { token_mean, seq_mean_token_mean, seq_mean_token_sum,
                                            seq_mean_token_sum_norm };

/// L = Σ_i Σ_t m_it ℓ_it / N, N = number of valid tokens (DAPO; longer answers weigh more).
struct TokenMean {
  static constexpr AggregationMode mode = AggregationMode::token_mean;
};

/// L = Σ_i (Σ_t m_it ℓ_it / n_i) / N, N = number of sequences (GRPO as published; length bias).
struct SeqMeanTokenMean {
  static constexpr AggregationMode mode = AggregationMode::seq_mean_token_mean;
};

/// L = Σ_i Σ_t m_it ℓ_it / N, N = number of sequences.
struct SeqMeanTokenSum {
  static constexpr AggregationMode mode = AggregationMode::seq_mean_token_sum;
};

/// Dr. GRPO: L = Σ_i Σ_t m_it ℓ_it / (N · L_c), N = number of sequences, L_c a constant (e.g. the
/// maximum generation length), so neither length nor batch composition changes a token's weight.
struct SeqMeanTokenSumNorm {
  static constexpr AggregationMode mode = AggregationMode::seq_mean_token_sum_norm;
  double constant = 4096.0;  ///< L_c, > 0
};

// ---------------------------------------------------------------------------------------------------
// Truncated importance sampling: correct for the sampler's log-probs (π_sampler, e.g. vLLM) differing
// from the trainer's old log-probs (π_old) on the same tokens. With u_t = log π_old − log π_sampler:
//   token level:    w_t = exp(u_t)
//   sequence level: w_t = exp(Σ_{t∈y_i} u_t) for every token of row i
//   truncate (TIS): w ← min(w, cap);   mask (MIS): w ← w · [w ≤ cap]
// w is a constant (no gradient) multiplying the policy term of ℓ_t (not the KL or entropy terms).
// ---------------------------------------------------------------------------------------------------

enum class ImportanceLevel : std::uint8_t { token, sequence };
enum class ImportanceAction : std::uint8_t { none, truncate, mask };

struct TruncatedImportanceSampling {
  ImportanceAction action = ImportanceAction::none;  ///< none: sampler log-probs are not used
  ImportanceLevel level = ImportanceLevel::token;
  double cap = 2.0;  ///< C > 0 (verl's TIS default: 2)
};

// ---------------------------------------------------------------------------------------------------
// The composed objective.
// ---------------------------------------------------------------------------------------------------

namespace detail {
template <class T> inline constexpr bool is_ratio_option_v =
    std::is_same_v<T, TokenRatio> || std::is_same_v<T, SequenceRatio> || std::is_same_v<T, GeometricRatio>;
template <class T> inline constexpr bool is_clip_option_v =
    std::is_same_v<T, NoClip> || std::is_same_v<T, SymmetricClip> || std::is_same_v<T, AsymmetricClip> ||
    std::is_same_v<T, DualClip> || std::is_same_v<T, CispoClip> || std::is_same_v<T, SapoGate>;
template <class T> inline constexpr bool is_kl_option_v =
    std::is_same_v<T, KlLoss<KlEstimator::none>> || std::is_same_v<T, KlLoss<KlEstimator::k1>> ||
    std::is_same_v<T, KlLoss<KlEstimator::k2>> || std::is_same_v<T, KlLoss<KlEstimator::k3>> ||
    std::is_same_v<T, KlLoss<KlEstimator::k3_importance>>;
template <class T> inline constexpr bool is_aggregation_option_v =
    std::is_same_v<T, TokenMean> || std::is_same_v<T, SeqMeanTokenMean> || std::is_same_v<T, SeqMeanTokenSum> ||
    std::is_same_v<T, SeqMeanTokenSumNorm>;
}  // namespace detail

/// One policy-gradient objective: what policy_loss() computes and what the fused CUDA objective is
/// instantiated over. Set members with designated initializers:
///   Objective<TokenRatio, AsymmetricClip, NoKl, TokenMean>{.clip = {.epsilon_high = 0.3}}
template <class Ratio = TokenRatio, class Clip = SymmetricClip, class Kl = NoKl, class Aggregate = TokenMean>
struct Objective {
  static_assert(detail::is_ratio_option_v<Ratio>,
                "kaizen::policy_gradient::Objective: the 1st parameter must be a ratio option "
                "(TokenRatio, SequenceRatio or GeometricRatio)");
  static_assert(detail::is_clip_option_v<Clip>,
                "kaizen::policy_gradient::Objective: the 2nd parameter must be a clip option (NoClip, "
                "SymmetricClip, AsymmetricClip, DualClip, CispoClip or SapoGate)");
  static_assert(detail::is_kl_option_v<Kl>,
                "kaizen::policy_gradient::Objective: the 3rd parameter must be a KL option (KlLoss<estimator>)");
  static_assert(detail::is_aggregation_option_v<Aggregate>,
                "kaizen::policy_gradient::Objective: the 4th parameter must be an aggregation option "
                "(TokenMean, SeqMeanTokenMean, SeqMeanTokenSum or SeqMeanTokenSumNorm)");

  using RatioOption = Ratio;
  using ClipOption = Clip;
  using KlOption = Kl;
  using AggregationOption = Aggregate;
  static constexpr RatioLevel ratio_level = Ratio::level;
  static constexpr ClipMode clip_mode = Clip::mode;
  static constexpr KlEstimator kl_estimator = Kl::estimator;
  static constexpr AggregationMode aggregation_mode = Aggregate::mode;

  static_assert(ratio_level != RatioLevel::geometric ||
                    (clip_mode == ClipMode::none || clip_mode == ClipMode::symmetric ||
                     clip_mode == ClipMode::asymmetric),
                "kaizen::policy_gradient::Objective: GeometricRatio clips each token's log-ratio itself; "
                "combine it with NoClip, SymmetricClip or AsymmetricClip, not DualClip, CispoClip or SapoGate");
  static_assert(ratio_level == RatioLevel::token ||
                    (clip_mode != ClipMode::cispo && clip_mode != ClipMode::sapo),
                "kaizen::policy_gradient::Objective: CispoClip and SapoGate weight each token by its own "
                "ratio; use them with TokenRatio");

  Ratio ratio{};
  Clip clip{};
  Kl kl{};
  Aggregate aggregation{};
  double entropy_coefficient = 0.0;  ///< c_H: adds −c_H · H_t to ℓ_t (needs a per-token entropy input)
  TruncatedImportanceSampling importance{};
  /// δ: caps the ratio of the unclipped term, obj = min(min(r, δ) · A, clamp(r, ...) · A) (two-sided clipping,
  /// INTELLECT-2, arXiv 2505.07291; TRL / Liger `delta`), independent of DualClip. +∞ (default) = off; must
  /// be > 1 + ε_high to mean anything. Token and sequence ratios with NoClip / SymmetricClip / AsymmetricClip /
  /// DualClip; computed by policy_loss (the fused objective rejects it).
  double ratio_cap = std::numeric_limits<double>::infinity();
};

// Named compositions (the published defaults; change members as needed).

/// GRPO as published: token ratio, symmetric clip 0.2, k3 KL (β = 0.04) in the loss, per-sequence mean.
using GrpoObjective = Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k3>, SeqMeanTokenMean>;
/// DAPO: clip-higher (0.2 / 0.28), no KL, token-mean.
using DapoObjective = Objective<TokenRatio, AsymmetricClip, NoKl, TokenMean>;
/// Dr. GRPO: symmetric clip, no KL, token sum over a constant.
using DrGrpoObjective = Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenSumNorm>;
/// GSPO: sequence ratio with a very small clip range, per-sequence mean.
using GspoObjective = Objective<SequenceRatio, AsymmetricClip, NoKl, SeqMeanTokenMean>;
/// GMPO: geometric-mean ratio with log-space clip ±0.4, per-sequence mean.
using GmpoObjective = Objective<GeometricRatio, SymmetricClip, NoKl, SeqMeanTokenMean>;
/// PPO with dual-clip.
using DualClipPpoObjective = Objective<TokenRatio, DualClip, NoKl, TokenMean>;
/// CISPO: clipped stop-gradient IS weight on REINFORCE, token-mean.
using CispoObjective = Objective<TokenRatio, CispoClip, NoKl, TokenMean>;
/// SAPO: soft gate, per-sequence mean.
using SapoObjective = Objective<TokenRatio, SapoGate, NoKl, SeqMeanTokenMean>;
/// LUSPO (length-unbiased sequence policy optimisation, arXiv 2602.05261): GSPO's sequence ratio
/// with each sequence's loss weighted by its length, L = Σ_i n_i ℓ_i / B, which is SeqMeanTokenSum over the
/// GSPO-token loss. TRL 1.16 loss_type "luspo" (importance_sampling_level "sequence") and Liger-Kernel 0.8.5
/// (sequence level) compute exactly this.
using LuspoObjective = Objective<SequenceRatio, AsymmetricClip, NoKl, SeqMeanTokenSum>;

inline constexpr GspoObjective kGspo{.clip = {.epsilon_low = 3e-4, .epsilon_high = 4e-4}};
inline constexpr GmpoObjective kGmpo{.clip = {.epsilon = 0.4}};
inline constexpr DapoObjective kDapo{};
inline constexpr GrpoObjective kGrpo{};

}  // namespace kaizen::policy_gradient
