"""kaizen.ops: the hot-path ops of include/kaizen/torch/ops.hpp as PyTorch custom operators (CPU kernels).

token_logprobs(logits, targets, temperature=1.0, with_entropy=False)
    log softmax(logits / T)[target] per token (and the entropy of softmax(logits / T)), one fused pass
    forward and backward, float32 statistics (float64 for float64 logits), no [N, V] float32 copy.
fused_linear_logprobs(hidden, weight, targets, temperature=1.0, with_entropy=False, chunk_size=0)
    token_logprobs(hidden @ weight.T, ...) chunked over tokens: the [N, V] logits never exist in full;
    differentiable with respect to hidden and weight (the backward recomputes each vocabulary slice).
sample_tokens(logits, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=None, generator=None)
    temperature + top-k + top-p + min-p sampling without a sort: (ids, sampling_logprobs, tempered_logprobs).
group_stats(values, offsets=None, group_size=None, unbiased=True, epsilon=1e-6, scale=True)
    per-group mean / std of rewards and the group-normalised advantages (GRPO; scale=False: Dr. GRPO).
policy_objective(...)
    the fused policy-gradient objective (loss, its gradient and metrics in one pass); see
    kaizen.losses.policy_loss, which builds its options.

All are torch.ops.kaizen.* operators with fake and autograd implementations: they run under
torch.compile(fullgraph=True) and torch.autograd. Bad input raises ValueError with kaizen's message.
"""
import torch

__all__ = ["token_logprobs", "fused_linear_logprobs", "sample_tokens", "group_stats", "policy_objective"]


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


def fused_linear_logprobs(hidden, weight, targets, temperature=1.0, with_entropy=False, chunk_size=0):
    """token_logprobs(hidden @ weight.T, targets, ...) without materialising the [N, V] logits.

    hidden: [N, H] or [B, T, H]; weight: [V, H] (the lm_head / output embedding), same dtype; targets: int64
    [N] or [B, T] in [0, V). chunk_size: tokens per chunk (0 = chosen for the shape: 64 MiB of logits).
    Returns log-probs shaped like targets (float32; float64 for float64 inputs), or (logprobs, entropy) when
    with_entropy. Differentiable with respect to hidden and weight.
    """
    logprobs, _, entropy = torch.ops.kaizen.fused_linear_logprobs(hidden, weight, targets, float(temperature),
                                                                  bool(with_entropy), int(chunk_size))
    return (logprobs, entropy) if with_entropy else logprobs


_SEED_MASK = (1 << 63) - 1


def sample_tokens(logits, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=None, generator=None):
    """One token per row of logits [B, V] (or [V]) after temperature, top-k, top-p and min-p, in that order.

    Draws with kaizen's engine (mt19937_64) seeded by `seed` (an int in [0, 2^63)): the same seed gives the
    C++ ops::sample_tokens draws. Without a seed, one is drawn from `generator` (a torch.Generator; default:
    torch's global generator), so torch.manual_seed makes the call reproducible.
    Returns (ids int64 [B], sampling_logprobs float32 [B]: log-prob under the filtered distribution drawn
    from, tempered_logprobs float32 [B]: log softmax(logits / T)[id]). A row with no finite logit gives
    id 0 and NaN log-probs. Not differentiable.
    """
    if seed is None:
        seed = int(torch.randint(0, _SEED_MASK, (), generator=generator, dtype=torch.int64))
    return tuple(torch.ops.kaizen.sample_tokens(logits, float(temperature), int(top_k), float(top_p), float(min_p),
                                                int(seed)))


def group_stats(values, offsets=None, group_size=None, unbiased=True, epsilon=1e-6, scale=True):
    """Per-group mean and std of `values` [M] over contiguous groups, and the normalised advantages.

    Groups are [offsets[g], offsets[g+1]) (offsets int64 [G + 1], from 0 to M) or, with group_size=k,
    consecutive runs of k values. advantages = (x - mean) / (std + epsilon), or x - mean with scale=False
    (Dr. GRPO); std divides by n - 1 when unbiased (torch.std, TRL/verl GRPO), else by n. float64
    accumulation; returns (mean [G], std [G], advantages [M]), float32. Not differentiable.
    """
    if (offsets is None) == (group_size is None):
        raise ValueError("group_stats: expected exactly one of offsets and group_size")
    if offsets is None:
        group_size = int(group_size)
        m = values.numel()
        if group_size < 1 or m % group_size != 0:
            raise ValueError(f"group_stats: expected group_size >= 1 dividing the {m} values, got {group_size}")
        offsets = torch.arange(0, m + 1, group_size, dtype=torch.int64, device=values.device)
    return tuple(torch.ops.kaizen.group_stats(values, offsets, bool(unbiased), float(epsilon), bool(scale)))
