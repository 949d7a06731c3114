// objectives::preference_loss: a PreferenceLossConfig → the preference loss function it names, with its options.
#include <kaizen/objectives/runtime.hpp>

#include <torch/types.h>

#include <kaizen/preference/aot.hpp>
#include <kaizen/preference/apo.hpp>
#include <kaizen/preference/bco.hpp>
#include <kaizen/preference/cpo.hpp>
#include <kaizen/preference/discopop.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/exo.hpp>
#include <kaizen/preference/f_divergence.hpp>
#include <kaizen/preference/hinge.hpp>
#include <kaizen/preference/ipo.hpp>
#include <kaizen/preference/kto.hpp>
#include <kaizen/preference/nca.hpp>
#include <kaizen/preference/orpo.hpp>
#include <kaizen/preference/rpo.hpp>
#include <kaizen/preference/simpo.hpp>
#include <kaizen/preference/sppo.hpp>

namespace kaizen::objectives {

namespace pref = kaizen::preference;

namespace {

pref::FDivergenceOptions divergence(const PreferenceLossConfig& c) {
  const std::string& f = c.f_divergence_type;
  return {.kind = f == "forward_kl"       ? pref::FDivergence::forward_kl
                  : f == "js_divergence"  ? pref::FDivergence::js
                  : f == "alpha_divergence" ? pref::FDivergence::alpha
                                            : pref::FDivergence::reverse_kl,
          .alpha = c.f_alpha_divergence_coef};
}

pref::NllOptions nll(const PreferenceLossConfig& c) {
  return {.normalisation = c.nll_normalisation == "per_sequence" ? pref::NllNormalisation::per_sequence
                                                                 : pref::NllNormalisation::batch_tokens};
}

}  // namespace

pref::PreferenceLoss preference_loss(const PreferenceLossConfig& c, const pref::PairLogProbs& pairs) {
  validate(c);
  const std::string& t = c.loss_type;
  KAIZEN_CHECK(!is_unpaired_preference_loss(t), "objectives::preference_loss: ", t,
               " takes unpaired examples (UnpairedLogProbs), got pairs");
  const double beta = c.beta;
  const double ls = c.label_smoothing;
  if (t == "sigmoid") return pref::dpo_loss(pairs, {.beta = beta, .label_smoothing = ls, .divergence = divergence(c)});
  if (t == "sigmoid_norm") return pref::dpo_norm_loss(pairs, {.beta = beta, .divergence = divergence(c)});
  if (t == "hinge") return pref::hinge_loss(pairs, {.beta = beta});
  if (t == "ipo") return pref::ipo_loss(pairs, {.tau = beta, .length_normalize = c.ipo_length_normalize});
  if (t == "robust") return pref::robust_dpo_loss(pairs, {.beta = beta, .label_smoothing = ls});
  if (t == "exo_pair") return pref::exo_loss(pairs, {.beta = beta, .epsilon = ls});
  if (t == "nca_pair") return pref::nca_loss(pairs, {.beta = beta});
  if (t == "bco_pair") return pref::bco_pair_loss(pairs, {.beta = beta});
  if (t == "sppo_hard") return pref::sppo_hard_loss(pairs, {.beta = beta});
  if (t == "aot" || t == "aot_unpaired") {
    return pref::aot_loss(pairs, {.beta = beta, .label_smoothing = ls,
                                  .variant = t == "aot" ? pref::AotVariant::paired : pref::AotVariant::unpaired});
  }
  if (t == "apo_zero" || t == "apo_down") {
    return pref::apo_loss(pairs, {.beta = beta, .anchor = t == "apo_zero" ? pref::ApoAnchor::zero : pref::ApoAnchor::down});
  }
  if (t == "discopop") return pref::discopop_loss(pairs, {.beta = beta, .tau = c.discopop_tau});
  if (t == "simpo") return pref::simpo_loss(pairs, {.beta = beta, .gamma = c.simpo_gamma, .label_smoothing = ls});
  if (t == "cpo") return pref::cpo_loss(pairs, {.beta = beta, .alpha = c.cpo_alpha, .nll = nll(c)});
  if (t == "rpo") return pref::rpo_loss(pairs, {.beta = beta, .alpha = c.rpo_alpha, .nll = nll(c)});
  if (t == "orpo") return pref::orpo_loss(pairs, {.lambda = beta, .nll = nll(c)});
  fail("objectives::preference_loss: loss_type ", t, " has no paired form");  // unreachable: validate() knows them all
}

pref::PreferenceLoss preference_loss(const PreferenceLossConfig& c, const pref::UnpairedLogProbs& batch,
                                     const at::Tensor& kl_baseline) {
  validate(c);
  const std::string& t = c.loss_type;
  KAIZEN_CHECK(is_unpaired_preference_loss(t), "objectives::preference_loss: ", t,
               " takes pairs (PairLogProbs), got unpaired examples; the unpaired losses are kto, apo_zero_unpaired");
  const pref::KtoOptions options{.beta = c.beta, .desirable_weight = c.desirable_weight,
                                 .undesirable_weight = c.undesirable_weight,
                                 .loss = t == "kto" ? pref::KtoVariant::kto : pref::KtoVariant::apo_zero_unpaired};
  if (t == "kto") {
    KAIZEN_CHECK(kl_baseline.defined(), "objectives::preference_loss: kto needs the KL baseline z0 (kto_kl_baseline), "
                 "got none");
    return pref::kto_loss(batch, kl_baseline, options);
  }
  KAIZEN_CHECK(!kl_baseline.defined(), "objectives::preference_loss: apo_zero_unpaired has no KL baseline; leave it "
               "undefined");
  return pref::kto_loss(batch, options);
}

}  // namespace kaizen::objectives
