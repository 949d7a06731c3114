"""kaizen.ops: fused_linear_logprobs, sample_tokens and group_stats against the C++ calls (kaizen._C.*_reference
run ops::* directly) and independent torch references; gradcheck, opcheck, torch.compile, kaizen's messages."""
import math

import pytest
import torch

import kaizen
from kaizen import _C, ops


def reference_logprobs(logits, targets, temperature=1.0):
    logp = torch.log_softmax(logits.double() / temperature, dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1), -(logp.exp() * logp).sum(-1)


# --- fused_linear_logprobs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk_size", [0, 3])
@pytest.mark.parametrize("with_entropy", [False, True])
def test_fused_linear_equals_the_cpp_call(gen, dtype, chunk_size, with_entropy):
    # shapes chosen so chunk 3 gives ragged chunks and several vocabulary slices in the backward
    hidden = torch.randn(2, 5, 16, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(True)
    weight = (torch.randn(300, 16, generator=gen, dtype=torch.float64) * 0.3).to(dtype).requires_grad_(True)
    targets = torch.randint(0, 300, (2, 5), generator=gen)
    w_lp = torch.randn(2, 5, generator=gen)
    w_h = torch.randn(2, 5, generator=gen)

    def run(f):
        h, w = hidden.detach().clone().requires_grad_(True), weight.detach().clone().requires_grad_(True)
        lp, ent = f(h, w)
        loss = (lp * w_lp.to(lp.dtype)).sum() + ((ent * w_h.to(ent.dtype)).sum() if with_entropy else 0)
        gh, gw = torch.autograd.grad(loss, (h, w))
        return lp.detach(), None if ent is None else ent.detach(), gh, gw

    def ours(h, w):
        out = ops.fused_linear_logprobs(h, w, targets, temperature=0.8, with_entropy=with_entropy,
                                        chunk_size=chunk_size)
        return out if with_entropy else (out, None)

    got = run(ours)
    cpp = run(lambda h, w: _C.fused_linear_logprobs_reference(h, w, targets, 0.8, with_entropy, chunk_size))
    for a, b in zip(got, cpp):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=0, atol=0)  # same kernels, same chunking: bit-equal
    assert got[0].shape == targets.shape and got[0].dtype == (torch.float64 if dtype == torch.float64
                                                              else torch.float32)


def test_fused_linear_matches_float64_logits_reference(gen):
    hidden = torch.randn(7, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (7,), generator=gen)
    lp, ent = ops.fused_linear_logprobs(hidden, weight, targets, temperature=1.3, with_entropy=True, chunk_size=2)
    ref_lp, ref_ent = reference_logprobs(hidden @ weight.t(), targets, 1.3)
    torch.testing.assert_close(lp, ref_lp, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ent, ref_ent, rtol=1e-12, atol=1e-12)
    g = torch.autograd.grad((lp - 0.3 * ent).sum(), (hidden, weight))
    g_ref = torch.autograd.grad((ref_lp - 0.3 * ref_ent).sum(), (hidden, weight))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("with_entropy", [False, True])
def test_fused_linear_gradcheck(gen, with_entropy):
    hidden = torch.randn(5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(9, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 9, (5,), generator=gen)

    def f(h, w):
        out = ops.fused_linear_logprobs(h, w, targets, temperature=0.7, with_entropy=with_entropy, chunk_size=2)
        return out if with_entropy else (out,)

    assert torch.autograd.gradcheck(f, (hidden, weight), eps=1e-6, atol=1e-8)


def test_fused_linear_frozen_weight_or_hidden(gen):
    hidden = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    weight = torch.randn(20, 8, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, 20, (4,), generator=gen)
    h = hidden.clone().requires_grad_(True)
    (gh,) = torch.autograd.grad(ops.fused_linear_logprobs(h, weight, targets).sum(), h)
    w = weight.clone().requires_grad_(True)
    (gw,) = torch.autograd.grad(ops.fused_linear_logprobs(hidden, w, targets).sum(), w)
    h2, w2 = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    ref_gh, ref_gw = torch.autograd.grad(reference_logprobs(h2 @ w2.t(), targets)[0].sum(), (h2, w2))
    torch.testing.assert_close(gh, ref_gh, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(gw, ref_gw, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("with_entropy", [False, True])
def test_fused_linear_opcheck(gen, with_entropy):
    hidden = torch.randn(2, 3, 8, generator=gen, requires_grad=True)
    weight = torch.randn(30, 8, generator=gen, requires_grad=True)
    targets = torch.randint(0, 30, (2, 3), generator=gen)
    torch.library.opcheck(torch.ops.kaizen.fused_linear_logprobs.default,
                          (hidden, weight, targets, 0.9, with_entropy, 4))


def test_fused_linear_backward_opcheck(gen):
    hidden = torch.randn(6, 8, generator=gen)
    weight = torch.randn(30, 8, generator=gen)
    targets = torch.randint(0, 30, (6,), generator=gen)
    _, lse, ent = torch.ops.kaizen.fused_linear_logprobs(hidden, weight, targets, 1.0, True, 4)
    g = torch.randn(6, generator=gen)
    for need in [(True, True), (True, False), (False, True)]:
        torch.library.opcheck(torch.ops.kaizen.fused_linear_logprobs_backward.default,
                              (hidden, weight, targets, 1.0, 4, lse, ent, g, g, *need))


def test_fused_linear_under_torch_compile_fullgraph(gen):
    hidden = torch.randn(2, 6, 16, generator=gen, requires_grad=True)
    weight = torch.randn(40, 16, generator=gen, requires_grad=True)
    targets = torch.randint(0, 40, (2, 6), generator=gen)

    def f(h, w):
        lp, ent = ops.fused_linear_logprobs(torch.tanh(h), w, targets, temperature=0.9, with_entropy=True,
                                            chunk_size=5)
        return -(lp.mean()) + 0.01 * ent.mean()

    eager = f(hidden, weight)
    g_eager = torch.autograd.grad(eager, (hidden, weight))
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    out = compiled(hidden, weight)
    g_comp = torch.autograd.grad(out, (hidden, weight))
    torch.testing.assert_close(out, eager)
    for a, b in zip(g_comp, g_eager):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bad,message", [
    (dict(weight=torch.zeros(9, 5)), "expected weight [V, 4]"),
    (dict(weight=torch.zeros(9, 4, dtype=torch.float64)), "expected the weight in the hidden dtype"),
    (dict(hidden=torch.zeros(3, 4, dtype=torch.int64)), "expected hidden of dtype"),
    (dict(hidden=torch.zeros(4)), "expected hidden [N, H] or [B, T, H]"),
    (dict(targets=torch.zeros(2, dtype=torch.int64)), "expected targets of shape"),
    (dict(targets=torch.full((3,), 9, dtype=torch.int64)), "expected target ids in [0, 9)"),
    (dict(targets=torch.zeros(3, dtype=torch.int32)), "expected int64 targets"),
    (dict(temperature=-1.0), "expected a finite temperature > 0"),
    (dict(chunk_size=-2), "expected chunk_size >= 0"),
])
def test_fused_linear_bad_input_raises_kaizen_message(bad, message):
    args = dict(hidden=torch.zeros(3, 4), weight=torch.zeros(9, 4), targets=torch.zeros(3, dtype=torch.int64),
                temperature=1.0, chunk_size=0)
    args.update(bad)
    with pytest.raises(ValueError, match="ops::fused_linear_logprobs") as info:
        ops.fused_linear_logprobs(**args)
    assert message in str(info.value)


# --- sample_tokens -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [dict(), dict(temperature=0.7, top_k=5), dict(top_p=0.8),
                                    dict(temperature=1.5, top_k=20, top_p=0.9, min_p=0.05)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_sample_tokens_equals_the_cpp_call(gen, params, dtype):
    logits = (torch.randn(16, 100, generator=gen) * 2).to(dtype)
    full = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    full.update(params)
    got = ops.sample_tokens(logits, seed=42, **params)
    cpp = _C.sample_tokens_reference(logits, full["temperature"], full["top_k"], full["top_p"], full["min_p"], 42)
    for a, b in zip(got, cpp):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    ids, lp_filtered, lp_tempered = got
    assert ids.dtype == torch.int64 and ids.shape == (16,)
    # tempered log-probs: log softmax(x / T)[id] (fixed-point masses: ~1e-6)
    ref = torch.log_softmax(logits.double() / full["temperature"], -1).gather(-1, ids[:, None]).squeeze(-1)
    torch.testing.assert_close(lp_tempered.double(), ref, rtol=0, atol=2e-5)
    assert (lp_filtered >= lp_tempered - 1e-6).all()  # renormalised over fewer tokens
    if full["top_k"]:
        kth = torch.topk(logits.double(), full["top_k"], -1).values[:, -1]
        assert (logits.double().gather(-1, ids[:, None]).squeeze(-1) >= kth).all()


def test_sample_tokens_distribution_matches_filtered_softmax():
    # 40000 rows of the same logits: the empirical frequencies against the filtered, renormalised softmax
    logits = torch.tensor([2.0, 1.5, 1.0, 0.0, -1.0, -3.0]).repeat(40000, 1)
    T, k, p = 0.9, 4, 0.9
    ids, lp_filtered, _ = ops.sample_tokens(logits, temperature=T, top_k=k, top_p=p, seed=7)
    probs = torch.softmax(logits[0].double() / T, -1)
    # top-k = 4 keeps ids 0..3; top-p keeps j while the mass of more probable kept tokens is < 0.9
    kept = probs[:k] / probs[:k].sum()
    keep = torch.cumsum(kept, 0) - kept < p
    target = torch.where(keep, kept, torch.zeros_like(kept))
    target = target / target.sum()
    freq = torch.bincount(ids, minlength=6).double() / ids.numel()
    assert freq[k:].sum() == 0
    sd = torch.sqrt(target * (1 - target) / ids.numel())
    assert ((freq[:k] - target).abs() <= 5 * sd + 1e-12).all(), (freq, target)
    torch.testing.assert_close(lp_filtered.double(), target.log()[ids].double(), rtol=0, atol=2e-5)


def test_sample_tokens_seed_and_generator_reproducible(gen):
    logits = torch.randn(8, 50, generator=gen)
    a = ops.sample_tokens(logits, seed=3)
    b = ops.sample_tokens(logits, seed=3)
    assert torch.equal(a[0], b[0])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(ops.sample_tokens(logits, generator=g1)[0], ops.sample_tokens(logits, generator=g2)[0])
    ones = ops.sample_tokens(logits, top_k=1, seed=11)[0]
    assert torch.equal(ones, logits.argmax(-1))
    single = ops.sample_tokens(logits[0], seed=3)
    assert single[0].shape == () and int(single[0]) == int(a[0][0])


def test_sample_tokens_opcheck_and_compile(gen):
    logits = torch.randn(4, 30, generator=gen)
    torch.library.opcheck(torch.ops.kaizen.sample_tokens.default, (logits, 0.8, 5, 0.9, 0.0, 17))

    def f(x):
        ids, lp, _ = ops.sample_tokens(x * 2, temperature=0.8, top_k=5, top_p=0.9, seed=17)
        return ids, lp.sum()

    torch._dynamo.reset()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(logits)
    want = f(logits)
    assert torch.equal(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


@pytest.mark.parametrize("kwargs,message", [
    (dict(top_p=0.0), "SamplingParams: top_p must be in (0, 1]"),
    (dict(temperature=0.0), "SamplingParams: temperature must be > 0"),
    (dict(top_k=-1), "SamplingParams: top_k must be >= 0"),
    (dict(min_p=1.0), "SamplingParams: min_p must be in [0, 1)"),
    (dict(logits=torch.zeros(2, 3, 4)), "ops::sample_tokens: expected logits [B, V] or [V]"),
    (dict(logits=torch.zeros(2, 4, dtype=torch.int64)), "ops::sample_tokens: expected logits of dtype"),
    (dict(logits=torch.zeros(2, 0)), "ops::sample_tokens: expected a vocabulary of at least 1"),
])
def test_sample_tokens_bad_input_raises_kaizen_message(kwargs, message):
    logits = kwargs.pop("logits", torch.zeros(2, 4))
    with pytest.raises(ValueError) as info:
        ops.sample_tokens(logits, seed=0, **kwargs)
    assert message in str(info.value)


# --- group_stats -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("scale", [True, False])
def test_group_stats_matches_torch_reference(gen, unbiased, scale):
    sizes = [4, 2, 7, 3]
    values = torch.randn(sum(sizes), generator=gen, dtype=torch.float64)
    offsets = torch.tensor([0] + list(torch.tensor(sizes).cumsum(0)), dtype=torch.int64)
    mean, std, adv = ops.group_stats(values, offsets, unbiased=unbiased, epsilon=1e-4, scale=scale)
    assert mean.dtype == std.dtype == adv.dtype == torch.float32
    v32 = values.float().double()  # the op reads float32 values, accumulates in float64
    for g, (a, b) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())):
        x = v32[a:b]
        mu, sd = x.mean(), x.std(unbiased=unbiased)
        assert mean[g].item() == pytest.approx(mu.item(), rel=1e-6, abs=1e-7)
        assert std[g].item() == pytest.approx(sd.item(), rel=1e-6, abs=1e-7)
        want = (x - mu) / (sd + 1e-4) if scale else x - mu
        torch.testing.assert_close(adv[a:b].double(), want, rtol=1e-6, atol=1e-6)


def test_group_stats_group_size_and_hand_values():
    # rewards of two groups of 4: [1, 0, 0, 1] (mean 0.5, unbiased std sqrt(1/3)) and [1, 1, 1, 1] (std 0)
    values = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    mean, std, adv = ops.group_stats(values, group_size=4, epsilon=0.0)
    torch.testing.assert_close(mean, torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(std, torch.tensor([math.sqrt(1 / 3), 0.0]))
    a = 0.5 / math.sqrt(1 / 3)
    assert adv[:4].tolist() == pytest.approx([a, -a, -a, a], rel=1e-6)
    _, _, adv_eps = ops.group_stats(values, group_size=4)
    assert adv_eps[4:].tolist() == [0.0] * 4


def test_group_stats_opcheck_and_compile(gen):
    values = torch.randn(12, generator=gen)
    offsets = torch.tensor([0, 3, 8, 12])
    torch.library.opcheck(torch.ops.kaizen.group_stats.default, (values, offsets, True, 1e-6, True))

    def f(r):
        _, _, adv = ops.group_stats(r * 2, offsets)
        return adv.sum() + adv.abs().max()

    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(f, fullgraph=True, backend="aot_eager")(values), f(values))


@pytest.mark.parametrize("values,offsets,kwargs,message", [
    (torch.zeros(4), torch.tensor([0, 1, 4]), {}, "expected every group to have at least 2 members"),
    (torch.zeros(4), torch.tensor([0, 2, 3]), {}, "expected offsets from 0 to 4"),
    (torch.zeros(4), torch.tensor([0, 2, 4], dtype=torch.int32), {}, "expected int64 offsets"),
    (torch.zeros(2, 2), torch.tensor([0, 4]), {}, "expected 1-D floating values"),
    (torch.tensor([1.0, float("nan")]), torch.tensor([0, 2]), {}, "expected finite values"),
    (torch.zeros(4), torch.tensor([0, 4]), dict(epsilon=-1.0), "expected epsilon >= 0"),
])
def test_group_stats_bad_input_raises_kaizen_message(values, offsets, kwargs, message):
    with pytest.raises(ValueError, match="ops::group_stats") as info:
        ops.group_stats(values, offsets, **kwargs)
    assert message in str(info.value)
    with pytest.raises(ValueError, match="group_size"):
        ops.group_stats(torch.zeros(5), group_size=2)
