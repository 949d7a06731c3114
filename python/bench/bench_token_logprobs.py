"""Binding overhead and speed of kaizen.ops.token_logprobs on the CPU.

    python python/bench/bench_token_logprobs.py [--repeats R]

Per shape, the median time per call (µs) of:
  kaizen     kaizen.ops.token_logprobs(logits, targets)            (Python -> torch.ops dispatcher -> C++)
  raw_op     torch.ops.kaizen.token_logprobs(...) directly        (no Python wrapper)
  cpp        kaizen::ops::token_logprobs called in a C++ loop (timed in C++, no Python: the baseline)
  torch      torch.log_softmax(logits, -1).gather(-1, t[..., None])
and the ratios kaizen/torch and kaizen/cpp. On a tiny shape ([1, 8]) the time is the per-call overhead; on large
shapes the kernel dominates. "overhead" = kaizen − cpp: what Python and the dispatcher add per call.
"""
import argparse
import statistics
import time

import torch

import kaizen


def timeit(fn, repeats, inner):
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'N x V':>14} {'kaizen µs':>10} {'raw op µs':>10} {'C++ µs':>10} {'torch µs':>10} {'overhead µs':>12} "
          f"{'kaizen/torch':>13} {'kaizen/C++':>11}")
    for n, v, inner in [(1, 8, 2000), (64, 128, 500), (256, 32000, 3), (1024, 32000, 1)]:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(n, v, generator=g)
        targets = torch.randint(0, v, (n,), generator=g)
        k = timeit(lambda: kaizen.ops.token_logprobs(logits, targets), args.repeats, inner)
        raw = timeit(lambda: torch.ops.kaizen.token_logprobs(logits, targets, 1.0, False), args.repeats, inner)
        cpp = (statistics.median(kaizen._C._time_token_logprobs_cpp(logits, targets, inner)
                                 for _ in range(args.repeats))
               if hasattr(kaizen._C, "_time_token_logprobs_cpp") else float("nan"))
        t = timeit(lambda: torch.log_softmax(logits, -1).gather(-1, targets[:, None]), args.repeats, inner)
        print(f"{f'{n} x {v}':>14} {k:10.1f} {raw:10.1f} {cpp:10.1f} {t:10.1f} {k - cpp:12.1f} {k / t:13.2f} "
              f"{k / cpp:11.2f}")


if __name__ == "__main__":
    main()
