"""kaizen for Python: the C++ library's ops and losses as PyTorch custom operators and thin bindings.

    import kaizen
    lp = kaizen.ops.token_logprobs(logits, targets, temperature=0.7)
    loss, metrics = kaizen.losses.policy_loss(lp, old_lp, advantages, mask, kaizen.losses.Objective.dapo())

Submodules: kaizen.ops (custom operators: token_logprobs, fused_linear_logprobs, sample_tokens, group_stats,
policy_objective), kaizen.losses (policy_loss, advantages, preference losses), kaizen.consistency (answer
extraction, votes, pass@k), kaizen.curriculum (SEC and the bandits), kaizen.search (MCTS and beam search over a
Python problem). Bad input raises ValueError carrying kaizen's message (the C++ check that failed).
"""
import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C  # noqa: F401  (registers the torch.ops.kaizen operators)
from . import _registry  # noqa: F401  (their fake and autograd implementations)
from . import consistency, curriculum, losses, ops, search

__all__ = ["ops", "losses", "consistency", "curriculum", "search"]
__version__ = "0.1.0"
