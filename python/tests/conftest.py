"""Shared fixtures and float64 references for the kaizen Python tests."""
import pytest

torch = pytest.importorskip("torch", reason="KAIZEN_SKIP: torch is not installed")
kaizen = pytest.importorskip("kaizen", reason="KAIZEN_SKIP: the kaizen package is not installed")


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def pg_batch(gen, B=6, T=9, dtype=torch.float64, per_token_adv=False, drift=0.3):
    """Random per-token policy-gradient inputs with ragged rows and junk (finite) padding."""
    lp = -torch.rand(B, T, generator=gen, dtype=torch.float64) * 3 - 0.05
    old = lp + drift * torch.randn(B, T, generator=gen, dtype=torch.float64)
    ref = lp + 0.2 * torch.randn(B, T, generator=gen, dtype=torch.float64)
    sampler = old + 0.1 * torch.randn(B, T, generator=gen, dtype=torch.float64)
    entropy = torch.rand(B, T, generator=gen, dtype=torch.float64) * 2
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    lengths[0] = T
    mask = torch.arange(T)[None, :] < lengths[:, None]
    adv = torch.randn(B, T, generator=gen, dtype=torch.float64) if per_token_adv else \
        torch.randn(B, generator=gen, dtype=torch.float64)
    junk = torch.full((B, T), 7.0, dtype=torch.float64)
    lp, old, ref, sampler = (torch.where(mask, x, junk) for x in (lp, old, ref, sampler))
    cast = lambda x: x.to(dtype)  # noqa: E731
    return dict(lp=cast(lp), old=cast(old), ref=cast(ref), sampler=cast(sampler), entropy=cast(entropy),
                mask=mask, adv=cast(adv))


def reference_policy_loss(lp, old, adv, mask, ref=None, entropy=None, ratio="token", clip="symmetric", eps=0.2,
                          lo=0.2, hi=0.28, c=3.0, tau_pos=1.0, tau_neg=1.05, kl="none", beta=0.0,
                          aggregation="token_mean", constant=4096.0, ent_coef=0.0, normaliser=None):
    """A pure-torch float64 re-implementation of kaizen's policy_loss formulas (options.hpp), written from the
    formulas, not from the C++ code."""
    m = mask.to(lp.dtype)
    valid = mask.bool()
    z = torch.zeros_like(lp)
    lp = torch.where(valid, lp, z)
    old = torch.where(valid, old, z)
    A = adv[:, None].expand_as(lp) if adv.dim() == 1 else adv
    A = torch.where(valid, A, z)
    n = m.sum(1)
    if ratio == "token":
        r = torch.exp(lp - old)
    elif ratio == "sequence":
        s = torch.exp(((lp - old) * m).sum(1) / n)
        r = s.detach()[:, None] * torch.exp(lp - lp.detach())
    elif ratio == "geometric":
        d = lp - old
        dc = torch.clamp(d, -eps if clip == "symmetric" else -lo, eps if clip == "symmetric" else hi)
        if clip == "none":
            dc = d
        dt = torch.where(A >= 0, torch.minimum(d, dc), torch.maximum(d, dc))
        g = torch.exp((dt * m).sum(1) / n)
        r = g.detach()[:, None] * torch.exp(dt - dt.detach())
    if ratio == "geometric":
        obj = r * A
    elif clip == "none":
        obj = r * A
    elif clip in ("symmetric", "asymmetric", "dual"):
        l_, h_ = (eps, eps) if clip == "symmetric" else (lo, hi)
        obj = torch.minimum(r * A, torch.clamp(r, 1 - l_, 1 + h_) * A)
        if clip == "dual":
            obj = torch.where(A < 0, torch.maximum(obj, c * A), obj)
    elif clip == "cispo":
        w = torch.clamp(r, 1 - lo, 1 + hi).detach()
        obj = w * A * torch.exp(lp - lp.detach())
    elif clip == "sapo":
        tau = torch.where(A > 0, torch.full_like(A, tau_pos), torch.full_like(A, tau_neg))
        obj = 4.0 / tau * torch.sigmoid(tau * (r - 1)) * A
    per_token = -obj
    if kl != "none":
        d = torch.where(valid, ref, z) - lp
        k = {"k1": -d, "k2": d * d / 2, "k3": torch.exp(d) - d - 1}[kl]
        per_token = per_token + beta * k
    if ent_coef:
        per_token = per_token - ent_coef * torch.where(valid, entropy, z)
    B = lp.shape[0]
    if aggregation == "token_mean":
        return (per_token * m).sum() / (normaliser if normaliser is not None else m.sum())
    if aggregation == "seq_mean_token_mean":
        return ((per_token * m).sum(1) / n).sum() / (normaliser if normaliser is not None else B)
    if aggregation == "seq_mean_token_sum":
        return (per_token * m).sum() / (normaliser if normaliser is not None else B)
    return (per_token * m).sum() / ((normaliser if normaliser is not None else B) * constant)
