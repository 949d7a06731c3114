// kaizen/objectives/config.hpp - policy-gradient and preference objectives named at run time, with TRL's names.
//
// A PolicyLossConfig or PreferenceLossConfig holds what a training script's config file or command line says
// (TRL 1.16 GRPOConfig / DPOConfig / CPOConfig / KTOConfig parameter names and values). resolve() turns a policy
// config into a PolicyObjectivePlan: the compile-time Objective<Ratio, Clip, Kl, Aggregate> it selects (options.hpp)
// and that objective's member values. The runtime entry (runtime.hpp) dispatches the plan to a precompiled
// instantiation of policy_gradient::policy_loss; the preference config selects one of the preference losses.
//
// Policy gradient, loss_type → kaizen objective (TRL's meaning of every parameter; docs/objectives.md has the
// full table):
//   grpo     Objective<ratio, Clip, Kl, SeqMeanTokenMean>                          (TRL "grpo")
//   bnpo     Objective<ratio, Clip, Kl, TokenMean>                                 (TRL "bnpo")
//   dr_grpo  Objective<ratio, Clip, Kl, SeqMeanTokenSumNorm{max_completion_length}> (TRL "dr_grpo")
//   dapo     Objective<ratio, Clip, Kl, TokenMean>, N = num_items_in_batch when given (TRL "dapo")
//   luspo    Objective<SequenceRatio, Clip, Kl, SeqMeanTokenSum>                   (TRL "luspo", sequence level)
//   cispo    Objective<TokenRatio, CispoClip = cispo_cap(epsilon_high), Kl, TokenMean> (TRL "cispo": epsilon_high is
//            the absolute cap ε_max, default 5; the loss value is the published −sg(ŵ)·A·log π_θ)
//   sapo     Objective<TokenRatio, SapoGate{sapo_temperature_pos, _neg}, Kl, SeqMeanTokenMean> (TRL "sapo")
//   vespo    vespo_loss<TokenMean>(VespoOptions{vespo_k_pos, ...})                 (TRL "vespo")
//   gmpo     Objective<GeometricRatio, Clip, Kl, SeqMeanTokenMean>                 (kaizen; no TRL loss_type)
// where ratio = TokenRatio or SequenceRatio (importance_sampling_level "token" / "sequence"; GSPO is "grpo" at the
// sequence level, as in TRL), Clip = SymmetricClip{epsilon} when epsilon_high equals epsilon (its default),
// AsymmetricClip{epsilon, epsilon_high} otherwise, DualClip{epsilon, epsilon_high, dual_clip} when dual_clip is set;
// Kl = NoKl when beta = 0, else KlLoss<k3_importance> (TRL's use_bias_correction_kl = true, its default) or the
// kl_estimator named; delta sets Objective::ratio_cap. loss_aggregation overrides the loss type's aggregation.
//
// Every check is made before any tensor is touched, and a bad value throws kaizen::Error naming the accepted
// values: an unknown loss_type / importance_sampling_level / kl_estimator / loss_aggregation / f_divergence_type,
// an unknown key, epsilon < 0, epsilon_high < epsilon, delta <= 1 + epsilon_high, the sequence level with a
// loss defined on token ratios (cispo, sapo, vespo) or the token level with luspo, options a loss type does not
// read set to non-default values (delta with cispo, label_smoothing with hinge, ...).
#pragma once

#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::objectives {

/// A policy-gradient objective by name. Defaults are TRL 1.16 GRPOConfig's unless said otherwise.
struct PolicyLossConfig {
  std::string loss_type = "dapo";        ///< grpo, bnpo, dr_grpo, dapo, luspo, cispo, sapo, vespo, gmpo
  std::string importance_sampling_level; ///< token | sequence; empty: the loss's own (sequence for luspo, else token)
  double epsilon = 0.2;                  ///< ε_low of the clip (gmpo: the log-space bound)
  std::optional<double> epsilon_high;    ///< ε_high; unset: epsilon (cispo: the absolute cap ε_max, unset: 5)
  double beta = 0.0;                     ///< KL coefficient; 0: no KL term, no reference log-probs needed
  std::optional<double> delta;           ///< two-sided clip: cap of the unclipped ratio (> 1 + ε_high); unset: off
  std::string kl_estimator;              ///< k1 | k2 | k3 | k3_importance; empty: from use_bias_correction_kl
  std::optional<bool> use_bias_correction_kl;  ///< TRL: k3 times the ratio (k3_importance); unset: true
  double kl_clamp = std::numeric_limits<double>::infinity();  ///< clamp of k3 (verl: 10); +inf: none
  std::string loss_aggregation;          ///< token_mean | seq_mean_token_mean | seq_mean_token_sum |
                                         ///< seq_mean_token_sum_norm; empty: the loss type's
  double max_completion_length = 512;    ///< L_c of seq_mean_token_sum_norm (dr_grpo); TRL's default 512
  std::optional<double> dual_clip;       ///< kaizen: dual-clip constant c > 1 (verl clip_ratio_c); unset: off
  double sapo_temperature_pos = 1.0;     ///< SAPO τ for A > 0
  double sapo_temperature_neg = 1.05;    ///< SAPO τ for A <= 0
  double vespo_k_pos = 2.0;              ///< VESPO k₊
  double vespo_lambda_pos = 3.0;         ///< VESPO λ₊
  double vespo_k_neg = 3.0;              ///< VESPO k₋
  double vespo_lambda_neg = 2.0;         ///< VESPO λ₋
  std::string cispo_loss_value = "log_prob";  ///< kaizen: log_prob (published, TRL, Liger) | weight
  double entropy_coef = 0.0;             ///< entropy bonus c_H (needs PolicyLossInputs::entropy)
  double top_entropy_quantile = 1.0;     ///< ρ ∈ (0, 1]: policy term on the top-ρ entropy tokens only (needs entropy)
  std::optional<double> off_policy_mask_threshold;  ///< δ >= 0 of the off-policy sequence mask (needs sampler log-probs)
  bool vllm_importance_sampling_correction = false;  ///< truncated IS vs the sampler (kaizen default off: needs
                                                     ///< PolicyLossInputs::sampler_logprobs)
  std::string vllm_importance_sampling_mode = "sequence_mask";  ///< {token,sequence}_{truncate,mask}
  double vllm_importance_sampling_clip_max = 3.0;  ///< the cap C > 0
};

/// What a PolicyLossConfig selects: the option types (as enums) of Objective<Ratio, Clip, Kl, Aggregate> and the
/// values of its members, or VESPO.
struct PolicyObjectivePlan {
  bool vespo = false;  ///< vespo_loss instead of an Objective (ratio/clip/kl below unused)
  policy_gradient::RatioLevel ratio = policy_gradient::RatioLevel::token;
  policy_gradient::ClipMode clip = policy_gradient::ClipMode::symmetric;
  policy_gradient::KlEstimator kl = policy_gradient::KlEstimator::none;
  policy_gradient::AggregationMode aggregation = policy_gradient::AggregationMode::token_mean;
  double epsilon_low = 0.2;    ///< SymmetricClip::epsilon, or ε_low of the asymmetric / dual / CISPO clips
  double epsilon_high = 0.2;   ///< ε_high (CISPO: cap − 1, as cispo_cap)
  double dual_clip_c = 3.0;
  policy_gradient::CispoLossValue cispo_value = policy_gradient::CispoLossValue::log_prob;
  double tau_positive = 1.0, tau_negative = 1.05;
  double vespo_k_positive = 2.0, vespo_lambda_positive = 3.0, vespo_k_negative = 3.0, vespo_lambda_negative = 2.0;
  double kl_coefficient = 0.0;
  double kl_clamp = std::numeric_limits<double>::infinity();
  double aggregation_constant = 512;  ///< SeqMeanTokenSumNorm::constant
  double entropy_coefficient = 0.0;
  double ratio_cap = std::numeric_limits<double>::infinity();
  policy_gradient::TruncatedImportanceSampling importance{};
  double top_entropy_quantile = 1.0;              ///< < 1: high_entropy_mask on the policy term
  std::optional<double> off_policy_mask_threshold;  ///< set: off_policy_sequence_mask on the policy term

  /// The selected objective as C++, e.g. "Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k3>, TokenMean>".
  [[nodiscard]] std::string describe() const;
};

/// Validates `config` and returns what it selects. Throws kaizen::Error (see the header comment).
[[nodiscard]] PolicyObjectivePlan resolve(const PolicyLossConfig& config);

/// A preference loss by name. Defaults are TRL 1.16 DPOConfig's (CPOConfig / KTOConfig for their keys).
struct PreferenceLossConfig {
  std::string loss_type = "sigmoid";  ///< paired: sigmoid, sigmoid_norm, hinge, ipo, robust, exo_pair, nca_pair,
                                      ///< bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop,
                                      ///< simpo, cpo, rpo, orpo; unpaired: kto, apo_zero_unpaired
  double beta = 0.1;                  ///< β (ipo: τ; orpo: λ)
  double label_smoothing = 0.0;       ///< sigmoid (cDPO), robust, exo_pair (ε, > 0), aot, aot_unpaired, simpo
  std::string f_divergence_type = "reverse_kl";  ///< reverse_kl | forward_kl | js_divergence | alpha_divergence
  double f_alpha_divergence_coef = 0.5;          ///< α of alpha_divergence
  double discopop_tau = 0.05;         ///< DiscoPOP τ
  double simpo_gamma = 0.5;           ///< SimPO γ (CPOConfig)
  double cpo_alpha = 1.0;             ///< CPO NLL weight (CPOConfig)
  double rpo_alpha = 1.0;             ///< RPO NLL weight (TRL: loss_type ["sigmoid", "sft"], loss_weights [1, α])
  std::string nll_normalisation = "batch_tokens";  ///< cpo / rpo / orpo NLL: batch_tokens (TRL, Liger) | per_sequence
  bool ipo_length_normalize = true;   ///< ipo on mean token log-probs (TRL); false: sums (the paper)
  double desirable_weight = 1.0;      ///< kto / apo_zero_unpaired λ_D (KTOConfig)
  double undesirable_weight = 1.0;    ///< kto / apo_zero_unpaired λ_U
};

/// Validates `config` (names, ranges, keys the loss does not read left at their defaults). Throws kaizen::Error.
void validate(const PreferenceLossConfig& config);
/// Whether `loss_type` takes unpaired examples (kto, apo_zero_unpaired). Throws for an unknown name.
[[nodiscard]] bool is_unpaired_preference_loss(std::string_view loss_type);

/// The accepted loss_type names.
[[nodiscard]] std::span<const std::string_view> policy_loss_types();
[[nodiscard]] std::span<const std::string_view> preference_loss_types();

/// Parse a JSON object ({"loss_type": "grpo", "beta": 0.04, "delta": null, ...}; null unsets an optional key) or
/// "key=value" arguments (a leading "--" is dropped; "none" unsets an optional key; booleans true/false/1/0).
/// Keys not set keep their defaults. Throws kaizen::Error on malformed text, an unknown key (listing the accepted
/// keys) or a value of the wrong type; the values themselves are checked by resolve() / validate().
[[nodiscard]] PolicyLossConfig policy_loss_config_from_json(std::string_view json);
[[nodiscard]] PolicyLossConfig policy_loss_config_from_args(std::span<const std::string> args);
[[nodiscard]] PreferenceLossConfig preference_loss_config_from_json(std::string_view json);
[[nodiscard]] PreferenceLossConfig preference_loss_config_from_args(std::span<const std::string> args);

}  // namespace kaizen::objectives
