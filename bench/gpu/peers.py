"""Peers of kaizen's kernels timed on the same card as bench_kernels_gpu: torch eager, torch.compile and
Liger-Kernel (when importable). Appends JSON records {shape, name, ms, extra_gib, floor_ms, fraction} to
--out; floors use the device-to-device copy and bf16 GEMM rate measured here, as in the C++ bench."""
import argparse
import json

import torch


def measure(fn, iterations=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    times = []
    for _ in range(iterations):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2], (torch.cuda.max_memory_allocated() - before) / 2**30


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--vocab", type=int, nargs="+", default=[151936, 32000])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = open(args.out, "a")
    n, h = args.tokens, args.hidden
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    try:
        import liger_kernel  # noqa: F401
        from liger_kernel.ops.grpo_loss import fused_selective_log_softmax
        from liger_kernel.transformers.grpo_loss import triton_grpo_loss
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
        have_liger = True
    except Exception as error:  # noqa: BLE001
        print(f"Liger-Kernel not available: {error}")
        have_liger = False

    for v in args.vocab:
        shape = f"N={n} V={v} H={h}"
        torch.manual_seed(0)
        logits = (torch.randn(n, v, device="cuda", dtype=torch.bfloat16) * 3).contiguous()
        ids = torch.randint(0, v, (n,), device="cuda")
        dst = torch.empty_like(logits)
        copy_ms, _ = measure(lambda: dst.copy_(logits))
        del dst
        byte = logits.numel() * 2
        fwd_floor = copy_ms / 2
        fb_floor = 3 * copy_ms / 2
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        gemm_ms, _ = measure(lambda: a @ a, 10)
        del a
        floor3 = 3 * (2 * n * h * v) / (2 * 8192**3 / (gemm_ms * 1e-3)) * 1e3

        def record(name, fn, floor, iterations=20):
            try:
                ms, gib = measure(fn, iterations)
            except Exception as error:  # noqa: BLE001
                print(f"{name}: failed: {str(error).splitlines()[0][:160]}")
                return
            frac = floor / ms if floor else 0.0
            print(f"{shape} {name:<60} {ms:9.3f} ms {gib:7.2f} GiB  {frac:5.2f} of floor")
            out.write(json.dumps(dict(shape=shape, name=name, ms=ms, extra_gib=gib, floor_ms=floor, fraction=frac)) + "\n")
            out.flush()

        print(f"{shape}: copy {2 * byte / copy_ms / 1e9:.2f} TB/s, bf16 GEMM {2 * 8192**3 / gemm_ms / 1e9:.0f} TFLOP/s")

        def lse_gather(x, t):
            x = x.float()
            return x.gather(-1, t.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(x, -1)

        compiled = torch.compile(lse_gather)
        x = logits.clone().requires_grad_(True)

        def fb(f):
            def run():
                x.grad = None
                f(x, ids).sum().backward()
            return run

        with torch.no_grad():
            record("torch eager log_softmax+gather fwd (py)",
                   lambda: torch.log_softmax(logits.float(), -1).gather(-1, ids.unsqueeze(-1)), fwd_floor)
            record("torch.compile logsumexp-gather fwd", lambda: compiled(logits, ids), fwd_floor)
        record("torch.compile logsumexp-gather fwd+bwd", fb(compiled), fb_floor)
        if have_liger:
            with torch.no_grad():
                record("Liger fused_selective_log_softmax fwd",
                       lambda: fused_selective_log_softmax(logits.view(1, n, v), ids[: n - 1].view(1, n - 1),
                                                           temperature=1.0), fwd_floor)
            adv = torch.randn(1, device="cuda")
            old = torch.zeros(1, n - 1, device="cuda")

            def grpo():
                x.grad = None
                loss = triton_grpo_loss(x.view(1, n, v), old, None, ids[: n - 1].view(1, n - 1), adv,
                                        temperature=1.0, beta=0.0, inplace=True, reduce=True)[0]
                loss.backward()
            record("Liger triton_grpo_loss fwd+bwd", grpo, fb_floor)
        del x
        torch.cuda.empty_cache()

        hidden = (torch.randn(n, h, device="cuda", dtype=torch.bfloat16) * 0.05).requires_grad_(True)
        weight = (torch.randn(v, h, device="cuda", dtype=torch.bfloat16) * 0.05).requires_grad_(True)

        def flce_eager():
            hidden.grad = weight.grad = None
            lse_gather(hidden @ weight.t(), ids).sum().backward()
        record("torch eager matmul+logsumexp-gather fwd+bwd (py)", flce_eager, floor3, 5)
        if have_liger:
            def flce_liger():
                hidden.grad = weight.grad = None
                liger_fused_linear_cross_entropy(hidden, weight, ids, reduction="none").sum().backward()
            record("Liger fused_linear_cross_entropy(none) fwd+bwd", flce_liger, floor3, 5)
        del hidden, weight, logits
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
