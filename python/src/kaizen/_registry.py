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


# --- fused_linear_logprobs ------------------------------------------------------------------------------------

@torch.library.register_fake("kaizen::fused_linear_logprobs")
def _fused_linear_fake(hidden, weight, targets, temperature, with_entropy, chunk_size):
    dtype = _stats_dtype(hidden.dtype)
    logprobs = hidden.new_empty(targets.shape, dtype=dtype)
    lse = hidden.new_empty(targets.shape, dtype=dtype)
    entropy = hidden.new_empty(targets.shape if with_entropy else (0,), dtype=dtype)
    return logprobs, lse, entropy


@torch.library.register_fake("kaizen::fused_linear_logprobs_backward")
def _fused_linear_backward_fake(hidden, weight, targets, temperature, chunk_size, lse, entropy, grad_logprobs,
                                grad_entropy, need_hidden, need_weight):
    grad_hidden = (torch.empty_like(hidden, memory_format=torch.contiguous_format) if need_hidden
                   else hidden.new_empty((0,)))
    grad_weight = (torch.empty_like(weight, memory_format=torch.contiguous_format) if need_weight
                   else hidden.new_empty((0,)))
    return grad_hidden, grad_weight


def _fused_linear_setup(ctx, inputs, output):
    hidden, weight, targets, temperature, with_entropy, chunk_size = inputs
    _, lse, entropy = output
    ctx.save_for_backward(hidden, weight, targets, lse, entropy)
    ctx.temperature = temperature
    ctx.with_entropy = with_entropy
    ctx.chunk_size = chunk_size
    ctx.mark_non_differentiable(lse)
    if not with_entropy:
        ctx.mark_non_differentiable(entropy)


def _fused_linear_backward(ctx, grad_logprobs, grad_lse, grad_entropy):
    hidden, weight, targets, lse, entropy = ctx.saved_tensors
    need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad_hidden, grad_weight = torch.ops.kaizen.fused_linear_logprobs_backward(
        hidden, weight, targets, ctx.temperature, ctx.chunk_size, lse, entropy, grad_logprobs,
        grad_entropy if ctx.with_entropy else None, need_hidden, need_weight)
    return (grad_hidden if need_hidden else None, grad_weight if need_weight else None, None, None, None, None)


torch.library.register_autograd("kaizen::fused_linear_logprobs", _fused_linear_backward,
                                setup_context=_fused_linear_setup)


# --- sample_tokens, group_stats (not differentiable: integer draws; rewards) -------------------------------------

@torch.library.register_fake("kaizen::sample_tokens")
def _sample_tokens_fake(logits, temperature, top_k, top_p, min_p, seed):
    rows = logits.shape[:-1]
    return (logits.new_empty(rows, dtype=torch.int64), logits.new_empty(rows, dtype=torch.float32),
            logits.new_empty(rows, dtype=torch.float32))


@torch.library.register_fake("kaizen::group_stats")
def _group_stats_fake(values, offsets, unbiased, epsilon, scale):
    groups = offsets.shape[0] - 1
    return (values.new_empty((groups,), dtype=torch.float32), values.new_empty((groups,), dtype=torch.float32),
            values.new_empty(values.shape, dtype=torch.float32))
