// python/csrc/bindings.cpp - the pybind11 module kaizen._C: thin wrappers over kaizen's C++ functions that
// are not custom operators (advantages, preference losses, the reference policy_loss, answer extraction,
// votes, pass@k). The tensor functions keep LibTorch's autograd (the C++ code runs under it); kaizen::Error
// derives from std::invalid_argument, which pybind11 raises as ValueError with kaizen's message.
// pybind11 is the copy PyTorch ships (torch/include/pybind11), so its torch.Tensor casters are the ones the
// installed torch was built with.
#include <optional>
#include <string>
#include <vector>

#include <torch/extension.h>

#include <kaizen/consistency/extract.hpp>
#include <kaizen/consistency/pass_at_k.hpp>
#include <kaizen/consistency/vote.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/hinge.hpp>
#include <kaizen/preference/ipo.hpp>
#include <kaizen/preference/simpo.hpp>
#include <kaizen/torch/ops.hpp>

#include "bindings.hpp"

namespace py = pybind11;

namespace kaizen::python {
namespace {

namespace pg = kaizen::policy_gradient;
namespace pref = kaizen::preference;
namespace cons = kaizen::consistency;

py::dict metrics_dict(const pref::PreferenceMetrics& m) {
  py::dict d;
  const auto put = [&](const char* name, const at::Tensor& t) {
    if (t.defined()) d[name] = t;
  };
  put("chosen_reward", m.chosen_reward);
  put("rejected_reward", m.rejected_reward);
  put("margin", m.margin);
  put("accuracy", m.accuracy);
  put("nll", m.nll);
  put("log_odds_ratio", m.log_odds_ratio);
  put("baseline", m.baseline);
  return d;
}

py::tuple preference_result(const pref::PreferenceLoss& r) {
  return py::make_tuple(r.loss, r.per_example, r.chosen_rewards, r.rejected_rewards, metrics_dict(r.metrics));
}

pref::PairLogProbs pairs_of(const at::Tensor& chosen, const at::Tensor& rejected,
                            const std::optional<at::Tensor>& reference_chosen,
                            const std::optional<at::Tensor>& reference_rejected,
                            const std::optional<at::Tensor>& chosen_lengths,
                            const std::optional<at::Tensor>& rejected_lengths) {
  return {chosen,
          rejected,
          reference_chosen.value_or(at::Tensor()),
          reference_rejected.value_or(at::Tensor()),
          chosen_lengths.value_or(at::Tensor()),
          rejected_lengths.value_or(at::Tensor())};
}

py::object vote_dict(const std::optional<cons::VoteResult<std::string>>& v) {
  if (!v.has_value()) return py::none();
  py::dict d;
  d["answer"] = v->answer;
  d["support"] = v->support;
  d["runner_up"] = v->runner_up;
  d["total"] = v->total;
  d["confidence"] = v->confidence;
  d["margin"] = v->margin;
  d["first_index"] = v->first_index;
  d["answered"] = v->answered;
  d["abstained"] = v->abstained;
  d["distinct"] = v->distinct;
  return d;
}

cons::AnswerFormat answer_format(const std::string& name) {
  if (name == "boxed_then_number") return cons::AnswerFormat::boxed_then_number;
  if (name == "boxed") return cons::AnswerFormat::boxed;
  if (name == "last_number") return cons::AnswerFormat::last_number;
  if (name == "choice") return cons::AnswerFormat::choice;
  fail("extract_answer: expected format 'boxed_then_number', 'boxed', 'last_number' or 'choice', got '", name, "'");
}

}  // namespace
}  // namespace kaizen::python

PYBIND11_MODULE(_C, m) {
  using namespace kaizen::python;
  using at::Tensor;
  using std::optional;
  m.doc() = "kaizen's C++ library, bound for Python (see the kaizen package for the documented API)";

  // --- policy gradient ---------------------------------------------------------------------------------
  m.def("policy_loss_reference",
        [](const Tensor& lp, const Tensor& old, const optional<Tensor>& ref, const Tensor& adv, const Tensor& mask,
           const optional<Tensor>& entropy, const optional<Tensor>& sampler, const optional<Tensor>& policy_mask,
           const std::vector<std::int64_t>& modes, const std::vector<double>& params, optional<double> normaliser) {
          auto r = policy_loss_reference(lp, old, ref, adv, mask, entropy, sampler, policy_mask, modes, params,
                                         normaliser);
          return py::make_tuple(r.loss, r.metrics);
        });
  m.def("group_advantages", [](const Tensor& rewards, const Tensor& group_ids, int scale, int std, double eps) {
    return pg::group_advantages(rewards, group_ids,
                                {.scale = static_cast<pg::AdvantageScale>(scale),
                                 .std = static_cast<pg::StdEstimator>(std), .epsilon = eps});
  });
  m.def("rloo_advantages", &pg::rloo_advantages);
  m.def("pass_at_k_advantages", &pg::pass_at_k_advantages);
  m.def("broadcast_to_tokens", &pg::broadcast_to_tokens);
  m.def("masked_whiten", [](const Tensor& values, const Tensor& mask) { return pg::masked_whiten(values, mask); });
  m.def("reinforce_pp_advantages", &pg::reinforce_pp_advantages);
  m.def("reinforce_pp_baseline_advantages", &pg::reinforce_pp_baseline_advantages);

  // --- the C++ ops called directly (the oracles of the custom operators' tests) ---------------------------
  m.def("fused_linear_logprobs_reference", [](const Tensor& hidden, const Tensor& weight, const Tensor& targets,
                                              double temperature, bool with_entropy, std::int64_t chunk_size) {
    auto r = kaizen::ops::fused_linear_logprobs(
        hidden, weight, targets, {.temperature = temperature, .with_entropy = with_entropy, .chunk_size = chunk_size});
    return py::make_tuple(r.logprobs, r.entropy.defined() ? py::cast(r.entropy) : py::none());
  });
  m.def("sample_tokens_reference", [](const Tensor& logits, double temperature, std::int64_t top_k, double top_p,
                                      double min_p, std::uint64_t seed) {
    kaizen::SamplingParams params;
    params.temperature = temperature;
    params.top_k = top_k;
    params.top_p = top_p;
    params.min_p = min_p;
    kaizen::Rng rng(seed);
    auto r = kaizen::ops::sample_tokens(logits, params, rng);
    return py::make_tuple(r.ids, r.sampling_logprobs, r.tempered_logprobs);
  });

  // --- preference losses -------------------------------------------------------------------------------
  m.def("dpo_loss", [](const Tensor& c, const Tensor& r, const Tensor& rc, const Tensor& rr, double beta,
                       double label_smoothing) {
    return preference_result(pref::dpo_loss(pairs_of(c, r, rc, rr, {}, {}),
                                            {.beta = beta, .label_smoothing = label_smoothing}));
  });
  m.def("robust_dpo_loss", [](const Tensor& c, const Tensor& r, const Tensor& rc, const Tensor& rr, double beta,
                              double label_smoothing) {
    return preference_result(pref::robust_dpo_loss(pairs_of(c, r, rc, rr, {}, {}),
                                                   {.beta = beta, .label_smoothing = label_smoothing}));
  });
  m.def("ipo_loss", [](const Tensor& c, const Tensor& r, const Tensor& rc, const Tensor& rr, double tau,
                       bool length_normalize, const optional<Tensor>& cl, const optional<Tensor>& rl) {
    return preference_result(
        pref::ipo_loss(pairs_of(c, r, rc, rr, cl, rl), {.tau = tau, .length_normalize = length_normalize}));
  });
  m.def("hinge_loss", [](const Tensor& c, const Tensor& r, const Tensor& rc, const Tensor& rr, double beta) {
    return preference_result(pref::hinge_loss(pairs_of(c, r, rc, rr, {}, {}), {.beta = beta}));
  });
  m.def("simpo_loss", [](const Tensor& c, const Tensor& r, const Tensor& cl, const Tensor& rl, double beta,
                         double gamma, double label_smoothing) {
    return preference_result(pref::simpo_loss(
        pairs_of(c, r, {}, {}, cl, rl), {.beta = beta, .gamma = gamma, .label_smoothing = label_smoothing}));
  });

  // --- consistency ---------------------------------------------------------------------------------------
  m.def("extract_answer", [](const std::string& text, const std::string& format, const std::string& letters) {
    return kaizen::consistency::extract_answer(text, {.format = answer_format(format), .choice_letters = letters});
  });
  m.def("extract_boxed", [](const std::string& text) { return kaizen::consistency::extract_boxed(text); });
  m.def("extract_last_number",
        [](const std::string& text) { return kaizen::consistency::extract_last_number(text); });
  m.def("extract_choice", [](const std::string& text, const std::string& letters) -> optional<std::string> {
    const auto c = kaizen::consistency::extract_choice(text, letters);
    if (!c) return std::nullopt;
    return std::string(1, *c);
  });
  m.def("normalize_answer", [](const std::string& a) { return kaizen::consistency::normalize_answer(a); });
  m.def("majority_vote", [](const std::vector<optional<std::string>>& answers) {
    return vote_dict(kaizen::consistency::majority_vote(answers));
  });
  m.def("weighted_vote", [](const std::vector<optional<std::string>>& answers, const std::vector<double>& weights) {
    return vote_dict(kaizen::consistency::weighted_vote(answers, weights));
  });
  m.def("weights_from_logprobs", [](const std::vector<double>& lp, double temperature) {
    return kaizen::consistency::weights_from_logprobs(lp, temperature);
  });
  m.def("pass_at_k", [](std::int64_t n, std::int64_t c, std::int64_t k) {
    KAIZEN_CHECK(n >= 0 && c >= 0 && k >= 0, "pass_at_k: expected non-negative n, c and k, got n = ", n,
                 ", c = ", c, ", k = ", k);
    return kaizen::consistency::pass_at_k(static_cast<std::size_t>(n), static_cast<std::size_t>(c),
                                          static_cast<std::size_t>(k));
  });
}
