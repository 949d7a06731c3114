"""kaizen.losses: policy_loss (fused op and reference path) against a float64 torch re-implementation, every
option combination fused vs reference, gradcheck, opcheck, torch.compile; advantages; preference losses."""
import itertools
import math

import pytest
import torch

import kaizen
from conftest import pg_batch, reference_policy_loss
from kaizen import losses
from kaizen.losses import Objective

CASES = [
    # (Objective, reference kwargs)
    (Objective(), dict()),
    (Objective(clip="none"), dict(clip="none")),
    (Objective.dapo(), dict(clip="asymmetric", lo=0.2, hi=0.28)),
    (Objective(clip="dual", epsilon_low=0.2, epsilon_high=0.25, dual_clip_c=2.5),
     dict(clip="dual", lo=0.2, hi=0.25, c=2.5)),
    (Objective.grpo(), dict(kl="k3", beta=0.04, aggregation="seq_mean_token_mean")),
    (Objective(kl="k1", kl_coefficient=0.1), dict(kl="k1", beta=0.1)),
    (Objective(kl="k2", kl_coefficient=0.1, aggregation="seq_mean_token_sum"),
     dict(kl="k2", beta=0.1, aggregation="seq_mean_token_sum")),
    (Objective.dr_grpo(constant=16.0), dict(aggregation="seq_mean_token_sum_norm", constant=16.0)),
    (Objective.gspo(epsilon_low=0.1, epsilon_high=0.15),
     dict(ratio="sequence", clip="asymmetric", lo=0.1, hi=0.15, aggregation="seq_mean_token_mean")),
    (Objective.gmpo(), dict(ratio="geometric", eps=0.4, aggregation="seq_mean_token_mean")),
    (Objective.cispo(epsilon_low=0.5, epsilon_high=0.3), dict(clip="cispo", lo=0.5, hi=0.3)),
    (Objective.sapo(), dict(clip="sapo", aggregation="seq_mean_token_mean")),
    (Objective(entropy_coefficient=0.01), dict(ent_coef=0.01)),
]


def _run(obj, x, fused, normaliser=None):
    lp = x["lp"].clone().requires_grad_(True)
    loss, metrics = losses.policy_loss(lp, x["old"], x["adv"], x["mask"], obj, ref_logprobs=x["ref"],
                                       entropy=x["entropy"], normaliser=normaliser, fused=fused)
    (g,) = torch.autograd.grad(loss, lp)
    return loss.detach(), g, metrics


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("per_token_adv", [False, True])
def test_policy_loss_matches_float64_reference(gen, case, fused, per_token_adv):
    obj, kw = CASES[case]
    x = pg_batch(gen, per_token_adv=per_token_adv)
    loss, g, metrics = _run(obj, x, fused)
    lp = x["lp"].clone().requires_grad_(True)
    ref = reference_policy_loss(lp, x["old"], x["adv"], x["mask"], ref=x["ref"], entropy=x["entropy"], **kw)
    (g_ref,) = torch.autograd.grad(ref, lp)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-12)
    assert float(metrics["loss"]) == pytest.approx(float(loss), rel=1e-12, abs=1e-14)
    assert float(metrics["tokens"]) == float(x["mask"].sum())
    assert float(metrics["sequences"]) == x["mask"].shape[0]


def test_policy_loss_normaliser_for_gradient_accumulation(gen):
    """Two micro-batches with the global N give the full batch's loss and gradient (token-mean)."""
    x = pg_batch(gen, B=8)
    full, g_full, _ = _run(Objective.dapo(), x, None)
    n = float(x["mask"].sum())
    lp = x["lp"].clone().requires_grad_(True)
    total = 0
    for rows in (slice(0, 3), slice(3, 8)):
        loss, _ = losses.policy_loss(lp[rows], x["old"][rows], x["adv"][rows], x["mask"][rows], Objective.dapo(),
                                     normaliser=n)
        total = total + loss
    (g,) = torch.autograd.grad(total, lp)
    torch.testing.assert_close(total.detach(), full, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g, g_full, rtol=1e-12, atol=1e-14)


_VALID = [(r, c) for r, c in itertools.product(["token", "sequence", "geometric"],
                                                ["none", "symmetric", "asymmetric", "dual", "cispo", "sapo"])
          if not (r == "geometric" and c in ("dual", "cispo", "sapo")) and not (r == "sequence" and c in ("cispo", "sapo"))]


@pytest.mark.parametrize("ratio,clip", _VALID)
def test_fused_equals_reference_path_for_every_combination(gen, ratio, clip):
    """Every valid (ratio, clip, kl, aggregation): the fused op and policy_gradient::policy_loss agree in loss,
    gradient and every metric (both are kaizen's C++; this checks the runtime dispatch wires each option)."""
    x = pg_batch(gen, B=5, T=7)
    for kl, aggregation in itertools.product(["none", "k1", "k2", "k3", "k3_importance"],
                                             ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum",
                                              "seq_mean_token_sum_norm"]):
        obj = Objective(ratio=ratio, clip=clip, kl=kl, aggregation=aggregation, aggregation_constant=11.0,
                        entropy_coefficient=0.02, importance="truncate", importance_cap=1.5)
        lp = x["lp"].clone().requires_grad_(True)
        ent = x["entropy"].clone().requires_grad_(True)
        results = []
        for fused in (None, False):
            loss, metrics = losses.policy_loss(lp, x["old"], x["adv"], x["mask"], obj, ref_logprobs=x["ref"],
                                               entropy=ent, sampler_logprobs=x["sampler"], fused=fused)
            grads = torch.autograd.grad(loss, (lp, ent))
            results.append((loss.detach(), grads, torch.stack([metrics[k] for k in losses.METRIC_NAMES])))
        (l1, g1, m1), (l2, g2, m2) = results
        torch.testing.assert_close(l1, l2, rtol=1e-10, atol=1e-12, msg=lambda s: f"{obj}: {s}")
        torch.testing.assert_close(g1[0], g2[0], rtol=1e-9, atol=1e-12, msg=lambda s: f"{obj}: {s}")
        torch.testing.assert_close(g1[1], g2[1], rtol=1e-9, atol=1e-12, msg=lambda s: f"{obj}: {s}")
        torch.testing.assert_close(m1, m2, rtol=1e-9, atol=1e-12, msg=lambda s: f"{obj}: {s}")


@pytest.mark.parametrize("obj", [Objective(), Objective.grpo(), Objective.gspo(epsilon_low=0.1, epsilon_high=0.1),
                                 Objective.cispo(), Objective.sapo(), Objective(entropy_coefficient=0.05)])
def test_policy_objective_gradcheck(gen, obj):
    x = pg_batch(gen, B=3, T=4, drift=0.05)

    def f(lp, ent):
        loss, _ = losses.policy_loss(lp, x["old"], x["adv"], x["mask"], obj, ref_logprobs=x["ref"], entropy=ent)
        return loss

    lp = x["lp"].clone().requires_grad_(True)
    ent = x["entropy"].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (lp, ent), eps=1e-7, atol=1e-7)


@pytest.mark.parametrize("with_optional", [False, True])
def test_policy_objective_opcheck(gen, with_optional):
    x = pg_batch(gen, B=3, T=5)
    obj = Objective.grpo(entropy_coefficient=0.1 if with_optional else 0.0)
    modes, params = obj.codes()
    lp = x["lp"].clone().requires_grad_(True)
    ent = x["entropy"].clone().requires_grad_(True) if with_optional else None
    torch.library.opcheck(torch.ops.kaizen.policy_objective.default,
                          (lp, x["old"], x["ref"], x["adv"], x["mask"], ent, None, modes, params,
                           17.0 if with_optional else None))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_policy_loss_under_torch_compile_fullgraph(gen, backend):
    """token log-probs -> policy objective -> loss, compiled with fullgraph=True: same loss and gradient as
    eager. aot_eager checks the tracing (fake implementations, autograd registration); inductor also
    generates code around the custom ops."""
    B, T, H, V = 3, 5, 8, 32
    hidden = torch.randn(B, T, H, generator=gen)
    weight = torch.randn(V, H, generator=gen, requires_grad=True)
    targets = torch.randint(0, V, (B, T), generator=gen)
    old = -torch.rand(B, T, generator=gen) * 4
    ref = old + 0.1 * torch.randn(B, T, generator=gen)
    adv = torch.randn(B, generator=gen)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 3:] = False
    obj = Objective.grpo(entropy_coefficient=0.01)

    def step(h, w):
        lp, ent = kaizen.ops.token_logprobs(h @ w.t(), targets, temperature=0.9, with_entropy=True)
        loss, metrics = losses.policy_loss(lp, old, adv, mask, obj, ref_logprobs=ref, entropy=ent)
        return loss, metrics["clip_fraction_low"]

    eager, _ = step(hidden, weight)
    (g_eager,) = torch.autograd.grad(eager, weight)
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend=backend)
    out, _ = compiled(hidden, weight)
    (g_comp,) = torch.autograd.grad(out, weight)
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_comp, g_eager, rtol=1e-5, atol=1e-6)


def test_reference_only_options_route_to_reference_path(gen):
    x = pg_batch(gen)
    lp = x["lp"].clone().requires_grad_(True)
    loss, _ = losses.policy_loss(lp, x["old"], x["adv"], x["mask"], Objective(ratio_cap=1.3))
    ref = reference_policy_loss(lp, x["old"], x["adv"], x["mask"])
    assert torch.isfinite(loss) and loss.requires_grad
    with pytest.raises(ValueError, match="reference path only"):
        losses.policy_loss(lp, x["old"], x["adv"], x["mask"], Objective(ratio_cap=1.3), fused=True)
    # with no ratio above the cap the capped loss equals the uncapped one
    loss_big_cap, _ = losses.policy_loss(lp, x["old"], x["adv"], x["mask"], Objective(ratio_cap=1e9))
    torch.testing.assert_close(loss_big_cap.detach(), ref.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fused", [None, False])
def test_policy_loss_bad_input_raises_kaizen_message(gen, fused):
    x = pg_batch(gen)
    prefix = "ops::policy_objective" if fused is None else "policy_loss"
    mask = x["mask"].clone()
    mask[2] = False
    with pytest.raises(ValueError, match=f"{prefix}: expected every row to have a valid token, got row 2"):
        losses.policy_loss(x["lp"], x["old"], x["adv"], mask, fused=fused)
    with pytest.raises(ValueError, match=prefix) as info:
        losses.policy_loss(x["lp"], x["old"][:, :-1], x["adv"], x["mask"], fused=fused)
    assert "old_logprobs" in str(info.value)
    with pytest.raises(ValueError, match=f"{prefix}: expected `old_logprobs` of dtype"):
        losses.policy_loss(x["lp"], x["old"].float(), x["adv"], x["mask"], fused=fused)
    with pytest.raises(ValueError, match="ref_logprobs"):
        losses.policy_loss(x["lp"], x["old"], x["adv"], x["mask"], Objective.grpo(), fused=fused)
    with pytest.raises(ValueError, match="GeometricRatio clips each token"):
        losses.policy_loss(x["lp"], x["old"], x["adv"], x["mask"], Objective(ratio="geometric", clip="dual"),
                           fused=fused)
    with pytest.raises(ValueError, match="dual-clip constant c > 1"):
        losses.policy_loss(x["lp"], x["old"], x["adv"], x["mask"], Objective(clip="dual", dual_clip_c=0.5),
                           fused=fused)
    bad = x["lp"].clone()
    bad[0, 0] = math.nan
    with pytest.raises(ValueError, match=f"{prefix}: expected finite `logprobs`, got nan at row 0, column 0"):
        losses.policy_loss(bad, x["old"], x["adv"], x["mask"], fused=fused)
    with pytest.raises(ValueError, match="expected clip in"):
        losses.policy_loss(x["lp"], x["old"], x["adv"], x["mask"], clip="ppo", fused=fused)


# ---------------------------------------------------------------------------------------------------------
# Advantages
# ---------------------------------------------------------------------------------------------------------
def _groups(gen, B=12, G=4):
    rewards = torch.randn(B, generator=gen, dtype=torch.float64)
    ids = torch.arange(B) // G
    perm = torch.randperm(B, generator=gen)
    return rewards[perm], ids[perm]


def test_group_advantages_match_reference(gen):
    r, ids = _groups(gen)
    r[ids == 2] = 0.5  # a constant group: exactly 0
    assert sorted(set(ids.tolist())) == [0, 1, 2]
    mean = torch.stack([r[ids == g].mean() for g in range(3)])[ids]
    std = torch.stack([r[ids == g].std() for g in range(3)])[ids]
    grpo = losses.grpo_advantages(r, ids)
    ref = torch.where(ids == 2, torch.zeros_like(r), (r - mean) / (std + 1e-6))
    torch.testing.assert_close(grpo, ref, rtol=1e-12, atol=1e-12)
    assert torch.all(grpo[ids == 2] == 0)
    torch.testing.assert_close(losses.dr_grpo_advantages(r, ids), torch.where(ids == 2, 0.0, r - mean))
    torch.testing.assert_close(losses.advantages(r, ids, "grpo"), grpo)
    biased = losses.group_advantages(r, ids, std="biased", epsilon=0.0)
    std_b = torch.stack([r[ids == g].std(unbiased=False) for g in range(3)])[ids]
    torch.testing.assert_close(biased, torch.where(ids == 2, 0.0, (r - mean) / std_b))
    batch = losses.group_advantages(r, ids, scale="batch")
    torch.testing.assert_close(batch, torch.where(ids == 2, 0.0, (r - mean) / (r.std() + 1e-6)))


def test_rloo_advantages_leave_one_out(gen):
    r, ids = _groups(gen)
    out = losses.rloo_advantages(r, ids)
    for i in range(len(r)):
        others = r[(ids == ids[i]) & (torch.arange(len(r)) != i)]
        assert float(out[i]) == pytest.approx(float(r[i] - others.mean()), abs=1e-12)
    torch.testing.assert_close(losses.advantages(r, ids, "rloo"), out)


def test_reinforce_pp_advantages(gen):
    B, T = 4, 6
    token_rewards = torch.randn(B, T, generator=gen, dtype=torch.float64)
    mask = torch.arange(T)[None] < torch.tensor([6, 3, 5, 2])[:, None]
    out = losses.reinforce_pp_advantages(token_rewards, mask, gamma=0.9)
    returns = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        run = 0.0
        for t in reversed(range(T)):
            if mask[b, t]:
                run = float(token_rewards[b, t]) + 0.9 * run
                returns[b, t] = run
    v = returns[mask]
    ref = torch.where(mask, (returns - v.mean()) / torch.sqrt(v.var() + 1e-8), torch.zeros_like(returns))
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    rewards, ids = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64), torch.tensor([0, 0, 1, 1])
    base = losses.advantages(rewards, ids, "reinforce++", mask=mask)
    centred = losses.broadcast_to_tokens(losses.dr_grpo_advantages(rewards, ids), mask)
    torch.testing.assert_close(base, losses.masked_whiten(centred, mask))


def test_advantages_bad_input():
    with pytest.raises(ValueError, match="group_advantages.*group_ids"):
        losses.grpo_advantages(torch.zeros(4, dtype=torch.float64), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least 2"):
        losses.grpo_advantages(torch.zeros(3, dtype=torch.float64), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="finite"):
        losses.grpo_advantages(torch.tensor([0.0, math.inf]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="expected method"):
        losses.advantages(torch.zeros(2), torch.tensor([0, 0]), "ppo")


# ---------------------------------------------------------------------------------------------------------
# Preference losses
# ---------------------------------------------------------------------------------------------------------
def _pairs(gen, N=6):
    c = -torch.rand(N, generator=gen, dtype=torch.float64) * 20
    r = -torch.rand(N, generator=gen, dtype=torch.float64) * 20
    rc = c + torch.randn(N, generator=gen, dtype=torch.float64)
    rr = r + torch.randn(N, generator=gen, dtype=torch.float64)
    lc = torch.randint(1, 30, (N,), generator=gen).double()
    lr = torch.randint(1, 30, (N,), generator=gen).double()
    return c, r, rc, rr, lc, lr


@pytest.mark.parametrize("name", ["dpo", "cdpo", "robust", "ipo", "ipo_norm", "hinge", "simpo"])
def test_preference_losses_match_reference(gen, name):
    c0, r0, rc, rr, lc, lr = _pairs(gen)

    def ref(c, r):
        h = (c - rc) - (r - rr)
        beta = 0.1
        if name == "dpo":
            return -torch.nn.functional.logsigmoid(beta * h), beta * (c - rc), beta * (r - rr)
        if name == "cdpo":
            z = beta * h
            return (-(0.9) * torch.nn.functional.logsigmoid(z) - 0.1 * torch.nn.functional.logsigmoid(-z),
                    beta * (c - rc), beta * (r - rr))
        if name == "robust":
            z = beta * h
            return ((-(0.9) * torch.nn.functional.logsigmoid(z) + 0.1 * torch.nn.functional.logsigmoid(-z)) / 0.8,
                    beta * (c - rc), beta * (r - rr))
        if name == "ipo":
            return (h - 1 / (2 * 0.1)) ** 2, 0.1 * (c - rc), 0.1 * (r - rr)
        if name == "ipo_norm":
            hn = (c / lc - rc / lc) - (r / lr - rr / lr)
            return (hn - 1 / (2 * 0.1)) ** 2, 0.1 * (c / lc - rc / lc), 0.1 * (r / lr - rr / lr)
        if name == "hinge":
            return torch.relu(1 - beta * h), beta * (c - rc), beta * (r - rr)
        if name == "simpo":
            cr, rw = 2.0 * c / lc, 2.0 * r / lr
            return -torch.nn.functional.logsigmoid(cr - rw - 0.5), cr, rw

    def run(c, r):
        if name == "dpo":
            return losses.dpo_loss(c, r, rc, rr)
        if name == "cdpo":
            return losses.dpo_loss(c, r, rc, rr, label_smoothing=0.1)
        if name == "robust":
            return losses.robust_dpo_loss(c, r, rc, rr, label_smoothing=0.1)
        if name == "ipo":
            return losses.ipo_loss(c, r, rc, rr, tau=0.1)
        if name == "ipo_norm":
            return losses.ipo_loss(c, r, rc, rr, tau=0.1, length_normalize=True, chosen_lengths=lc,
                                   rejected_lengths=lr)
        if name == "hinge":
            return losses.hinge_loss(c, r, rc, rr)
        return losses.simpo_loss(c, r, lc, lr)

    c, r = c0.clone().requires_grad_(True), r0.clone().requires_grad_(True)
    loss, metrics = run(c, r)
    gc, gr = torch.autograd.grad(loss, (c, r))
    c2, r2 = c0.clone().requires_grad_(True), r0.clone().requires_grad_(True)
    per, cr, rw = ref(c2, r2)
    gc2, gr2 = torch.autograd.grad(per.mean(), (c2, r2))
    torch.testing.assert_close(loss.detach(), per.mean().detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(metrics["per_example"].detach(), per.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(metrics["chosen_rewards"], cr.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(metrics["rejected_rewards"], rw.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(metrics["accuracy"], (cr > rw).double().mean())
    torch.testing.assert_close(gc, gc2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gr, gr2, rtol=1e-12, atol=1e-12)


def test_preference_gradcheck(gen):
    c0, r0, rc, rr, lc, lr = _pairs(gen, N=4)
    c, r = c0.clone().requires_grad_(True), r0.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: losses.dpo_loss(a, b, rc, rr)[0], (c, r))
    assert torch.autograd.gradcheck(lambda a, b: losses.simpo_loss(a, b, lc, lr)[0], (c, r))


def test_preference_bad_input():
    z = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="dpo_loss: expected as many rejected as chosen"):
        losses.dpo_loss(z, torch.zeros(2, dtype=torch.float64), z, z)
    with pytest.raises(ValueError, match="dpo_loss: expected beta > 0"):
        losses.dpo_loss(z, z, z, z, beta=0.0)
    with pytest.raises(ValueError, match="simpo_loss.*chosen_lengths > 0"):
        losses.simpo_loss(z, z, z, z + 1)
    with pytest.raises(ValueError, match="finite"):
        losses.hinge_loss(torch.tensor([math.nan, 0.0, 0.0], dtype=torch.float64), z, z, z)
