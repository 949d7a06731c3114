#!/usr/bin/env python3
"""Times Hugging Face math-verify (parse gold, parse output, verify) per item over a corpus.
Prints "median_us p99_us" on one line, or KAIZEN_SKIP when math_verify is missing."""
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
times = []
for item in items:
    start = time.perf_counter()
    try:
        verify(parse("$" + item["gold"] + "$"), parse(item["text"]))
    except Exception:  # noqa: BLE001
        pass
    times.append((time.perf_counter() - start) * 1e6)
times.sort()
print(f"{statistics.median(times):.3f} {times[min(len(times) - 1, int(0.99 * len(times)))]:.3f}")
