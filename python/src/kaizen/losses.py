"""kaizen.losses: policy-gradient losses, advantages and preference losses from kaizen's C++ library.

Policy gradient (include/kaizen/policy_gradient/options.hpp, policy_loss.hpp). An objective is the composition
ratio x clip x KL x aggregation (+ entropy bonus, truncated importance sampling, ratio cap):

    ratio        "token" | "sequence" (GSPO) | "geometric" (GMPO)
    clip         "none" | "symmetric" (epsilon) | "asymmetric" (epsilon_low, epsilon_high; DAPO clip-higher)
                 | "dual" (epsilon_low, epsilon_high, dual_clip_c) | "cispo" (epsilon_low, epsilon_high,
                 cispo_value) | "sapo" (tau_positive, tau_negative)
    kl           "none" | "k1" | "k2" | "k3" | "k3_importance"   (kl_coefficient β, kl_clamp)
    aggregation  "token_mean" | "seq_mean_token_mean" | "seq_mean_token_sum" | "seq_mean_token_sum_norm"
                 (aggregation_constant L_c)
    ℓ_t = −w_t · obj(r_t, A_t) + β · KL_t − c_H · H_t,   loss = aggregate(ℓ, mask, N)

policy_loss(...) returns (loss, metrics): the loss is differentiable with respect to `logprobs` (and
`entropy`); metrics is a dict of 0-dim float64 tensors (loss, policy_loss, kl, entropy, clip fractions, ratio
mean/max, importance weight mean, tokens, sequences), as PolicyLossMetrics. By default it runs the fused op
torch.ops.kaizen.policy_objective (torch.compile-friendly); options only kaizen's reference path computes
(ratio_cap, cispo_value="log_prob", policy_token_mask) or fused=False run policy_gradient::policy_loss
(LibTorch under autograd; a graph break under torch.compile).
"""
import dataclasses
import math
from typing import Optional

import torch

from . import _C

__all__ = [
    "Objective", "policy_loss", "METRIC_NAMES",
    "group_advantages", "grpo_advantages", "dr_grpo_advantages", "rloo_advantages", "pass_at_k_advantages",
    "reinforce_pp_advantages", "reinforce_pp_baseline_advantages", "broadcast_to_tokens", "masked_whiten",
    "advantages",
    "dpo_loss", "robust_dpo_loss", "ipo_loss", "hinge_loss", "simpo_loss",
]

_RATIO = {"token": 0, "sequence": 1, "geometric": 2}
_CLIP = {"none": 0, "symmetric": 1, "asymmetric": 2, "dual": 3, "cispo": 4, "sapo": 5}
_KL = {"none": 0, "k1": 1, "k2": 2, "k3": 3, "k3_importance": 4}
_AGGREGATION = {"token_mean": 0, "seq_mean_token_mean": 1, "seq_mean_token_sum": 2, "seq_mean_token_sum_norm": 3}
_IMPORTANCE = {None: 0, "none": 0, "truncate": 1, "mask": 2}
_IMPORTANCE_LEVEL = {"token": 0, "sequence": 1}
_CISPO_VALUE = {"weight": 0, "log_prob": 1}
# Default clip bounds per clip mode (options.hpp): (epsilon_low, epsilon_high).
_DEFAULT_BOUNDS = {"asymmetric": (0.2, 0.28), "dual": (0.2, 0.2), "cispo": (1.0, 4.0)}

METRIC_NAMES = ("loss", "policy_loss", "kl", "entropy", "clip_fraction_low", "clip_fraction_high",
                "clip_fraction_dual", "ratio_mean", "ratio_max", "importance_weight_mean", "tokens", "sequences")


def _code(table, value, what):
    try:
        return table[value]
    except (KeyError, TypeError):
        names = ", ".join(repr(k) for k in table if k is not None)
        raise ValueError(f"policy_loss: expected {what} in {{{names}}}, got {value!r}") from None


@dataclasses.dataclass(frozen=True)
class Objective:
    """One policy-gradient objective (kaizen::policy_gradient::Objective). Unset bounds take the clip mode's
    defaults: symmetric ε = 0.2; asymmetric 0.2 / 0.28; dual 0.2 / 0.2 with c = 3; cispo 1 / 4 (cap 5)."""
    ratio: str = "token"
    clip: str = "symmetric"
    epsilon: float = 0.2
    epsilon_low: Optional[float] = None
    epsilon_high: Optional[float] = None
    dual_clip_c: float = 3.0
    tau_positive: float = 1.0
    tau_negative: float = 1.05
    cispo_value: str = "weight"
    kl: str = "none"
    kl_coefficient: Optional[float] = None  # default 0.04 with a KL estimator, else 0
    kl_clamp: float = math.inf
    aggregation: str = "token_mean"
    aggregation_constant: float = 4096.0
    entropy_coefficient: float = 0.0
    importance: Optional[str] = None  # None | "truncate" | "mask"
    importance_level: str = "token"
    importance_cap: float = 2.0
    ratio_cap: float = math.inf

    # Named compositions (options.hpp): the published defaults.
    @classmethod
    def grpo(cls, **kw):
        """GRPO: token ratio, symmetric clip 0.2, k3 KL β = 0.04 in the loss, per-sequence mean."""
        return cls(**{"kl": "k3", "aggregation": "seq_mean_token_mean", **kw})

    @classmethod
    def dapo(cls, **kw):
        """DAPO: clip-higher 0.2 / 0.28, no KL, token mean."""
        return cls(**{"clip": "asymmetric", **kw})

    @classmethod
    def dr_grpo(cls, constant=4096.0, **kw):
        """Dr. GRPO: symmetric clip, no KL, token sum over a constant L_c (e.g. the max completion length)."""
        return cls(**{"aggregation": "seq_mean_token_sum_norm", "aggregation_constant": constant, **kw})

    @classmethod
    def gspo(cls, **kw):
        """GSPO: sequence ratio, clip 3e-4 / 4e-4, per-sequence mean."""
        return cls(**{"ratio": "sequence", "clip": "asymmetric", "epsilon_low": 3e-4, "epsilon_high": 4e-4,
                      "aggregation": "seq_mean_token_mean", **kw})

    @classmethod
    def gmpo(cls, **kw):
        """GMPO: geometric-mean ratio, log-space clip ±0.4, per-sequence mean."""
        return cls(**{"ratio": "geometric", "epsilon": 0.4, "aggregation": "seq_mean_token_mean", **kw})

    @classmethod
    def cispo(cls, **kw):
        """CISPO: clipped stop-gradient IS weight on REINFORCE, token mean."""
        return cls(**{"clip": "cispo", **kw})

    @classmethod
    def sapo(cls, **kw):
        """SAPO: soft gate, per-sequence mean."""
        return cls(**{"clip": "sapo", "aggregation": "seq_mean_token_mean", **kw})

    def codes(self):
        """(modes, params): the integer codes and parameters of the C++ objective (python/csrc/objective_spec.hpp)."""
        low, high = _DEFAULT_BOUNDS.get(self.clip, (0.2, 0.28))
        low = low if self.epsilon_low is None else self.epsilon_low
        high = high if self.epsilon_high is None else self.epsilon_high
        kl_coefficient = self.kl_coefficient
        if kl_coefficient is None:
            kl_coefficient = 0.0 if self.kl == "none" else 0.04
        modes = [_code(_RATIO, self.ratio, "ratio"), _code(_CLIP, self.clip, "clip"), _code(_KL, self.kl, "kl"),
                 _code(_AGGREGATION, self.aggregation, "aggregation"),
                 _code(_IMPORTANCE, self.importance, "importance"),
                 _code(_IMPORTANCE_LEVEL, self.importance_level, "importance_level"),
                 _code(_CISPO_VALUE, self.cispo_value, "cispo_value")]
        params = [float(x) for x in (self.epsilon, low, high, self.dual_clip_c, self.tau_positive, self.tau_negative,
                                     kl_coefficient, self.kl_clamp, self.aggregation_constant,
                                     self.entropy_coefficient, self.importance_cap, self.ratio_cap)]
        return modes, params

    def needs_reference_path(self):
        """True for the options only policy_gradient::policy_loss computes (the fused op refuses them)."""
        return not math.isinf(self.ratio_cap) or (self.clip == "cispo" and self.cispo_value == "log_prob")


def _metrics(values):
    return {name: values[i] for i, name in enumerate(METRIC_NAMES)}


def policy_loss(logprobs, old_logprobs, advantages, mask, objective=None, *, ref_logprobs=None, entropy=None,
                sampler_logprobs=None, policy_token_mask=None, normaliser=None, fused=None, **options):
    """kaizen's policy-gradient loss: (loss, metrics).

    logprobs, old_logprobs, ref_logprobs, entropy, sampler_logprobs: [B, T] float32/float64 (logprobs carries
    the gradient); advantages: [B] per sequence or [B, T]; mask: [B, T] bool or float, every row with a valid
    token. `objective`: an Objective (default Objective()), and/or its fields as keyword arguments
    (e.g. clip="asymmetric", epsilon_high=0.28, kl="k3"). `normaliser`: the global N of the aggregation for
    gradient accumulation (default: this batch's). `fused`: None = the fused op whenever it supports the
    options; False = kaizen's reference path (policy_gradient::policy_loss).
    """
    obj = objective if objective is not None else Objective()
    if options:
        obj = dataclasses.replace(obj, **options)
    modes, params = obj.codes()
    norm = None if normaliser is None else float(normaliser)
    reference = fused is False or policy_token_mask is not None or obj.needs_reference_path()
    if fused is True and reference and (policy_token_mask is not None or obj.needs_reference_path()):
        raise ValueError("policy_loss: fused=True, but ratio_cap, cispo_value='log_prob' and policy_token_mask are "
                         "computed by the reference path only (fused=None or False)")
    if reference:
        loss, values = _C.policy_loss_reference(logprobs, old_logprobs, ref_logprobs, advantages, mask, entropy,
                                                sampler_logprobs, policy_token_mask, modes, params, norm)
        return loss, _metrics(torch.tensor(values, dtype=torch.float64))
    loss, _, _, values = torch.ops.kaizen.policy_objective(logprobs, old_logprobs, ref_logprobs, advantages, mask,
                                                           entropy, sampler_logprobs, modes, params, norm)
    return loss, _metrics(values)


# ----------------------------------------------------------------------------------------------------------
# Advantages (include/kaizen/policy_gradient/advantages.hpp). rewards [B] float, group_ids [B] integer (equal
# id = same prompt, any order); a group whose rewards are all equal gets exactly 0.
# ----------------------------------------------------------------------------------------------------------
_SCALE = {"group": 0, "batch": 1, "none": 2}
_STD = {"unbiased": 0, "biased": 1}


def group_advantages(rewards, group_ids, scale="group", std="unbiased", epsilon=1e-6):
    """A_i = (r_i − μ_g) / s, s = σ_g + ε ("group", GRPO), σ_batch + ε ("batch") or 1 ("none", Dr. GRPO)."""
    if scale not in _SCALE or std not in _STD:
        raise ValueError(f"group_advantages: expected scale in {set(_SCALE)} and std in {set(_STD)}, got "
                         f"{scale!r} and {std!r}")
    return _C.group_advantages(rewards, group_ids, _SCALE[scale], _STD[std], float(epsilon))


def grpo_advantages(rewards, group_ids, epsilon=1e-6):
    """GRPO: (r_i − μ_g) / (σ_g + ε), unbiased σ (as TRL / verl)."""
    return group_advantages(rewards, group_ids, "group", "unbiased", epsilon)


def dr_grpo_advantages(rewards, group_ids):
    """Dr. GRPO: r_i − μ_g (no division by σ)."""
    return group_advantages(rewards, group_ids, "none")


def rloo_advantages(rewards, group_ids):
    """RLOO: r_i − mean of the other members of i's group."""
    return _C.rloo_advantages(rewards, group_ids)


def pass_at_k_advantages(rewards, group_ids, k):
    """Analytic pass@k group advantages for 0/1 rewards (Chen et al. 2025)."""
    return _C.pass_at_k_advantages(rewards, group_ids, int(k))


def reinforce_pp_advantages(token_rewards, mask, gamma=1.0):
    """REINFORCE++: discounted returns over valid tokens, whitened over the batch. [B, T] -> [B, T]."""
    return _C.reinforce_pp_advantages(token_rewards, mask, float(gamma))


def reinforce_pp_baseline_advantages(rewards, group_ids, mask):
    """REINFORCE++ with a group baseline: (r_i − μ_g) on the tokens of row i, whitened over the batch."""
    return _C.reinforce_pp_baseline_advantages(rewards, group_ids, mask)


def broadcast_to_tokens(advantages, mask):
    """[B] sequence advantages -> [B, T]: A_b · m_bt."""
    return _C.broadcast_to_tokens(advantages, mask)


def masked_whiten(values, mask):
    """(x − mean) / sqrt(var + ε) over the valid tokens (Bessel-corrected var), 0 outside the mask."""
    return _C.masked_whiten(values, mask)


_ADVANTAGES = {"grpo": grpo_advantages, "dr_grpo": dr_grpo_advantages, "rloo": rloo_advantages,
               "batch_std": lambda r, g: group_advantages(r, g, "batch")}


def advantages(rewards, group_ids, method="grpo", mask=None):
    """Outcome advantages by name: "grpo", "dr_grpo", "rloo", "batch_std" ([B]), or "reinforce++" ([B, T],
    with the group baseline; needs `mask`)."""
    if method in ("reinforce++", "reinforce_pp"):
        if mask is None:
            raise ValueError("advantages: method 'reinforce++' needs the completion mask [B, T]")
        return reinforce_pp_baseline_advantages(rewards, group_ids, mask)
    if method not in _ADVANTAGES:
        raise ValueError(f"advantages: expected method in {sorted(_ADVANTAGES) + ['reinforce++']}, got {method!r}")
    return _ADVANTAGES[method](rewards, group_ids)


# ----------------------------------------------------------------------------------------------------------
# Preference losses (include/kaizen/preference/). Inputs: sequence log-probs [N] of the chosen and rejected
# responses under the policy (differentiable) and the reference. Each returns (loss, metrics): loss = mean of
# the per-pair losses; metrics holds per_example, chosen_rewards, rejected_rewards and the 0-dim summaries
# chosen_reward, rejected_reward, margin, accuracy.
# ----------------------------------------------------------------------------------------------------------
def _preference(result):
    loss, per_example, chosen_rewards, rejected_rewards, summary = result
    return loss, {"per_example": per_example, "chosen_rewards": chosen_rewards,
                  "rejected_rewards": rejected_rewards, **summary}


def dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.1, label_smoothing=0.0):
    """DPO −log σ(β h) (cDPO with label_smoothing ε); h = (π_w − ref_w) − (π_l − ref_l) in log space."""
    return _preference(_C.dpo_loss(chosen, rejected, ref_chosen, ref_rejected, float(beta), float(label_smoothing)))


def robust_dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.1, label_smoothing=0.0):
    """Robust DPO [−(1−ε) log σ(βh) + ε log σ(−βh)] / (1 − 2ε)."""
    return _preference(_C.robust_dpo_loss(chosen, rejected, ref_chosen, ref_rejected, float(beta),
                                          float(label_smoothing)))


def ipo_loss(chosen, rejected, ref_chosen, ref_rejected, tau=0.1, length_normalize=False, chosen_lengths=None,
             rejected_lengths=None):
    """IPO (h − 1/(2τ))²; length_normalize divides the log-probs by the lengths first (TRL's IPO)."""
    return _preference(_C.ipo_loss(chosen, rejected, ref_chosen, ref_rejected, float(tau), bool(length_normalize),
                                   chosen_lengths, rejected_lengths))


def hinge_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.1):
    """Hinge (SLiC) max(0, 1 − β h)."""
    return _preference(_C.hinge_loss(chosen, rejected, ref_chosen, ref_rejected, float(beta)))


def simpo_loss(chosen, rejected, chosen_lengths, rejected_lengths, beta=2.0, gamma=0.5, label_smoothing=0.0):
    """SimPO −log σ(β (π_w/|y_w| − π_l/|y_l|) − γ), reference-free."""
    return _preference(_C.simpo_loss(chosen, rejected, chosen_lengths, rejected_lengths, float(beta), float(gamma),
                                     float(label_smoothing)))
