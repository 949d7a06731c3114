// kaizen/policy_gradient.hpp - umbrella header for the policy-gradient objectives (kaizen::policy_gradient).
//   options.hpp      Objective<Ratio, Clip, Kl, Aggregate> and the option types (shared with CUDA)
//   advantages.hpp   GRPO / Dr. GRPO / RLOO / REINFORCE++ / ReMax / GAE / OPO / pass@k advantages
//   ratio.hpp clip.hpp kl.hpp importance.hpp aggregation.hpp   the pieces of the loss
//   policy_loss.hpp  the entry point: policy_loss(...) -> {loss, metrics}
//   dapo.hpp         dynamic-sampling filter, soft overlong punishment, truncated-completion rows
//   nft.hpp          negative-aware fine-tuning loss
//   drift.hpp        LPO / TA-LPO drift objectives
#pragma once

#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/aggregation.hpp>
#include <kaizen/policy_gradient/clip.hpp>
#include <kaizen/policy_gradient/dapo.hpp>
#include <kaizen/policy_gradient/drift.hpp>
#include <kaizen/policy_gradient/estimators.hpp>
#include <kaizen/policy_gradient/importance.hpp>
#include <kaizen/policy_gradient/kl.hpp>
#include <kaizen/policy_gradient/nft.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/policy_gradient/ratio.hpp>
#include <kaizen/policy_gradient/token_masks.hpp>
#include <kaizen/policy_gradient/vespo.hpp>
