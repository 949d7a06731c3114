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
//   kaizen::fused_linear_logprobs(Tensor hidden, Tensor weight, Tensor targets, float temperature,
//       bool with_entropy, int chunk_size) -> (Tensor logprobs, Tensor lse, Tensor entropy)
//       token_logprobs(hidden · weightᵀ) chunked over tokens (ops::fused_linear_logprobs); chunk_size 0 =
//       ops::detail::auto_chunk's choice.
//   kaizen::fused_linear_logprobs_backward(Tensor hidden, Tensor weight, Tensor targets, float temperature,
//       int chunk_size, Tensor lse, Tensor entropy, Tensor? grad_logprobs, Tensor? grad_entropy,
//       bool need_hidden, bool need_weight) -> (Tensor grad_hidden, Tensor grad_weight)
//       the vocabulary-sliced backward of FusedLinearFunction::backward; an input not needed gets [0].
//   kaizen::sample_tokens(Tensor logits, float temperature, int top_k, float top_p, float min_p, int seed)
//       -> (Tensor ids, Tensor sampling_logprobs, Tensor tempered_logprobs)      ops::sample_tokens with a
//       kaizen::Rng (mt19937_64) seeded by `seed`: the same seed gives the C++ call's draws.
//   kaizen::group_stats(Tensor values, Tensor offsets, bool unbiased, float epsilon, bool scale)
//       -> (Tensor mean, Tensor std, Tensor advantages)                          ops::group_stats (no autograd)
//
// The kernels are the C++ library's own functions (one source of truth): token_logprobs_forward / _backward
// and ops::policy_objective. Autograd and the fake (meta) implementations are registered from Python
// (src/kaizen/_registry.py: torch.library.register_autograd / register_fake), so the ops trace under
// torch.compile(fullgraph=True). kaizen::Error (bad input) becomes c10::ValueError: Python ValueError with
// kaizen's message.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <torch/library.h>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
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

// fused_linear_logprobs: ops::fused_linear_logprobs's checks (same messages), then FusedLinearFunction's forward
// and backward loops over the library's row kernels (token_logprobs_forward / _backward): the C++ autograd
// Function keeps lse in its context, which a custom operator must return instead.
void check_fused_linear(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                        double temperature, std::int64_t chunk_size) {
  constexpr std::string_view fn = "ops::fused_linear_logprobs";
  KAIZEN_CHECK(hidden.defined() && weight.defined() && targets.defined(), fn,
               ": expected defined hidden, weight and targets");
  ops::detail::check_device(fn, hidden);
  KAIZEN_CHECK(weight.device() == hidden.device(), fn, ": expected the weight on the hidden states' device ",
               hidden.device(), ", got ", weight.device());
  KAIZEN_CHECK(ops::detail::is_float_dtype(hidden.scalar_type()), fn,
               ": expected hidden of dtype float32, float64, bfloat16 or float16, got ", hidden.scalar_type());
  KAIZEN_CHECK(weight.scalar_type() == hidden.scalar_type(), fn, ": expected the weight in the hidden dtype ",
               hidden.scalar_type(), ", got ", weight.scalar_type());
  KAIZEN_CHECK(hidden.dim() == 2 || hidden.dim() == 3, fn, ": expected hidden [N, H] or [B, T, H], got shape ",
               hidden.sizes());
  KAIZEN_CHECK(weight.dim() == 2 && weight.size(1) == hidden.size(-1), fn, ": expected weight [V, ",
               hidden.size(-1), "] for hidden ", hidden.sizes(), ", got ", weight.sizes());
  KAIZEN_CHECK(chunk_size >= 0, fn, ": expected chunk_size >= 0 (0 = automatic), got ", chunk_size);
  ops::detail::check_targets(fn, targets, hidden.device(), hidden.sizes().slice(0, hidden.dim() - 1), "hidden",
                             hidden.sizes(), weight.size(0), temperature, true);
}

std::int64_t resolved_chunk(std::int64_t chunk_size, std::int64_t n, const at::Tensor& weight) {
  return chunk_size > 0 ? chunk_size : ops::detail::auto_chunk(n, weight.size(0), weight);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_linear_logprobs_cpu(const at::Tensor& hidden,
                                                                         const at::Tensor& weight,
                                                                         const at::Tensor& targets, double temperature,
                                                                         bool with_entropy, std::int64_t chunk_size) {
  return translated("kaizen::fused_linear_logprobs", [&] {
    check_fused_linear(hidden, weight, targets, temperature, chunk_size);
    at::NoGradGuard no_grad;
    const at::Tensor h = hidden.reshape({-1, hidden.size(-1)}).contiguous();
    const at::Tensor w = weight.contiguous();
    const at::Tensor ids = targets.reshape({-1}).contiguous();
    const std::int64_t n = h.size(0);
    const std::int64_t v = w.size(0);
    const std::int64_t chunk = resolved_chunk(chunk_size, n, w);
    const auto opts = h.options().dtype(ops::detail::stats_dtype(h.scalar_type()));
    at::Tensor logp = at::empty({n}, opts);
    at::Tensor lse = at::empty({n}, opts);
    at::Tensor entropy = with_entropy ? at::empty({n}, opts) : at::empty({0}, opts);
    at::Tensor buffer = at::empty({std::min(chunk, n), v}, h.options());
    const at::Tensor wt = w.t();
    for (std::int64_t start = 0; start < n; start += chunk) {
      const std::int64_t rows = std::min(chunk, n - start);
      at::Tensor logits = buffer.narrow(0, 0, rows);
      at::mm_out(logits, h.narrow(0, start, rows), wt);
      const auto outs = ops::detail::token_logprobs_forward(logits, ids.narrow(0, start, rows), temperature,
                                                            with_entropy);
      logp.narrow(0, start, rows).copy_(outs[0]);
      lse.narrow(0, start, rows).copy_(outs[1]);
      if (with_entropy) entropy.narrow(0, start, rows).copy_(outs[2]);
    }
    return std::make_tuple(logp.view(targets.sizes()), lse.view(targets.sizes()),
                           with_entropy ? entropy.view(targets.sizes()) : entropy);
  });
}

std::tuple<at::Tensor, at::Tensor> fused_linear_logprobs_backward_cpu(
    const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets, double temperature,
    std::int64_t chunk_size, const at::Tensor& lse_in, const at::Tensor& entropy_in,
    const std::optional<at::Tensor>& grad_logprobs, const std::optional<at::Tensor>& grad_entropy, bool need_hidden,
    bool need_weight) {
  return translated("kaizen::fused_linear_logprobs_backward", [&] {
    at::NoGradGuard no_grad;
    const at::Tensor h = hidden.reshape({-1, hidden.size(-1)}).contiguous();
    const at::Tensor w = weight.contiguous();
    const at::Tensor ids = targets.reshape({-1}).contiguous();
    const std::int64_t n = h.size(0);
    const std::int64_t v = w.size(0);
    const auto empty = at::empty({0}, hidden.options());
    at::Tensor grad_hidden = need_hidden ? at::zeros_like(hidden) : empty;
    at::Tensor grad_weight = need_weight ? at::zeros_like(weight) : empty;
    if ((!need_hidden && !need_weight) || n == 0) return std::make_tuple(grad_hidden, grad_weight);
    const std::int64_t chunk = resolved_chunk(chunk_size, n, w);
    const auto sd = ops::detail::stats_dtype(h.scalar_type());
    const at::Tensor g_lp = grad_logprobs.has_value() ? ops::detail::flat_grad(*grad_logprobs, n, sd) : at::Tensor();
    const bool use_h = grad_entropy.has_value() && entropy_in.numel() == n;
    const at::Tensor g_h = use_h ? ops::detail::flat_grad(*grad_entropy, n, sd) : at::Tensor();
    const at::Tensor lse = lse_in.reshape({n}).contiguous();
    const at::Tensor ent = use_h ? entropy_in.reshape({n}).contiguous() : lse;
    const std::int64_t slice = ops::detail::FusedLinearFunction::vocab_slice(n, v, chunk);
    const bool acc32 = h.scalar_type() == at::kBFloat16 || h.scalar_type() == at::kHalf;
    at::Tensor flat_buffer = at::empty({n * slice}, h.options());
    at::Tensor gw_all = need_weight ? at::empty_like(w) : at::Tensor();
    at::Tensor dx = need_hidden ? at::empty({n, h.size(1)}, h.options().dtype(acc32 ? at::kFloat : h.scalar_type()))
                                : at::Tensor();
    at::Tensor partial = need_hidden && acc32 ? at::empty_like(h) : at::Tensor();
    for (std::int64_t v0 = 0; v0 < v; v0 += slice) {
      const std::int64_t vs = std::min(slice, v - v0);
      const at::Tensor w_s = w.narrow(0, v0, vs);
      at::Tensor logits = flat_buffer.narrow(0, 0, n * vs).view({n, vs});
      at::mm_out(logits, h, w_s.t());
      const at::Tensor shifted = v0 == 0 ? ids : ids - v0;
      ops::detail::token_logprobs_backward(logits, shifted, temperature, lse, ent, g_lp, g_h, logits);
      if (need_weight) {
        at::Tensor gw = gw_all.narrow(0, v0, vs);
        at::mm_out(gw, logits.t(), h);
      }
      if (need_hidden) {
        if (acc32) {
          at::mm_out(partial, logits, w_s);
          if (v0 == 0) dx.copy_(partial);
          else dx.add_(partial);
        } else if (v0 == 0) {
          at::mm_out(dx, logits, w_s);
        } else {
          dx.addmm_(logits, w_s);
        }
      }
    }
    if (need_hidden) grad_hidden = (acc32 ? dx.to(h.scalar_type()) : dx).view(hidden.sizes());
    if (need_weight) grad_weight = gw_all;
    return std::make_tuple(grad_hidden, grad_weight);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sample_tokens_cpu(const at::Tensor& logits, double temperature,
                                                                 std::int64_t top_k, double top_p, double min_p,
                                                                 std::int64_t seed) {
  return translated("kaizen::sample_tokens", [&] {
    SamplingParams params;
    params.temperature = temperature;
    params.top_k = top_k;
    params.top_p = top_p;
    params.min_p = min_p;
    Rng rng(static_cast<std::uint64_t>(seed));
    auto r = ops::sample_tokens(logits, params, rng);
    return std::make_tuple(r.ids, r.sampling_logprobs, r.tempered_logprobs);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> group_stats_cpu(const at::Tensor& values, const at::Tensor& offsets,
                                                               bool unbiased, double epsilon, bool scale) {
  return translated("kaizen::group_stats", [&] {
    auto r = ops::group_stats(values, offsets, {.unbiased = unbiased, .epsilon = epsilon, .scale = scale});
    return std::make_tuple(r.mean, r.std, r.advantages);
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
  m.def("fused_linear_logprobs(Tensor hidden, Tensor weight, Tensor targets, float temperature, bool with_entropy, "
        "int chunk_size) -> (Tensor, Tensor, Tensor)");
  m.def("fused_linear_logprobs_backward(Tensor hidden, Tensor weight, Tensor targets, float temperature, "
        "int chunk_size, Tensor lse, Tensor entropy, Tensor? grad_logprobs, Tensor? grad_entropy, bool need_hidden, "
        "bool need_weight) -> (Tensor, Tensor)");
  m.def("sample_tokens(Tensor logits, float temperature, int top_k, float top_p, float min_p, int seed) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("group_stats(Tensor values, Tensor offsets, bool unbiased, float epsilon, bool scale) "
        "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(kaizen, CPU, m) {
  m.impl("token_logprobs", &kaizen::python::token_logprobs_cpu);
  m.impl("token_logprobs_backward", &kaizen::python::token_logprobs_backward_cpu);
  m.impl("policy_objective", &kaizen::python::policy_objective_cpu);
  m.impl("fused_linear_logprobs", &kaizen::python::fused_linear_logprobs_cpu);
  m.impl("fused_linear_logprobs_backward", &kaizen::python::fused_linear_logprobs_backward_cpu);
  m.impl("sample_tokens", &kaizen::python::sample_tokens_cpu);
  m.impl("group_stats", &kaizen::python::group_stats_cpu);
}
