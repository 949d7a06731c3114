"""Fake (meta) and autograd implementations of the torch.ops.kaizen custom operators (python/csrc/ops.cpp).

The fake implementations give output shapes and dtypes without running the kernels, so torch.compile traces
the ops without a graph break; the autograd formulas call the C++ backward op (token log-probs) or scale the
gradient the forward pass already computed (policy objective).
"""
import torch


def _stats_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.library.register_fake("kaizen::token_logprobs")
def _token_logprobs_fake(logits, targets, temperature, with_entropy):
    dtype = _stats_dtype(logits.dtype)
    logprobs = logits.new_empty(targets.shape, dtype=dtype)
    lse = logits.new_empty(targets.shape, dtype=dtype)
    entropy = logits.new_empty(targets.shape if with_entropy else (0,), dtype=dtype)
    return logprobs, lse, entropy


@torch.library.register_fake("kaizen::token_logprobs_backward")
def _token_logprobs_backward_fake(logits, targets, temperature, lse, entropy, grad_logprobs, grad_entropy):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


@torch.library.register_fake("kaizen::policy_objective")
def _policy_objective_fake(logprobs, old_logprobs, ref_logprobs, advantages, mask, entropy, sampler_logprobs,
                           modes, params, normaliser):
    loss = logprobs.new_empty(())
    grad_logprobs = torch.empty_like(logprobs, memory_format=torch.contiguous_format)
    grad_entropy = (torch.empty_like(entropy, memory_format=torch.contiguous_format) if entropy is not None
                    else logprobs.new_empty((0,)))
    metrics = logprobs.new_empty((12,), dtype=torch.float64)
    return loss, grad_logprobs, grad_entropy, metrics


def _token_logprobs_setup(ctx, inputs, output):
    logits, targets, temperature, with_entropy = inputs
    _, lse, entropy = output
    ctx.save_for_backward(logits, targets, lse, entropy)
    ctx.temperature = temperature
    ctx.with_entropy = with_entropy
    ctx.mark_non_differentiable(lse)
    if not with_entropy:
        ctx.mark_non_differentiable(entropy)


def _token_logprobs_backward(ctx, grad_logprobs, grad_lse, grad_entropy):
    logits, targets, lse, entropy = ctx.saved_tensors
    grad_logits = torch.ops.kaizen.token_logprobs_backward(
        logits, targets, ctx.temperature, lse, entropy, grad_logprobs,
        grad_entropy if ctx.with_entropy else None)
    return grad_logits, None, None, None


torch.library.register_autograd("kaizen::token_logprobs", _token_logprobs_backward,
                                setup_context=_token_logprobs_setup)


def _policy_objective_setup(ctx, inputs, output):
    entropy = inputs[5]
    _, grad_logprobs, grad_entropy, metrics = output
    ctx.with_entropy = entropy is not None
    ctx.save_for_backward(grad_logprobs, grad_entropy)
    ctx.mark_non_differentiable(grad_logprobs, grad_entropy, metrics)


def _policy_objective_backward(ctx, grad_loss, _g1, _g2, _g3):
    grad_logprobs, grad_entropy = ctx.saved_tensors
    d_logprobs = grad_loss * grad_logprobs
    d_entropy = grad_loss * grad_entropy if ctx.with_entropy else None
    return d_logprobs, None, None, None, None, d_entropy, None, None, None, None


torch.library.register_autograd("kaizen::policy_objective", _policy_objective_backward,
                                setup_context=_policy_objective_setup)
