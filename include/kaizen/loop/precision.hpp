// kaizen/loop/precision.hpp - bf16 mixed-precision training with fp32 master weights and fp32 optimiser state.
//
// Rule (Micikevicius et al. 2018, "Mixed Precision Training", arXiv 1710.03740; bf16 as in Kalamkar et al.
// 2019, "A Study of BFLOAT16 for Deep Learning Training", arXiv 1905.12322):
//   master  θ (fp32): the parameters the optimiser owns; AdamW's m and v are fp32 because they are built
//           over θ; every update is applied in fp32
//   compute the training forward runs under LibTorch's autocast with dtype bf16: each GEMM-class op
//           (linear, matmul, scaled-dot-product attention, ...) casts its fp32 inputs to bf16 and computes
//           in bf16; reductions that need range (softmax, log-softmax, norms) run in fp32. The cast of θ is
//           itself an op on the graph, so backward hands the gradient back to θ as fp32: ∂L/∂θ is fp32.
//   no loss scaling: bf16 has fp32's 8-bit exponent, so gradients do not underflow the way fp16's do.
//   fp32 stays: the residual stream of lm::LlamaModel (x + bf16 block output promotes to fp32), RMSNorm
//           (computed in fp32 by the model), the output head and log-softmax of the fused log-prob path
//           (loop::policy_logprobs on a HiddenStatePolicy runs outside autocast; its hidden states and
//           output embedding are fp32), so log π_θ keeps fp32 precision for the importance ratio.
// Why autocast rather than a bf16 copy of the model refreshed from the master after each step: it needs no
// second model (any Policy type works, no copy per step, the KV-cache / fused-projection buffers untouched),
// and the measured step time and memory are in docs/loops.md ("Mixed precision, accumulation,
// checkpointing"; bench/loop/bench_precision.cpp).
//
// Pieces:
//   Precision            fp32 | bf16, parse_precision("fp32" | "bf16")
//   AutocastScope        RAII: autocast on for one device type with a dtype, the previous state restored
//   Bf16Compute<P>       a Policy (and HiddenStatePolicy when P is one) whose differentiable forwards run
//                        under bf16 autocast, while gradient-free calls (sampling, frozen log-probs) stay
//                        fp32; parameters() are P's fp32 masters. Use it with any loop:
//                        loop::Bf16Compute<LlamaModel> p{&model}; policy_gradient_loop(p, sampler, ...)
//   PolicyGradientUpdateOptions::precision (loop/update.hpp) applies the same scope to each forward of
//   policy_gradient_update.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/token_batch.hpp>

namespace kaizen::loop {

/// The compute precision of the training forward and backward (the master weights are always fp32).
enum class Precision { fp32, bf16 };

/// "fp32" or "bf16". Throws kaizen::Error naming the accepted values otherwise.
[[nodiscard]] inline Precision parse_precision(std::string_view name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  fail("parse_precision: expected \"fp32\" or \"bf16\", got \"", std::string(name), "\"");
}

[[nodiscard]] inline const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

/// Autocast on `device_type` with `dtype` for the lifetime of the scope (Precision::fp32: nothing changes);
/// the previous enabled flag and dtype come back at the end, and the cast cache is cleared when the
/// outermost scope ends (so no bf16 copy of a weight outlives the step it was made for).
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device_type, Precision precision) : device_type_(device_type) {
    if (precision == Precision::fp32) return;
    active_ = true;
    was_enabled_ = at::autocast::is_autocast_enabled(device_type_);
    old_dtype_ = at::autocast::get_autocast_dtype(device_type_);
    at::autocast::set_autocast_dtype(device_type_, at::kBFloat16);
    at::autocast::set_autocast_enabled(device_type_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_type_, was_enabled_);
    at::autocast::set_autocast_dtype(device_type_, old_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_type_;
  bool active_ = false;
  bool was_enabled_ = false;
  at::ScalarType old_dtype_ = at::kBFloat16;
};

/// The device type of a policy's first parameter (CPU when it has none).
template <Policy P>
[[nodiscard]] c10::DeviceType parameter_device_type(P& policy) {
  const std::vector<torch::Tensor> params = policy.parameters();
  return params.empty() ? c10::DeviceType::CPU : params.front().device().type();
}

/// A view of `P` whose differentiable forwards (grad mode on) run under bf16 autocast; see the top of the file.
/// logits() are returned in fp32 (computed in bf16). Gradient-free calls run in P's own precision.
template <Policy P>
struct Bf16Compute {
  P* policy;

  [[nodiscard]] torch::Tensor logits(const TokenBatch& batch) {
    if (!torch::GradMode::is_enabled()) return policy->logits(batch);
    const AutocastScope scope(parameter_device_type(*policy), Precision::bf16);
    return policy->logits(batch).to(torch::kFloat);
  }
  [[nodiscard]] std::vector<torch::Tensor> parameters() { return policy->parameters(); }

  /// HiddenStatePolicy: the hidden states under autocast, in fp32 (the fused head then runs in fp32).
  [[nodiscard]] torch::Tensor hidden_states(const TokenBatch& batch)
    requires HiddenStatePolicy<P>
  {
    if (!torch::GradMode::is_enabled()) return policy->hidden_states(batch);
    const AutocastScope scope(parameter_device_type(*policy), Precision::bf16);
    torch::Tensor h = policy->hidden_states(batch);
    return h.scalar_type() == torch::kBFloat16 ? h.to(torch::kFloat) : h;
  }
  [[nodiscard]] torch::Tensor output_embedding()
    requires HiddenStatePolicy<P>
  {
    return policy->output_embedding();
  }
};

}  // namespace kaizen::loop
