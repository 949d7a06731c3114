"""kaizen.ops: the hot-path ops of include/kaizen/torch/ops.hpp as PyTorch custom operators (CPU kernels).

token_logprobs(logits, targets, temperature=1.0, with_entropy=False)
    log softmax(logits / T)[target] per token (and the entropy of softmax(logits / T)), one fused pass
    forward and backward, float32 statistics (float64 for float64 logits), no [N, V] float32 copy.
policy_objective(...)
    the fused policy-gradient objective (loss, its gradient and metrics in one pass); see
    kaizen.losses.policy_loss, which builds its options.

Both are torch.ops.kaizen.* operators with fake and autograd implementations: they run under
torch.compile(fullgraph=True) and torch.autograd. Bad input raises ValueError with kaizen's message.
"""
import torch

__all__ = ["token_logprobs", "policy_objective"]


def token_logprobs(logits, targets, temperature=1.0, with_entropy=False):
    """Log-probability of each target id under softmax(logits / temperature).

    logits: [N, V] or [B, T, V], float32/float64/bfloat16/float16 (CPU); targets: int64 [N] or [B, T] with
    ids in [0, V). Returns a tensor shaped like targets (float32; float64 for float64 logits), or the pair
    (logprobs, entropy) when with_entropy. Differentiable with respect to the logits.
    """
    logprobs, _, entropy = torch.ops.kaizen.token_logprobs(logits, targets, float(temperature), bool(with_entropy))
    return (logprobs, entropy) if with_entropy else logprobs


def policy_objective(logprobs, old_logprobs, advantages, mask, modes, params, *, ref_logprobs=None, entropy=None,
                     sampler_logprobs=None, normaliser=None):
    """The raw fused objective: (loss, metrics tensor [12] float64). Prefer kaizen.losses.policy_loss."""
    loss, _, _, metrics = torch.ops.kaizen.policy_objective(
        logprobs, old_logprobs, ref_logprobs, advantages, mask, entropy, sampler_logprobs, list(modes),
        [float(p) for p in params], None if normaliser is None else float(normaliser))
    return loss, metrics
