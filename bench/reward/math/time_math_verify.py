#!/usr/bin/env python3
"""Times Hugging Face math-verify (parse gold, parse output, verify) per item over a corpus.
Each item is timed `repeats` times (argv[2], default 3) and its best time kept, as the C++ side keeps the
best of its iterations, so scheduling noise is removed the same way on both sides (any caching inside
math-verify only helps it). Prints "median_us p99_us" on one line, or KAIZEN_SKIP when math_verify is
missing."""
import json
import statistics
import sys
import time

try:
    from math_verify import parse, verify
except Exception as error:  # noqa: BLE001
    print(f"KAIZEN_SKIP {error}")
    sys.exit(0)
items = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
times = [float("inf")] * len(items)
for _ in range(repeats):
    for i, item in enumerate(items):
        start = time.perf_counter()
        try:
            verify(parse("$" + item["gold"] + "$"), parse(item["text"]))
        except Exception:  # noqa: BLE001
            pass
        times[i] = min(times[i], (time.perf_counter() - start) * 1e6)
times.sort()
print(f"{statistics.median(times):.3f} {times[min(len(times) - 1, int(0.99 * len(times)))]:.3f}")
