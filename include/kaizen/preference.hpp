// kaizen/preference.hpp - preference optimisation: sequence log-probs, the DPO family of losses,
// reference-model strategies, pair builders and chunked evaluation.
#pragma once

#include <kaizen/preference/aot.hpp>
#include <kaizen/preference/apo.hpp>
#include <kaizen/preference/bco.hpp>
#include <kaizen/preference/chunked.hpp>
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
#include <kaizen/preference/pair_builder.hpp>
#include <kaizen/preference/preference_loss.hpp>
#include <kaizen/preference/reference_strategy.hpp>
#include <kaizen/preference/rpo.hpp>
#include <kaizen/preference/sequence_logprobs.hpp>
#include <kaizen/preference/simpo.hpp>
#include <kaizen/preference/sppo.hpp>
