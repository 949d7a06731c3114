// python/csrc/ops.cpp - kaizen's hot-path ops registered as PyTorch custom operators (namespace `kaizen`).
//
//   kaizen::token_logprobs(Tensor logits, Tensor targets, float temperature, bool with_entropy)
//       -> (Tensor logprobs, Tensor lse, Tensor entropy)
//       logits [N, V] / [B, T, V]; outputs shaped like targets (float32, float64 for float64 logits); `lse` is
//       log Σ exp(x / T) per row, kept for the backward; `entropy` is empty ([0]) unless with_entropy.
//   kaizen::token_logprobs_backward(Tensor logits, Tensor targets, float temperature, Tensor lse, Tensor entropy,
//       Tensor? grad_logprobs, Tensor? grad_entropy) -> Tensor grad_logits (logits' shape and dtype)
//   kaizen::policy_objective(Tensor logprobs, Tensor old_logprobs, Tensor? ref_logprobs, Tensor advantages,
//       Tensor mask, Tensor? entropy, Tensor? sampler_logprobs, int[] modes, float[] params, float? normaliser)
//       -> (Tensor loss, Tensor grad_logprobs, Tensor grad_entropy, Tensor metrics)
//       the fused objective of kaizen/torch/ops/policy_objective.hpp for the Objective `modes` / `params`
//       describe (objective_spec.hpp); grad_* = ∂loss/∂input computed in the same pass (grad_entropy is
//       empty without an entropy input); metrics float64 [12] in PolicyLossMetrics' member order.
//
// The kernels are the C++ library's own functions (one source of truth): token_logprobs_forward / _backward
// and ops::policy_objective. Autograd and the fake (meta) implementations are registered from Python
// (src/kaizen/_registry.py: torch.library.register_autograd / register_fake), so the ops trace under
// torch.compile(fullgraph=True). kaizen::Error (bad input) becomes c10::ValueError: Python ValueError with
// kaizen's message.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/library.h>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/torch/ops.hpp>

#include "objective_spec.hpp"

namespace kaizen::python {
namespace {

/// Runs f, turning kaizen::Error into c10::ValueError (Python ValueError) with the same message.
template <class F>
auto translated(const char* where, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const kaizen::Error& e) {
    throw c10::ValueError({where, __FILE__, static_cast<std::uint32_t>(__LINE__)}, e.what());
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> token_logprobs_cpu(const at::Tensor& logits, const at::Tensor& targets,
                                                                  double temperature, bool with_entropy) {
  return translated("kaizen::token_logprobs", [&] {
    const std::int64_t v = ops::detail::check_logits_targets("ops::token_logprobs", logits, targets, temperature);
    const at::Tensor flat = logits.reshape({-1, v}).contiguous();
    const at::Tensor ids = targets.reshape({-1}).contiguous();
    auto outs = ops::detail::token_logprobs_forward(flat, ids, temperature, with_entropy);
    const at::Tensor entropy = with_entropy ? outs[2].view(targets.sizes()) : at::empty({0}, outs[0].options());
    return std::make_tuple(outs[0].view(targets.sizes()), outs[1].view(targets.sizes()), entropy);
  });
}

at::Tensor token_logprobs_backward_cpu(const at::Tensor& logits, const at::Tensor& targets, double temperature,
                                       const at::Tensor& lse, const at::Tensor& entropy,
                                       const std::optional<at::Tensor>& grad_logprobs,
                                       const std::optional<at::Tensor>& grad_entropy) {
  return translated("kaizen::token_logprobs_backward", [&] {
    const std::int64_t v = logits.size(-1);
    const std::int64_t n = targets.numel();
    const at::Tensor flat = logits.reshape({-1, v}).contiguous();
    const at::Tensor ids = targets.reshape({-1}).contiguous();
    const auto sd = ops::detail::stats_dtype(logits.scalar_type());
    const at::Tensor g_lp = grad_logprobs.has_value() ? ops::detail::flat_grad(*grad_logprobs, n, sd) : at::Tensor();
    const bool use_h = grad_entropy.has_value() && entropy.numel() == n && n > 0;
    const at::Tensor g_h = use_h ? ops::detail::flat_grad(*grad_entropy, n, sd) : at::Tensor();
    const at::Tensor h = use_h ? entropy.reshape({n}).contiguous() : at::Tensor();
    at::Tensor out = at::empty(flat.sizes(), flat.options());
    ops::detail::token_logprobs_backward(flat, ids, temperature, lse.reshape({n}).contiguous(), h, g_lp, g_h, out);
    return out.view(logits.sizes());
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> policy_objective_cpu(
    const at::Tensor& logprobs, const at::Tensor& old_logprobs, const std::optional<at::Tensor>& ref_logprobs,
    const at::Tensor& advantages, const at::Tensor& mask, const std::optional<at::Tensor>& entropy,
    const std::optional<at::Tensor>& sampler_logprobs, c10::IntArrayRef modes, c10::ArrayRef<double> params,
    std::optional<double> normaliser) {
  return translated("kaizen::policy_objective", [&] {
    // The C++ op returns the loss under autograd with its gradient saved on the node; it is read back by one
    // backward of that node (a multiply: the gradient was computed in the forward pass).
    c10::InferenceMode no_inference(false);
    at::AutoGradMode grad_mode(true);
    const at::Tensor lp = logprobs.detach().requires_grad_(true);
    const bool with_entropy = entropy.has_value() && entropy->defined();
    const at::Tensor ent = with_entropy ? entropy->detach().requires_grad_(true) : at::Tensor();
    policy_gradient::PolicyLossInputs in{
        .logprobs = lp, .old_logprobs = old_logprobs, .ref_logprobs = ref_logprobs.value_or(at::Tensor()),
        .advantages = advantages, .mask = mask, .entropy = ent,
        .sampler_logprobs = sampler_logprobs.value_or(at::Tensor())};
    const std::vector<std::int64_t> m(modes.begin(), modes.end());
    const std::vector<double> p(params.begin(), params.end());
    ops::PolicyObjectiveResult r = with_objective("ops::policy_objective", m, p, [&](const auto& objective) {
      return ops::policy_objective(in, objective, normaliser);
    });
    std::vector<at::Tensor> wrt{lp};
    if (with_entropy) wrt.push_back(ent);
    const auto grads = torch::autograd::grad({r.loss}, wrt, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                             /*allow_unused=*/true);
    const auto or_zeros = [](const at::Tensor& g, const at::Tensor& like) {
      return g.defined() ? g : at::zeros_like(like);
    };
    const at::Tensor grad_lp = or_zeros(grads[0], lp).detach();
    const at::Tensor grad_h = with_entropy ? or_zeros(grads[1], ent).detach() : at::empty({0}, lp.options());
    const auto& s = r.metrics;
    const at::Tensor metrics = at::tensor(std::vector<double>{s.loss, s.policy_loss, s.kl, s.entropy,
                                                              s.clip_fraction_low, s.clip_fraction_high,
                                                              s.clip_fraction_dual, s.ratio_mean, s.ratio_max,
                                                              s.importance_weight_mean, s.tokens, s.sequences},
                                          at::TensorOptions().dtype(at::kDouble));
    return std::make_tuple(r.loss.detach().clone(), grad_lp, grad_h, metrics.to(lp.device()));
  });
}

}  // namespace
}  // namespace kaizen::python

TORCH_LIBRARY(kaizen, m) {
  m.def("token_logprobs(Tensor logits, Tensor targets, float temperature, bool with_entropy) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("token_logprobs_backward(Tensor logits, Tensor targets, float temperature, Tensor lse, Tensor entropy, "
        "Tensor? grad_logprobs, Tensor? grad_entropy) -> Tensor");
  m.def("policy_objective(Tensor logprobs, Tensor old_logprobs, Tensor? ref_logprobs, Tensor advantages, "
        "Tensor mask, Tensor? entropy, Tensor? sampler_logprobs, int[] modes, float[] params, float? normaliser) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(kaizen, CPU, m) {
  m.impl("token_logprobs", &kaizen::python::token_logprobs_cpu);
  m.impl("token_logprobs_backward", &kaizen::python::token_logprobs_backward_cpu);
  m.impl("policy_objective", &kaizen::python::policy_objective_cpu);
}
