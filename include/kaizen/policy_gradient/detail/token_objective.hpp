// kaizen/policy_gradient/detail/token_objective.hpp - the per-token math of a policy-gradient objective,
// value and derivative together, for the fused CPU loop (kaizen/torch/ops/policy_objective.hpp) and the
// CUDA kernel (kernels/src/policy_objective.cu). LibTorch-free; every function is host- and device-
// callable and templated on the scalar S (float or double).
//
// One token with log-probs lp (π_θ), old (π_old), ref (π_ref), advantage A, mask weight m ≠ 0, entropy
// H, importance weight w (options.hpp, TruncatedImportanceSampling) and, for the row-level ratios, the
// row's ratio ρ_i computed first from the row sums below. With Δ = clamp(lp − old, −20, 20):
//   r      token: exp(Δ)            dr/dlp = r · 1[|lp − old| ≤ 20]
//          sequence (GSPO): ρ_i = exp(Σ_t m Δ / n_i)                   dr/dlp = ρ_i      (stop-gradient form)
//          geometric (GMPO): ρ_i = exp(Σ_t m Δ̃ / n_i)                 dr/dlp = ρ_i · dΔ̃/dlp
//   obj    r A | min(r A, clamp(r, 1−ε_l, 1+ε_h) A) | dual: max(that, c A) for A < 0
//          | CISPO ŵ A (ŵ = clamp(r, 1−ε_l, 1+ε_h), gradient ŵ A) | SAPO (4/τ) σ(τ (r − 1)) A
//   ℓ      = −w · obj + β · KL(d = ref − lp) − c_H · H,   KL ∈ {−d, d²/2, clamp(eᵈ − d − 1), e^Δ · clamp(eᵈ − d − 1)}
//   dℓ/dlp = −w · dobj/dlp + β · dKL/dlp
// Piecewise derivatives follow LibTorch's conventions exactly, so the fused gradient equals autograd's
// through policy_loss: clamp passes the gradient on the closed interval, min/max split it in halves on
// a tie. No term couples two tokens (the row ratios are stop-gradient), so dL/dlp_t = a_t · dℓ_t/dlp_t
// with the aggregation weight a_t = m_t / (n_i if seq-mean-token-mean else 1) / N (/ L_c).
// The formulas and references: options.hpp, ratio.hpp, clip.hpp, kl.hpp, importance.hpp.
#pragma once

#include <math.h>  // ::exp / ::expf, callable from host and device code alike

#include <cstdint>

#include <kaizen/policy_gradient/options.hpp>

#ifndef KAIZEN_HOST_DEVICE
#if defined(__CUDACC__)
#define KAIZEN_HOST_DEVICE __host__ __device__
#else
#define KAIZEN_HOST_DEVICE
#endif
#endif

namespace kaizen::policy_gradient::detail {

/// |Δ| bound of every log-ratio before exp (the value of kMaxLogRatio in ratio.hpp).
inline constexpr double kLogRatioBound = 20.0;

KAIZEN_HOST_DEVICE inline float exp_of(float x) { return ::expf(x); }
KAIZEN_HOST_DEVICE inline double exp_of(double x) { return ::exp(x); }

template <class S>
KAIZEN_HOST_DEVICE constexpr S clamp_of(S x, S low, S high) {
  return x < low ? low : (x > high ? high : x);  // NaN passes through, as in torch::clamp
}

/// True for finite x (x − x is NaN for ±inf and NaN); no <cmath> needed on the device.
template <class S>
KAIZEN_HOST_DEVICE constexpr bool is_finite_value(S x) {
  return x - x == S(0);
}

/// The runtime values of an Objective, flattened for one scalar type. Bounds are computed in double and
/// rounded once to S, as LibTorch rounds a double scalar against an S tensor.
template <class S>
struct TokenObjectiveParams {
  S ratio_low = 0;         ///< 1 − ε_low: token/sequence clip and CISPO weight lower bound
  S ratio_high = 0;        ///< 1 + ε_high
  S log_low = 0;           ///< −ε_low: geometric log-space bound
  S log_high = 0;          ///< ε_high
  S dual_c = 0;            ///< dual-clip constant c
  S tau_positive = 1;      ///< SAPO τ for A > 0
  S tau_negative = 1;      ///< SAPO τ for A ≤ 0
  S kl_coefficient = 0;    ///< β
  S kl_clamp = 10;         ///< k3 clamp
  S entropy_coefficient = 0;  ///< c_H
  S log_cap = 0;              ///< log C of truncated importance sampling
  ImportanceAction importance_action = ImportanceAction::none;
  ImportanceLevel importance_level = ImportanceLevel::token;
  bool per_row_mean = false;  ///< SeqMeanTokenMean: a row's sum is divided by its n_i
};

/// The same parameters in another scalar type (each value rounded once from double).
template <class S, class From>
[[nodiscard]] KAIZEN_HOST_DEVICE constexpr TokenObjectiveParams<S> params_as(const TokenObjectiveParams<From>& p) {
  return {S(p.ratio_low),      S(p.ratio_high),     S(p.log_low),        S(p.log_high),
          S(p.dual_c),         S(p.tau_positive),   S(p.tau_negative),   S(p.kl_coefficient),
          S(p.kl_clamp),       S(p.entropy_coefficient), S(p.log_cap),   p.importance_action,
          p.importance_level,  p.per_row_mean};
}

/// Host: the parameters of `objective` in double (log C via ::log; the caller validated the options).
template <class Ratio, class Clip, class Kl, class Aggregate>
[[nodiscard]] TokenObjectiveParams<double> token_objective_params(const Objective<Ratio, Clip, Kl, Aggregate>& objective) {
  TokenObjectiveParams<double> p;
  if constexpr (Clip::mode == ClipMode::symmetric) {
    p.ratio_low = 1 - objective.clip.epsilon, p.ratio_high = 1 + objective.clip.epsilon;
    p.log_low = -objective.clip.epsilon, p.log_high = objective.clip.epsilon;
  } else if constexpr (Clip::mode == ClipMode::asymmetric || Clip::mode == ClipMode::dual ||
                       Clip::mode == ClipMode::cispo) {
    p.ratio_low = 1 - objective.clip.epsilon_low, p.ratio_high = 1 + objective.clip.epsilon_high;
    p.log_low = -objective.clip.epsilon_low, p.log_high = objective.clip.epsilon_high;
  }
  if constexpr (Clip::mode == ClipMode::dual) p.dual_c = objective.clip.c;
  if constexpr (Clip::mode == ClipMode::sapo) {
    p.tau_positive = objective.clip.tau_positive, p.tau_negative = objective.clip.tau_negative;
  }
  p.kl_coefficient = objective.kl.coefficient;
  p.kl_clamp = objective.kl.clamp;
  p.entropy_coefficient = objective.entropy_coefficient;
  p.importance_action = objective.importance.action;
  p.importance_level = objective.importance.level;
  p.log_cap = objective.importance.action == ImportanceAction::none ? 0.0 : ::log(objective.importance.cap);
  p.per_row_mean = Aggregate::mode == AggregationMode::seq_mean_token_mean;
  return p;
}

/// Clip modes of the kernels: SymmetricClip is AsymmetricClip with ε_low = ε_high (same formula and
/// events), so it shares its instantiation.
[[nodiscard]] KAIZEN_HOST_DEVICE constexpr ClipMode kernel_clip_mode(ClipMode mode) {
  return mode == ClipMode::symmetric ? ClipMode::asymmetric : mode;
}

/// Whether an Objective<Ratio, Clip, ...> with these modes compiles (the static_asserts of options.hpp).
[[nodiscard]] KAIZEN_HOST_DEVICE constexpr bool supported_combination(RatioLevel ratio, ClipMode clip) {
  if (ratio == RatioLevel::geometric)
    return clip == ClipMode::none || clip == ClipMode::symmetric || clip == ClipMode::asymmetric;
  if (ratio == RatioLevel::sequence) return clip != ClipMode::cispo && clip != ClipMode::sapo;
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Row level: the sums a row needs before its tokens (one reduction per row).
// ---------------------------------------------------------------------------------------------------

/// Token t's term of the row's log-ratio sum (multiply by m): Δ (sequence) or the pessimistically
/// clipped Δ̃ (geometric: min(Δ, clamp(Δ, −ε_l, ε_h)) for A ≥ 0, max(...) for A < 0).
template <RatioLevel R, ClipMode C, class S>
[[nodiscard]] KAIZEN_HOST_DEVICE S row_log_ratio_term(S logp, S old, S adv, const TokenObjectiveParams<S>& p) {
  const S delta = clamp_of(logp - old, S(-kLogRatioBound), S(kLogRatioBound));
  if constexpr (R == RatioLevel::geometric && (C == ClipMode::symmetric || C == ClipMode::asymmetric)) {
    const S bounded = clamp_of(delta, p.log_low, p.log_high);
    if (adv >= 0) return delta < bounded ? delta : bounded;
    return delta > bounded ? delta : bounded;
  } else {
    (void)adv, (void)p;
    return delta;
  }
}

/// The row ratio ρ_i = exp(Σ m · term / n_i) from the row sums (sequence and geometric levels).
template <class S>
[[nodiscard]] KAIZEN_HOST_DEVICE S row_ratio(double log_ratio_sum, double weight_sum) {
  return exp_of(static_cast<S>(log_ratio_sum / weight_sum));
}

/// Truncated importance weight from u = log π_old − log π_sampler (token) or its row sum (sequence).
template <class S>
[[nodiscard]] KAIZEN_HOST_DEVICE S importance_weight(S u, const TokenObjectiveParams<S>& p) {
  switch (p.importance_action) {
    case ImportanceAction::none: return S(1);
    case ImportanceAction::truncate: return exp_of(u < p.log_cap ? u : p.log_cap);
    case ImportanceAction::mask: return u <= p.log_cap ? exp_of(u) : S(0);
  }
  return S(1);
}

// ---------------------------------------------------------------------------------------------------
// Token level.
// ---------------------------------------------------------------------------------------------------

/// One token's loss, its derivative and what the metrics need.
template <class S>
struct TokenTerms {
  S loss = 0;       ///< ℓ_t = −w · obj + β · KL − c_H · H
  S grad = 0;       ///< dℓ_t / dlp_t
  S policy = 0;     ///< −w · obj
  S kl = 0;         ///< KL_t (0 without a KL term)
  S ratio = 0;      ///< r_t
  bool clipped_low = false;   ///< the lower bound caught the token (clip.hpp)
  bool clipped_high = false;  ///< the upper bound did
  bool clipped_dual = false;  ///< the dual-clip bound did
};

/// ℓ_t and dℓ_t/dlp_t for one valid token. `row_ratio_value` is ρ_i for the sequence and geometric
/// levels (ignored at token level); `weight` the importance weight; `entropy` H_t (0 without one).
template <RatioLevel R, ClipMode C, KlEstimator K, class S>
[[nodiscard]] KAIZEN_HOST_DEVICE TokenTerms<S> token_terms(S logp, S old, S ref, S adv, S entropy, S weight,
                                                           S row_ratio_value, const TokenObjectiveParams<S>& p) {
  TokenTerms<S> out;
  const S raw = logp - old;
  const S bound = S(kLogRatioBound);
  const S delta = clamp_of(raw, -bound, bound);
  const S passes = (raw >= -bound && raw <= bound) ? S(1) : S(0);  // clamp's gradient mask
  S ratio = 0, d_ratio = 0;                                         // r_t and dr_t / dlp_t
  if constexpr (R == RatioLevel::token) {
    ratio = exp_of(delta);
    d_ratio = ratio * passes;
  } else if constexpr (R == RatioLevel::sequence) {
    ratio = row_ratio_value;
    d_ratio = row_ratio_value;
  } else {
    ratio = row_ratio_value;
    S d_clipped = passes;
    if constexpr (C == ClipMode::symmetric || C == ClipMode::asymmetric) {
      if (adv >= 0 ? delta > p.log_high : delta < p.log_low) d_clipped = S(0);
    }
    d_ratio = row_ratio_value * d_clipped;
  }
  out.ratio = ratio;

  S obj = 0, d_obj = 0;  // the surrogate and d obj / dlp_t
  if constexpr (R == RatioLevel::geometric) {
    obj = ratio * adv;
    d_obj = adv * d_ratio;
    if constexpr (C == ClipMode::symmetric || C == ClipMode::asymmetric) {
      out.clipped_low = adv < 0 && delta < p.log_low;
      out.clipped_high = adv >= 0 && delta > p.log_high;
    }
  } else if constexpr (C == ClipMode::none) {
    obj = ratio * adv;
    d_obj = adv * d_ratio;
  } else if constexpr (C == ClipMode::symmetric || C == ClipMode::asymmetric || C == ClipMode::dual) {
    const S clipped = clamp_of(ratio, p.ratio_low, p.ratio_high);
    const S d_clipped = (ratio >= p.ratio_low && ratio <= p.ratio_high) ? S(1) : S(0);
    const S unclipped_obj = ratio * adv;
    const S clipped_obj = clipped * adv;
    S d_surrogate = 0;  // d obj / dr
    if (unclipped_obj < clipped_obj) {
      obj = unclipped_obj, d_surrogate = adv;
    } else if (unclipped_obj > clipped_obj) {
      obj = clipped_obj, d_surrogate = adv * d_clipped;
    } else {
      obj = unclipped_obj, d_surrogate = (adv + adv * d_clipped) / S(2);
    }
    out.clipped_low = adv < 0 && ratio < p.ratio_low;
    out.clipped_high = adv > 0 && ratio > p.ratio_high;
    if constexpr (C == ClipMode::dual) {
      if (adv < 0) {
        const S floor = p.dual_c * adv;
        out.clipped_dual = (ratio > p.ratio_low ? ratio : p.ratio_low) > p.dual_c;
        if (obj < floor) {
          obj = floor, d_surrogate = S(0);
        } else if (obj == floor) {
          d_surrogate = d_surrogate / S(2);
        }
      }
    }
    d_obj = d_surrogate * d_ratio;
  } else if constexpr (C == ClipMode::cispo) {
    const S w_hat = clamp_of(ratio, p.ratio_low, p.ratio_high);  // a constant: only exp(lp − sg(lp)) has a gradient
    obj = w_hat * adv;
    d_obj = w_hat * adv;
    out.clipped_low = ratio < p.ratio_low;
    out.clipped_high = ratio > p.ratio_high;
  } else {
    const S tau = adv > 0 ? p.tau_positive : p.tau_negative;
    const S sigma = S(1) / (S(1) + exp_of(-(tau * (ratio - S(1)))));
    const S gain = S(4) / tau;
    obj = gain * sigma * adv;
    d_obj = gain * adv * (sigma * (S(1) - sigma)) * tau * d_ratio;
  }
  out.policy = -(weight * obj);
  S d_loss = -(weight * d_obj);

  if constexpr (K != KlEstimator::none) {
    const S d = ref - logp;
    S kl = 0, d_kl = 0;  // KL_t and dKL_t / dlp_t
    if constexpr (K == KlEstimator::k1) {
      kl = -d, d_kl = S(1);
    } else if constexpr (K == KlEstimator::k2) {
      kl = S(0.5) * (d * d), d_kl = -d;
    } else {
      const S e = exp_of(d);
      const S k3_raw = e - d - S(1);
      const S k3 = clamp_of(k3_raw, -p.kl_clamp, p.kl_clamp);
      const S d_k3 = (k3_raw >= -p.kl_clamp && k3_raw <= p.kl_clamp) ? S(1) - e : S(0);
      if constexpr (K == KlEstimator::k3) {
        kl = k3, d_kl = d_k3;
      } else {
        const S rho = exp_of(delta);
        kl = rho * k3, d_kl = rho * passes * k3 + rho * d_k3;
      }
    }
    out.kl = kl;
    out.loss = out.policy + p.kl_coefficient * kl;
    d_loss = d_loss + p.kl_coefficient * d_kl;
  } else {
    (void)ref;
    out.loss = out.policy;
  }
  out.loss = out.loss - p.entropy_coefficient * entropy;
  out.grad = d_loss;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Statistics: per row, then summed over rows (max for kStatRatioMax), in double.
// ---------------------------------------------------------------------------------------------------

enum RowStat : int {
  kStatLoss,        ///< Σ_t m ℓ / div_i          (div_i = n_i for SeqMeanTokenMean, else 1)
  kStatPolicy,      ///< Σ_t m (−w obj) / div_i
  kStatKl,          ///< Σ_t m KL
  kStatEntropy,     ///< Σ_t m H (or Σ_t m lp without an entropy input)
  kStatClipLow,     ///< Σ_t m 1[low]
  kStatClipHigh,    ///< Σ_t m 1[high]
  kStatClipDual,    ///< Σ_t m 1[dual]
  kStatRatioSum,    ///< Σ_t m r
  kStatRatioMax,    ///< max_t r (ratios are positive, so 0 is the empty maximum)
  kStatWeightSum,   ///< Σ_t m w
  kStatTokens,      ///< n_i = Σ_t m
  kStatNonFinite,   ///< valid tokens with a non-finite input
  kStatEmptyRows,   ///< 1 for a row whose n_i ≤ 0 (an error: every row needs a valid token)
  kRowStatCount
};

/// Adds one valid token (mask weight m) to a row's statistics; `entropy_or_logp` is H_t, or lp_t
/// without an entropy input.
template <class S>
KAIZEN_HOST_DEVICE void add_token_stats(double* stats, const TokenTerms<S>& t, S m, S entropy_or_logp, S weight) {
  const double md = static_cast<double>(m);
  stats[kStatLoss] += md * static_cast<double>(t.loss);
  stats[kStatPolicy] += md * static_cast<double>(t.policy);
  stats[kStatKl] += md * static_cast<double>(t.kl);
  stats[kStatEntropy] += md * static_cast<double>(entropy_or_logp);
  if (t.clipped_low) stats[kStatClipLow] += md;
  if (t.clipped_high) stats[kStatClipHigh] += md;
  if (t.clipped_dual) stats[kStatClipDual] += md;
  stats[kStatRatioSum] += md * static_cast<double>(t.ratio);
  if (static_cast<double>(t.ratio) > stats[kStatRatioMax]) stats[kStatRatioMax] = static_cast<double>(t.ratio);
  stats[kStatWeightSum] += md * static_cast<double>(weight);
}

/// Ends a row: its loss and policy sums divided by div_i (n_i when per_row_mean, else 1), which is
/// also the divisor of its tokens' gradients. Returns div_i.
KAIZEN_HOST_DEVICE inline double finish_row_stats(double* stats, bool per_row_mean) {
  const double div = per_row_mean ? stats[kStatTokens] : 1.0;
  stats[kStatLoss] /= div;
  stats[kStatPolicy] /= div;
  return div;
}

/// Merges row statistics `from` into `into` (sums; max of the maxima).
KAIZEN_HOST_DEVICE inline void merge_stats(double* into, const double* from) {
  for (int k = 0; k < kRowStatCount; ++k) {
    if (k == kStatRatioMax) {
      if (from[k] > into[k]) into[k] = from[k];
    } else {
      into[k] += from[k];
    }
  }
}

}  // namespace kaizen::policy_gradient::detail
