"""kaizen.losses vs TRL's own loss code (GRPOTrainer._compute_loss, DPOTrainer._compute_loss) on the same
float64 inputs: loss and gradient with respect to the per-token log-probs, <= 1e-6 relative (measured: ~1e-15).

This is also the drop-in recipe for TRL users (python/README.md): the tensors GRPOTrainer holds
(per-token log-probs, old / ref log-probs, advantages, completion_mask) go straight into
kaizen.losses.policy_loss with the Objective matching the trainer's loss_type.
The trainers are driven as tests/parity/peers.py does for the C++ parity test: an object made without
__init__ whose model / log-prob hook returns the given per-token log-probs.
"""
import types
from collections import defaultdict

import pytest
import torch

trl = pytest.importorskip("trl", reason="KAIZEN_SKIP: trl is not installed")
from trl.trainer.dpo_trainer import DPOTrainer  # noqa: E402
from trl.trainer.grpo_trainer import GRPOTrainer  # noqa: E402

from conftest import pg_batch  # noqa: E402
from kaizen import losses  # noqa: E402
from kaizen.losses import Objective  # noqa: E402

RTOL = 1e-6


class _Accel:
    device = torch.device("cpu")
    num_processes = 1
    sync_gradients = True

    def gather_for_metrics(self, x):
        return x

    def gather(self, x):
        return x

    def reduce(self, x, reduction="sum"):
        return x

    def pad_across_processes(self, x, dim=0, pad_index=0):
        return x


def trl_grpo_loss(x, loss_type, beta=0.0, eps_low=0.2, eps_high=0.2, num_items=None):
    B, T = x["mask"].shape
    lp = x["lp"].clone().requires_grad_(True)
    t = GRPOTrainer.__new__(GRPOTrainer)
    t.__dict__.update(
        _get_per_token_logps_and_entropies=lambda *a, **k: (lp, x["entropy"], None),
        model=types.SimpleNamespace(training=True), accelerator=_Accel(), aux_loss_enabled=False,
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token", beta=beta,
        loss_type=loss_type, epsilon_low=eps_low, epsilon_high=eps_high, use_vllm=False,
        vllm_importance_sampling_correction=False, _entropy_bonus_enabled=False,
        current_gradient_accumulation_steps=1, max_completion_length=T,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        args=types.SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1,
                                   sapo_temperature_pos=1.0, sapo_temperature_neg=1.05))
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": x["mask"].long(),
              "advantages": x["adv"], "old_per_token_logps": x["old"], "ref_per_token_logps": x["ref"],
              "sampling_per_token_logps": x["sampler"]}
    if num_items is not None:
        inputs["num_items_in_batch"] = torch.tensor(float(num_items))
    loss = GRPOTrainer._compute_loss(t, None, inputs)
    (g,) = torch.autograd.grad(loss, lp)
    return loss.detach(), g


def kaizen_loss(x, objective, normaliser=None):
    lp = x["lp"].clone().requires_grad_(True)
    loss, _ = losses.policy_loss(lp, x["old"], x["adv"], x["mask"], objective, ref_logprobs=x["ref"],
                                 normaliser=normaliser)
    (g,) = torch.autograd.grad(loss, lp)
    return loss.detach(), g


def assert_relative(a, b, what):
    scale = b.abs().max().clamp_min(1e-30)
    err = float((a - b).abs().max() / scale)
    assert err <= RTOL, f"{what}: relative error {err:.3e}"


@pytest.mark.parametrize("case", ["grpo", "bnpo", "dapo", "dr_grpo"])
def test_grpo_family_matches_trl(gen, case):
    x = pg_batch(gen, B=8, T=12)
    # TRL pads with its own masks; its padding log-probs are finite junk here as in the trainer
    B, T = x["mask"].shape
    n_tokens = int(x["mask"].sum())
    if case == "grpo":
        trl_out = trl_grpo_loss(x, "grpo", beta=0.04)
        ours = kaizen_loss(x, Objective.grpo())
    elif case == "bnpo":
        trl_out = trl_grpo_loss(x, "bnpo")
        ours = kaizen_loss(x, Objective())
    elif case == "dapo":
        # TRL's dapo divides by num_items_in_batch (the global token count): kaizen's normaliser
        trl_out = trl_grpo_loss(x, "dapo", eps_high=0.28, num_items=n_tokens + 5)
        ours = kaizen_loss(x, Objective.dapo(), normaliser=n_tokens + 5)
    else:
        trl_out = trl_grpo_loss(x, "dr_grpo")
        ours = kaizen_loss(x, Objective.dr_grpo(constant=T))
    assert_relative(ours[0], trl_out[0], f"{case} loss")
    assert_relative(ours[1], trl_out[1], f"{case} grad")


def trl_dpo_loss(lp_tokens, mask, ref_seq, loss_type, beta=0.1):
    rows, cols = mask.shape
    N = rows // 2
    lp = lp_tokens.clone().requires_grad_(True)
    pm = mask.double()

    class _Model:
        training = True

        def __call__(self, **kw):
            zeros = torch.zeros(rows, cols)
            return types.SimpleNamespace(log_probs=lp * pm, entropy=zeros, mean_logits=zeros,
                                         is_top1=torch.zeros(rows, cols, dtype=torch.bool), aux_loss=None)

    t = DPOTrainer.__new__(DPOTrainer)
    t.__dict__.update(model=_Model(), accelerator=_Accel(), ld_alpha=None, precompute_ref_logps=True,
                      f_divergence_type="reverse_kl", f_alpha_divergence_coef=0.5, loss_types=[loss_type],
                      loss_weights=[1.0], beta=beta, label_smoothing=0.0, use_weighting=False,
                      aux_loss_enabled=False,
                      args=types.SimpleNamespace(discopop_tau=0.05, gradient_checkpointing_kwargs=None),
                      _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0,
                      _tp_size=1)
    inputs = {"input_ids": torch.zeros(rows, cols + 1, dtype=torch.long),
              "attention_mask": torch.ones(rows, cols + 1, dtype=torch.long),
              "completion_mask": torch.cat([torch.zeros(rows, 1), pm], dim=1).long(),
              "ref_chosen_logps": ref_seq[:N], "ref_rejected_logps": ref_seq[N:]}
    loss = DPOTrainer._compute_loss(t, t.__dict__["model"], inputs, False)
    (g,) = torch.autograd.grad(loss, lp)
    return loss.detach(), g


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo"])
def test_dpo_family_matches_trl(gen, loss_type):
    N, T = 5, 10
    x = pg_batch(gen, B=2 * N, T=T)
    mask, lp_tokens = x["mask"], x["lp"]
    ref_seq = (torch.where(mask, x["ref"], 0.0)).sum(1)
    lengths = mask.sum(1).double()
    trl_loss, trl_grad = trl_dpo_loss(lp_tokens, mask, ref_seq, loss_type)

    lp = lp_tokens.clone().requires_grad_(True)
    seq = torch.where(mask, lp, 0.0).sum(1)
    c, r = seq[:N], seq[N:]
    if loss_type == "sigmoid":
        loss, _ = losses.dpo_loss(c, r, ref_seq[:N], ref_seq[N:], beta=0.1)
    elif loss_type == "hinge":
        loss, _ = losses.hinge_loss(c, r, ref_seq[:N], ref_seq[N:], beta=0.1)
    else:  # TRL's IPO uses mean token log-probs: kaizen's length_normalize
        loss, _ = losses.ipo_loss(c, r, ref_seq[:N], ref_seq[N:], tau=0.1, length_normalize=True,
                                  chosen_lengths=lengths[:N], rejected_lengths=lengths[N:])
    (g,) = torch.autograd.grad(loss, lp)
    assert_relative(loss.detach(), trl_loss, f"{loss_type} loss")
    assert_relative(g, trl_grad, f"{loss_type} grad")
