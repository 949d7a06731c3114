"""Runs TRL's and Liger-Kernel's own loss code on the inputs test_parity.cpp wrote, in float64.

    python peers.py <inputs.txt> <outputs.txt>

File format (both ways), one tensor a line: `name ndim d0 [d1] v0 v1 ...` (row-major, repr of doubles).
Inputs: per-token log-probs with junk in the padding (the peers get finite junk and their own masks).
Outputs per case: `<case>.loss` (0-dim) and `<case>.grad` (d loss / d per-token log-probs, [B, T]), or
`<case>.error` with the peer's message as a 1-element line of code points when the peer cannot run it.
Exit 77 when torch, trl or liger_kernel cannot be imported (the C++ test then prints KAIZEN_SKIP).
"""
import sys
import types
from collections import defaultdict

try:
    import torch
    import trl
    from trl.trainer.dpo_trainer import DPOTrainer
    import liger_kernel
    from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction
    from liger_kernel.chunked_loss.dpo_loss import LigerFusedLinearDPOFunction
    from liger_kernel.chunked_loss.simpo_loss import LigerFusedLinearSimPOFunction
    from liger_kernel.chunked_loss.cpo_loss import LigerFusedLinearCPOFunction
    from liger_kernel.chunked_loss.kto_loss import LigerFusedLinearKTOFunction
except Exception as exc:  # a missing package: skip, never fail
    print(f"peers.py: cannot import the peers: {exc!r}", file=sys.stderr)
    sys.exit(77)

torch.set_default_dtype(torch.float64)


def read(path):
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            name, ndim = parts[0], int(parts[1])
            shape = [int(x) for x in parts[2:2 + ndim]]
            values = [float(x) for x in parts[2 + ndim:]]
            out[name] = torch.tensor(values, dtype=torch.float64).reshape(shape)
    return out


X = read(sys.argv[1])
results = []


def emit(name, t):
    t = t.detach().to(torch.float64).contiguous()
    shape = list(t.shape)
    results.append(" ".join([name, str(len(shape))] + [str(s) for s in shape] + [repr(float(v)) for v in t.reshape(-1)]))


def run(case, fn):
    """fn(lp) -> scalar loss, lp a fresh leaf copy of the per-token log-probs the case differentiates."""
    try:
        loss, lp = fn()
        loss.backward()
        emit(case + ".loss", loss)
        emit(case + ".grad", lp.grad if lp.grad is not None else torch.zeros_like(lp))
    except Exception as exc:  # reported by name in the C++ test
        msg = f"{type(exc).__name__}: {exc}"[:300]
        results.append(f"{case}.error 1 {len(msg)} " + " ".join(str(float(ord(c))) for c in msg))


# ----------------------------------------------------------------------------------------------------------
# Policy gradient: Liger-Kernel's LigerFusedLinearGRPOFunction.ppo_loss_fn (pure torch, the formulas TRL's
# GRPOTrainer._compute_loss mirrors), on per-token log-probs [B, T].
# ----------------------------------------------------------------------------------------------------------
pg_mask = X["pg.mask"]
B, T = pg_mask.shape


def liger_pg(case, **kw):
    def fn():
        lp = X["pg.logprobs"].clone().requires_grad_(True)
        args = dict(per_token_logps=lp, attention_mask=pg_mask, advantages=X["pg.advantages"],
                    full_attention_mask=pg_mask, ref_per_token_logps=X["pg.ref"], old_per_token_logps=X["pg.old"])
        args.update(kw)
        loss, _ = LigerFusedLinearGRPOFunction.ppo_loss_fn(**args)
        return loss, lp
    run(case, fn)


tis = torch.exp(X["pg.old"] - X["pg.sampler"]).clamp(max=2.0)
liger_pg("liger.grpo", loss_type="grpo", epsilon_low=0.2, epsilon_high=0.2, beta=0.04)
liger_pg("liger.bnpo", loss_type="bnpo", epsilon_low=0.2, epsilon_high=0.2, beta=0.0)
liger_pg("liger.dr_grpo", loss_type="dr_grpo", epsilon_low=0.2, epsilon_high=0.2, beta=0.0, max_completion_length=T)
liger_pg("liger.dapo", loss_type="dapo", epsilon_low=0.2, epsilon_high=0.28, beta=0.0)
liger_pg("liger.dapo_num_items", loss_type="dapo", epsilon_low=0.2, epsilon_high=0.28, beta=0.0,
         num_items_in_batch=torch.tensor(71.0))
liger_pg("liger.gspo_seq_mean", loss_type="grpo", importance_sampling_level="sequence", epsilon_low=3e-4,
         epsilon_high=4e-4, beta=0.0)
liger_pg("liger.gspo_token_mean", loss_type="dapo", importance_sampling_level="sequence", epsilon_low=3e-4,
         epsilon_high=4e-4, beta=0.0)
liger_pg("liger.delta", loss_type="dapo", epsilon_low=0.2, epsilon_high=0.2, beta=0.0, delta=1.3)
liger_pg("liger.cispo", loss_type="cispo", epsilon_low=0.2, epsilon_high=1.1, beta=0.0)
liger_pg("liger.sapo", loss_type="sapo", beta=0.0, sapo_temperature_pos=1.0, sapo_temperature_neg=1.05)
liger_pg("liger.luspo", loss_type="luspo", importance_sampling_level="sequence", epsilon_low=0.2, epsilon_high=0.2,
         beta=0.0)
liger_pg("liger.vespo", loss_type="vespo", beta=0.0)
liger_pg("liger.k3_importance", loss_type="bnpo", epsilon_low=0.2, epsilon_high=0.2, beta=0.04,
         use_bias_correction_kl=True)
liger_pg("liger.tis", loss_type="bnpo", epsilon_low=0.2, epsilon_high=0.2, beta=0.04, vllm_is_ratio=tis)

# ----------------------------------------------------------------------------------------------------------
# Preference: per-token log-probs [2N, T] (chosen rows first); sequence log-probs are masked sums.
# ----------------------------------------------------------------------------------------------------------
pm = X["pref.mask"]
N = pm.shape[0] // 2
ref_seq = (X["pref.ref"] * pm).sum(1)
lengths = pm.sum(1)


def seq_of(lp):
    s = (lp * pm).sum(1)
    return s[:N], s[N:]


def liger_dpo(case, loss_type, beta=0.1, **kw):
    def fn():
        lp = X["pref.logprobs"].clone().requires_grad_(True)
        c, r = seq_of(lp)
        loss, _, _ = LigerFusedLinearDPOFunction.preference_loss_fn(
            c, r, torch.zeros(2 * N), ref_chosen_logps=ref_seq[:N], ref_rejected_logps=ref_seq[N:], beta=beta,
            loss_type=loss_type, **kw)
        return loss, lp
    run(case, fn)


for lt, kw in [("sigmoid", {}), ("hinge", {}), ("exo_pair", {"label_smoothing": 1e-3}), ("nca_pair", {}),
               ("robust", {"label_smoothing": 0.1}), ("bco_pair", {}), ("sppo_hard", {}), ("apo_zero", {}),
               ("apo_down", {}), ("discopop", {"discopop_tau": 0.05})]:
    liger_dpo("liger." + lt, lt, **kw)


def liger_simpo(case, **kw):
    def fn():
        lp = X["pref.logprobs"].clone().requires_grad_(True)
        c, r = seq_of(lp)
        loss, _, _ = LigerFusedLinearSimPOFunction.preference_loss_fn(
            c / lengths[:N], r / lengths[N:], torch.zeros(2 * N), **kw)
        return loss, lp
    run(case, fn)


liger_simpo("liger.simpo", beta=2.0, gamma=0.5, label_smoothing=0.0)
liger_simpo("liger.simpo_smoothed", beta=2.0, gamma=0.5, label_smoothing=0.1)


def liger_cpo(case, **kw):
    def fn():
        lp = X["pref.logprobs"].clone().requires_grad_(True)
        c, r = seq_of(lp)
        loss, _, _ = LigerFusedLinearCPOFunction.preference_loss_fn(c, r, torch.zeros(2 * N), **kw)
        return loss, lp
    run(case, fn)


liger_cpo("liger.cpo_alpha0", beta=0.1, label_smoothing=0.0)


def liger_kto(case):
    def fn():
        lp = X["pref.logprobs"].clone().requires_grad_(True)
        s = (lp * pm).sum(1)
        labels = X["kto.desirable"] > 0.5
        loss, _, _ = LigerFusedLinearKTOFunction.preference_loss_fn(
            s, labels, torch.zeros(2 * N), ref_log_prob_chunk=ref_seq, beta=0.1, kl=X["kto.z0"].reshape(()))
        return loss, lp
    run(case, fn)


liger_kto("liger.kto")


# TRL 1.16: DPOTrainer._compute_loss itself, on a trainer object without __init__ whose model returns the
# given per-token log-probs (0 on padding, as TRL's fused LM head returns for label -100) and whose reference
# log-probs are precomputed.
class _Accel:
    device = torch.device("cpu")
    num_processes = 1

    def gather_for_metrics(self, x):
        return x

    def gather(self, x):
        return x


def trl_dpo(case, loss_types, loss_weights=None, f_divergence="reverse_kl", alpha=0.5, label_smoothing=0.0,
            beta=0.1, dtype=torch.float64):
    def fn():
        lp = X["pref.logprobs"].clone().to(dtype).requires_grad_(True)
        pm_ = pm.to(dtype)
        ref_ = ref_seq.to(dtype)
        rows, cols = pm.shape
        completion_mask = torch.cat([torch.zeros(rows, 1), pm], dim=1).long()

        class _Model:
            training = True

            def __call__(self, **kw):
                zeros = torch.zeros(rows, cols)
                return types.SimpleNamespace(log_probs=lp * pm_, entropy=zeros, mean_logits=zeros,
                                             is_top1=torch.zeros(rows, cols, dtype=torch.bool), aux_loss=None)

        t = DPOTrainer.__new__(DPOTrainer)
        d = t.__dict__
        d.update(model=_Model(), accelerator=_Accel(), ld_alpha=None, precompute_ref_logps=True,
                 f_divergence_type=f_divergence, f_alpha_divergence_coef=alpha, loss_types=list(loss_types),
                 loss_weights=list(loss_weights or [1.0] * len(loss_types)), beta=beta,
                 label_smoothing=label_smoothing, use_weighting=False, aux_loss_enabled=False,
                 args=types.SimpleNamespace(discopop_tau=0.05, gradient_checkpointing_kwargs=None),
                 _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0,
                 _tp_size=1)
        inputs = {"input_ids": torch.zeros(rows, cols + 1, dtype=torch.long),
                  "attention_mask": torch.ones(rows, cols + 1, dtype=torch.long),
                  "completion_mask": completion_mask,
                  "ref_chosen_logps": ref_[:N], "ref_rejected_logps": ref_[N:]}
        loss = DPOTrainer._compute_loss(t, d["model"], inputs, False)
        return loss, lp
    run(case, fn)


for lt, ls in [("sigmoid", 0.0), ("hinge", 0.0), ("ipo", 0.0), ("exo_pair", 1e-3), ("nca_pair", 0.0),
               ("robust", 0.1), ("bco_pair", 0.0), ("sppo_hard", 0.0), ("aot", 0.1), ("aot_unpaired", 0.1),
               ("apo_zero", 0.0), ("apo_down", 0.0), ("discopop", 0.0), ("sigmoid_norm", 0.0)]:
    trl_dpo("trl." + lt, [lt], label_smoothing=ls)
trl_dpo("trl.rpo", ["sigmoid", "sft"], loss_weights=[1.0, 0.7])
for fd in ["forward_kl", "js_divergence", "alpha_divergence"]:
    trl_dpo("trl.sigmoid_" + fd, ["sigmoid"], f_divergence=fd, alpha=0.3)
# TRL's alpha-divergence clamps in a dtype table without float64 (KeyError): its float32 run, compared at 1e-5.
trl_dpo("trl.sigmoid_alpha_divergence_f32", ["sigmoid"], f_divergence="alpha_divergence", alpha=0.3, dtype=torch.float32)
trl_dpo("trl.sigmoid_norm_js_divergence", ["sigmoid_norm"], f_divergence="js_divergence")


# TRL 1.16: GRPOTrainer._compute_loss itself, on a trainer object without __init__ whose
# _get_per_token_logps_and_entropies returns the given per-token log-probs and entropies.
from trl.trainer.grpo_trainer import GRPOTrainer


class _GrpoAccel(_Accel):
    sync_gradients = True

    def reduce(self, x, reduction="sum"):
        return x

    def pad_across_processes(self, x, dim=0, pad_index=0):
        return x


def trl_grpo(case, loss_type, level="token", beta=0.0, eps_low=0.2, eps_high=0.2, num_items=None, delta=None,
             off_policy=None, top_entropy=1.0, bias_correction_kl=False):
    def fn():
        lp = X["pg.logprobs"].clone().requires_grad_(True)
        t = GRPOTrainer.__new__(GRPOTrainer)
        d = t.__dict__
        d.update(
            _get_per_token_logps_and_entropies=lambda *a, **k: (lp, X["pg.entropy"], None),
            model=types.SimpleNamespace(training=True), accelerator=_GrpoAccel(), aux_loss_enabled=False,
            top_entropy_quantile=top_entropy, off_policy_mask_threshold=off_policy,
            importance_sampling_level=level, beta=beta, loss_type=loss_type, epsilon_low=eps_low,
            epsilon_high=eps_high, use_vllm=False, vllm_importance_sampling_correction=False,
            _entropy_bonus_enabled=False, current_gradient_accumulation_steps=1, max_completion_length=T,
            _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
            args=types.SimpleNamespace(delta=delta, use_bias_correction_kl=bias_correction_kl,
                                       sapo_temperature_pos=1.0, sapo_temperature_neg=1.05, vespo_k_pos=2.0,
                                       vespo_lambda_pos=3.0, vespo_k_neg=3.0, vespo_lambda_neg=2.0,
                                       steps_per_generation=1))
        rows = pg_mask.shape[0]
        inputs = {"prompt_ids": torch.zeros(rows, 1, dtype=torch.long), "prompt_mask": torch.ones(rows, 1, dtype=torch.long),
                  "completion_ids": torch.zeros(rows, T, dtype=torch.long), "completion_mask": pg_mask,
                  "advantages": X["pg.advantages"], "old_per_token_logps": X["pg.old"],
                  "ref_per_token_logps": X["pg.ref"], "sampling_per_token_logps": X["pg.sampler"]}
        if num_items is not None:
            inputs["num_items_in_batch"] = torch.tensor(float(num_items))
        loss = GRPOTrainer._compute_loss(t, None, inputs)
        return loss, lp
    run(case, fn)


trl_grpo("trl.grpo", "grpo", beta=0.04)
trl_grpo("trl.bnpo", "bnpo")
trl_grpo("trl.dr_grpo", "dr_grpo")
trl_grpo("trl.dapo_num_items", "dapo", eps_high=0.28, num_items=71)
trl_grpo("trl.gspo", "grpo", level="sequence", eps_low=3e-4, eps_high=4e-4)
trl_grpo("trl.delta", "bnpo", delta=1.3)
trl_grpo("trl.cispo", "cispo", eps_high=1.1, num_items=int(pg_mask.sum()))
trl_grpo("trl.sapo", "sapo")
trl_grpo("trl.luspo", "luspo", level="sequence")
trl_grpo("trl.vespo", "vespo", num_items=int(pg_mask.sum()))
trl_grpo("trl.k3_importance", "bnpo", beta=0.04, bias_correction_kl=True)
trl_grpo("trl.off_policy_mask", "bnpo", beta=0.04, off_policy=0.05)
# ρ = 0.3: the quantile position 0.7 · 32 is not a data point (TRL takes the quantile in float32).
trl_grpo("trl.entropy_mask", "bnpo", beta=0.04, top_entropy=0.3)


# TRL 1.16: KTOTrainer._compute_loss itself, on the 2N rows as unpaired examples (labels kto.desirable),
# reference log-probs precomputed; the KL pass returns log-probs whose mean difference is z0.
from trl.trainer.kto_trainer import KTOTrainer


def trl_kto(case, loss_type, desirable_weight=1.0, undesirable_weight=1.0):
    def fn():
        lp = X["pref.logprobs"].clone().requires_grad_(True)
        rows, cols = pm.shape
        calculate_kl = loss_type == "kto"

        class _Model:
            training = True

            def __call__(self, **kw):
                zeros = torch.zeros(rows, cols)
                return types.SimpleNamespace(log_probs=lp * pm, entropy=zeros, mean_logits=zeros, aux_loss=None)

        t = KTOTrainer.__new__(KTOTrainer)
        d = t.__dict__
        z0 = X["kto.z0"].reshape(())
        d.update(model=_Model(), accelerator=_Accel(), precompute_ref_logps=True, calculate_KL=calculate_kl,
                 loss_type=loss_type, beta=0.1, desirable_weight=desirable_weight,
                 undesirable_weight=undesirable_weight, aux_loss_enabled=False,
                 _compute_kl_logps=lambda model, batch: (z0 + torch.zeros(rows)) if calculate_kl else None,
                 _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0,
                 _tp_size=1, args=types.SimpleNamespace(gradient_checkpointing_kwargs=None))
        inputs = {"input_ids": torch.zeros(rows, cols + 1, dtype=torch.long),
                  "attention_mask": torch.ones(rows, cols + 1, dtype=torch.long),
                  "completion_mask": torch.cat([torch.zeros(rows, 1), pm], dim=1).long(),
                  "label": X["kto.desirable"] > 0.5,
                  "ref_logps": ref_seq, "ref_KL_logps": torch.zeros(rows)}
        loss = KTOTrainer._compute_loss(t, d["model"], inputs, False)
        return loss, lp
    run(case, fn)


trl_kto("trl.kto", "kto", desirable_weight=1.5, undesirable_weight=0.8)
trl_kto("trl.kto_apo_zero_unpaired", "apo_zero_unpaired", desirable_weight=1.5, undesirable_weight=0.8)

with open(sys.argv[2], "w") as f:
    from importlib.metadata import version
    f.write(f"# trl {trl.__version__} liger-kernel {version('liger-kernel')} torch {torch.__version__}\n")
    f.write("\n".join(results) + "\n")
