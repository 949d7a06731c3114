// kaizen/objectives/runtime.hpp - policy-gradient and preference losses chosen at run time, precompiled.
//
//   policy_loss(PolicyLossConfig, PolicyLossInputs[, N])          → PolicyLossResult {loss, metrics}
//   preference_loss(PreferenceLossConfig, PairLogProbs)           → PreferenceLoss
//   preference_loss(PreferenceLossConfig, UnpairedLogProbs[, z0]) → PreferenceLoss   (kto, apo_zero_unpaired)
//
// The config (config.hpp: TRL's parameter names, from a struct, JSON or key=value arguments) is resolved and
// dispatched to the compile-time objectives: each call runs exactly the code of policy_gradient::policy_loss /
// vespo_loss or the preference loss function it names, instantiated once in the kaizen::objectives library
// (src/objectives/), so this header includes only the tensor type and the consumer's translation unit
// instantiates nothing. Link kaizen::objectives.
//
// policy_loss: the inputs and `normaliser` N are those of policy_gradient::policy_loss (pass num_items_in_batch as
// N for dapo / cispo / vespo, as TRL does). top_entropy_quantile < 1 and off_policy_mask_threshold compute
// high_entropy_mask(entropy, mask, ρ) and off_policy_sequence_mask(advantages, logprobs, sampler_logprobs, mask, δ)
// (token_masks.hpp) and multiply them into PolicyLossInputs::policy_token_mask. vespo returns metrics.loss,
// policy_loss, tokens and sequences only (the others stay 0; importance_weight_mean 1).
// Errors: everything resolve() / validate() reject, then whatever the selected loss rejects in its inputs.
#pragma once

#include <optional>

#include <ATen/core/Tensor.h>

#include <kaizen/objectives/config.hpp>
#include <kaizen/policy_gradient/policy_loss_types.hpp>
#include <kaizen/preference/preference_loss_types.hpp>

namespace kaizen::objectives {

/// The policy-gradient loss `config` names on `inputs` (see the header comment).
[[nodiscard]] policy_gradient::PolicyLossResult policy_loss(const PolicyLossConfig& config,
                                                            const policy_gradient::PolicyLossInputs& inputs,
                                                            std::optional<double> normaliser = std::nullopt);

/// A paired preference loss (every loss_type except kto and apo_zero_unpaired).
[[nodiscard]] preference::PreferenceLoss preference_loss(const PreferenceLossConfig& config,
                                                         const preference::PairLogProbs& pairs);

/// An unpaired preference loss: kto with the KL baseline z0 (kto_kl_baseline; a 0-dim tensor), or
/// apo_zero_unpaired (no baseline: leave `kl_baseline` undefined).
[[nodiscard]] preference::PreferenceLoss preference_loss(const PreferenceLossConfig& config,
                                                         const preference::UnpairedLogProbs& batch,
                                                         const at::Tensor& kl_baseline = {});

}  // namespace kaizen::objectives
