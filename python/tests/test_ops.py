"""kaizen.ops: token_logprobs against a float64 torch reference, gradcheck, opcheck, torch.compile, errors."""
import pytest
import torch

import kaizen
from kaizen import ops


def reference_token_logprobs(logits, targets, temperature=1.0):
    z = logits.double() / temperature
    logp = torch.log_softmax(z, dim=-1)
    lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return lp, entropy


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5), (torch.bfloat16, 2e-5),
                                       (torch.float16, 2e-5)])
@pytest.mark.parametrize("shape", [(7, 33), (2, 5, 1000)])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_matches_float64_reference(gen, dtype, tol, shape, temperature):
    logits = (torch.randn(*shape, generator=gen, dtype=torch.float64) * 3).to(dtype)
    targets = torch.randint(0, shape[-1], shape[:-1], generator=gen)
    lp, h = ops.token_logprobs(logits, targets, temperature=temperature, with_entropy=True)
    # the reference sees the same (rounded) logits, so the comparison measures kaizen's float32 arithmetic only
    ref_lp, ref_h = reference_token_logprobs(logits, targets, temperature)
    assert lp.shape == targets.shape and h.shape == targets.shape
    assert lp.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    torch.testing.assert_close(lp.double(), ref_lp, rtol=tol, atol=tol)
    torch.testing.assert_close(h.double(), ref_h, rtol=tol, atol=tol)
    only_lp = ops.token_logprobs(logits, targets, temperature=temperature)
    torch.testing.assert_close(only_lp, lp, rtol=0, atol=0)


@pytest.mark.parametrize("with_entropy", [False, True])
def test_token_logprobs_gradient_matches_reference(gen, with_entropy):
    logits = torch.randn(3, 4, 50, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (3, 4), generator=gen)
    w1, w2 = torch.randn(3, 4, generator=gen, dtype=torch.float64), torch.randn(3, 4, generator=gen, dtype=torch.float64)
    out = ops.token_logprobs(logits, targets, temperature=0.8, with_entropy=with_entropy)
    lp, h = out if with_entropy else (out, None)
    loss = (lp * w1).sum() + ((h * w2).sum() if with_entropy else 0)
    (g,) = torch.autograd.grad(loss, logits)
    x = logits.detach().clone().requires_grad_(True)
    ref_lp, ref_h = reference_token_logprobs(x, targets, 0.8)
    ref_loss = (ref_lp * w1).sum() + ((ref_h * w2).sum() if with_entropy else 0)
    (g_ref,) = torch.autograd.grad(ref_loss, x)
    torch.testing.assert_close(g, g_ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("with_entropy", [False, True])
def test_token_logprobs_gradcheck(gen, with_entropy):
    logits = torch.randn(4, 11, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (4,), generator=gen)

    def f(x):
        out = ops.token_logprobs(x, targets, temperature=1.3, with_entropy=with_entropy)
        return out if with_entropy else (out,)

    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("with_entropy", [False, True])
def test_token_logprobs_opcheck(gen, with_entropy):
    logits = torch.randn(2, 3, 17, generator=gen, requires_grad=True)
    targets = torch.randint(0, 17, (2, 3), generator=gen)
    torch.library.opcheck(torch.ops.kaizen.token_logprobs.default, (logits, targets, 0.9, with_entropy))


def test_token_logprobs_backward_opcheck(gen):
    logits = torch.randn(5, 13, generator=gen)
    targets = torch.randint(0, 13, (5,), generator=gen)
    lp, lse, h = torch.ops.kaizen.token_logprobs(logits, targets, 1.0, True)
    g = torch.randn(5, generator=gen)
    torch.library.opcheck(torch.ops.kaizen.token_logprobs_backward.default, (logits, targets, 1.0, lse, h, g, g))
    torch.library.opcheck(torch.ops.kaizen.token_logprobs_backward.default, (logits, targets, 1.0, lse, h, g, None))


def test_token_logprobs_under_torch_compile_fullgraph(gen):
    hidden = torch.randn(2, 6, 16, generator=gen)
    weight = torch.randn(40, 16, generator=gen, requires_grad=True)
    targets = torch.randint(0, 40, (2, 6), generator=gen)

    def f(h, w):
        lp, ent = ops.token_logprobs(h @ w.t(), targets, temperature=0.9, with_entropy=True)
        return -(lp.mean()) + 0.01 * ent.mean()

    eager = f(hidden, weight)
    (g_eager,) = torch.autograd.grad(eager, weight)
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    out = compiled(hidden, weight)
    (g_comp,) = torch.autograd.grad(out, weight)
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(g_comp, g_eager)


@pytest.mark.parametrize("bad,message", [
    (dict(targets=torch.zeros(3, dtype=torch.int64)), "expected targets of shape"),
    (dict(targets=torch.zeros(4, dtype=torch.int32)), "expected int64 targets"),
    (dict(targets=torch.full((4,), 9, dtype=torch.int64)), "expected target ids in [0, 9)"),
    (dict(logits=torch.zeros(4, 9, dtype=torch.int64)), "expected logits of dtype"),
    (dict(logits=torch.zeros(9)), "expected logits [N, V] or [B, T, V]"),
    (dict(temperature=0.0), "expected a finite temperature > 0"),
])
def test_token_logprobs_bad_input_raises_kaizen_message(bad, message):
    args = dict(logits=torch.zeros(4, 9), targets=torch.zeros(4, dtype=torch.int64), temperature=1.0)
    args.update(bad)
    with pytest.raises(ValueError, match="ops::token_logprobs") as info:
        ops.token_logprobs(args["logits"], args["targets"], temperature=args["temperature"])
    assert message in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_token_logprobs_refuses_cuda_without_kernels():
    # this build registers CPU kernels only: the dispatcher refuses CUDA tensors (no silent device copy)
    with pytest.raises(NotImplementedError, match="CUDA"):
        ops.token_logprobs(torch.zeros(2, 3, device="cuda"), torch.zeros(2, dtype=torch.int64, device="cuda"))
