// kaizen/torch/checkpoint.hpp - activation (gradient) checkpointing for the LibTorch C++ frontend, which has
// no torch.utils.checkpoint.
//
//   y = checkpoint(f, x, params)
//   forward:  y = f(x) computed without gradient: none of f's intermediate activations are kept, only x
//             (and the parameters, which live anyway)
//   backward: f(x) is run again with gradient on a detached copy of x, then ∂L/∂x and ∂L/∂θ for θ in
//             `params` come from one autograd::grad call on the recomputed output with the incoming ∂L/∂y.
// Peak memory of a stack of L checkpointed blocks: the L block inputs plus one block's activations at a
// time, instead of every block's activations; the price is a second forward of each block in backward
// (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost", arXiv 1604.06174).
//
// The recomputation must see what the first forward saw, so the checkpoint records, at the forward:
//   - the default generator state of x's device (and of the CPU generator), restored around the recompute
//     and put back afterwards, so dropout draws the same mask and the caller's stream of draws is unchanged;
//   - the autocast state (enabled flag and dtype, CPU and CUDA), re-entered for the recompute, because
//     backward runs outside the caller's autocast scope.
// `params`: the tensors f reads that need gradients (others, e.g. frozen weights, may be left out; any
// listed tensor that does not require grad is skipped). f must not depend on anything else that needs a
// gradient: such a gradient would be silently lost, so pass every trainable tensor f reads.
#pragma once

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include <ATen/autocast_mode.h>
#include <ATen/core/Generator.h>
#include <ATen/Context.h>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>

namespace kaizen::ops {

namespace detail {

/// What the backward needs besides the saved tensors (kept in the autograd context as a capsule).
struct CheckpointState : torch::CustomClassHolder {
  std::function<torch::Tensor(const torch::Tensor&)> fn;
  std::vector<std::pair<at::Generator, torch::Tensor>> rng;  ///< generator and its state at the forward
  bool autocast_cpu = false, autocast_cuda = false;
  at::ScalarType autocast_cpu_dtype = at::kBFloat16, autocast_cuda_dtype = at::kHalf;
};

/// Sets the autocast state of CPU and CUDA for a scope, restoring the previous state at its end.
class AutocastState {
 public:
  AutocastState(bool cpu, at::ScalarType cpu_dtype, bool cuda, at::ScalarType cuda_dtype)
      : cpu_(at::autocast::is_autocast_enabled(at::kCPU)),
        cuda_(at::autocast::is_autocast_enabled(at::kCUDA)),
        cpu_dtype_(at::autocast::get_autocast_dtype(at::kCPU)),
        cuda_dtype_(at::autocast::get_autocast_dtype(at::kCUDA)) {
    at::autocast::set_autocast_dtype(at::kCPU, cpu_dtype);
    at::autocast::set_autocast_dtype(at::kCUDA, cuda_dtype);
    at::autocast::set_autocast_enabled(at::kCPU, cpu);
    at::autocast::set_autocast_enabled(at::kCUDA, cuda);
    if (cpu || cuda) at::autocast::increment_nesting();
    entered_ = cpu || cuda;
  }
  ~AutocastState() {
    if (entered_ && at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCPU, cpu_);
    at::autocast::set_autocast_enabled(at::kCUDA, cuda_);
    at::autocast::set_autocast_dtype(at::kCPU, cpu_dtype_);
    at::autocast::set_autocast_dtype(at::kCUDA, cuda_dtype_);
  }
  AutocastState(const AutocastState&) = delete;
  AutocastState& operator=(const AutocastState&) = delete;

 private:
  bool cpu_, cuda_;
  at::ScalarType cpu_dtype_, cuda_dtype_;
  bool entered_ = false;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, at::TensorList params,
                               c10::intrusive_ptr<CheckpointState> state) {
    std::vector<torch::Tensor> saved{x};
    for (const torch::Tensor& p : params) saved.push_back(p);
    ctx->save_for_backward(saved);
    // Grad mode is off inside a custom Function's forward. Autocast's cast cache is off too: a weight cast
    // cached here would carry no gradient history, and a later forward with gradient inside the same
    // autocast region (the recomputation, when backward runs inside it) would reuse it and lose ∂L/∂θ.
    const bool cache = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    torch::Tensor y;
    try {
      y = state->fn(x);
    } catch (...) {
      at::autocast::set_autocast_cache_enabled(cache);
      throw;
    }
    at::autocast::set_autocast_cache_enabled(cache);
    ctx->saved_data["state"] = c10::IValue::make_capsule(std::move(state));
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto state = c10::static_intrusive_pointer_cast<CheckpointState>(ctx->saved_data["state"].toCapsule());
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const torch::Tensor x = saved[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      // Replay the forward's random state and autocast state, then put the caller's random state back.
      std::vector<torch::Tensor> now;
      for (auto& [gen, s] : state->rng) {
        now.push_back(gen.get_state());
        gen.set_state(s);
      }
      const AutocastState autocast(state->autocast_cpu, state->autocast_cpu_dtype, state->autocast_cuda,
                                   state->autocast_cuda_dtype);
      const torch::AutoGradMode grad_on(true);
      y = state->fn(x);
      for (std::size_t i = 0; i < state->rng.size(); ++i) state->rng[i].first.set_state(now[i]);
    }
    std::vector<torch::Tensor> inputs{x};
    for (std::size_t i = 1; i < saved.size(); ++i) inputs.push_back(saved[i]);
    const torch::autograd::variable_list grads =
        torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                              /*allow_unused=*/true);
    torch::autograd::variable_list out;
    out.reserve(grads.size() + 1);
    for (const torch::Tensor& g : grads) out.push_back(g);
    out.emplace_back();  // the state argument
    return out;
  }
};

}  // namespace detail

/// y = fn(x), keeping only x for backward and recomputing fn's activations there (see the top of the file).
/// `params`: the trainable tensors fn reads. Without grad mode, or when neither x nor any of `params`
/// requires grad, it is fn(x). Throws kaizen::Error when x is undefined or fn returns an undefined tensor.
[[nodiscard]] inline torch::Tensor checkpoint(std::function<torch::Tensor(const torch::Tensor&)> fn,
                                              const torch::Tensor& x, const std::vector<torch::Tensor>& params) {
  KAIZEN_CHECK(x.defined(), "checkpoint: the input is undefined");
  std::vector<torch::Tensor> trainable;
  for (const torch::Tensor& p : params) {
    if (p.defined() && p.requires_grad()) trainable.push_back(p);
  }
  if (!torch::GradMode::is_enabled() || (!x.requires_grad() && trainable.empty())) {
    torch::Tensor y = fn(x);
    KAIZEN_CHECK(y.defined(), "checkpoint: the function returned an undefined tensor");
    return y;
  }
  auto state = c10::make_intrusive<detail::CheckpointState>();
  state->fn = std::move(fn);
  state->autocast_cpu = at::autocast::is_autocast_enabled(at::kCPU);
  state->autocast_cuda = at::autocast::is_autocast_enabled(at::kCUDA);
  state->autocast_cpu_dtype = at::autocast::get_autocast_dtype(at::kCPU);
  state->autocast_cuda_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
  at::Generator cpu = at::globalContext().defaultGenerator(c10::DeviceType::CPU);
  state->rng.emplace_back(cpu, cpu.get_state());
  if (!x.device().is_cpu()) {
    at::Generator dev = at::globalContext().defaultGenerator(x.device());
    state->rng.emplace_back(dev, dev.get_state());
  }
  torch::Tensor y = detail::CheckpointFunction::apply(x, at::TensorList(trainable), state);
  KAIZEN_CHECK(y.defined(), "checkpoint: the function returned an undefined tensor");
  return y;
}

}  // namespace kaizen::ops
