#!/usr/bin/env python3
"""Runs Hugging Face math-verify and kaizen's MathVerifier (the math_corpus_eval program) over the
same labelled corpus and prints both accuracy tables and math-verify's time per item.

usage: compare_math_verify.py <math_corpus_eval> <corpus.jsonl> [--timing-out FILE]
Prints KAIZEN_SKIP and exits 0 when math_verify is not importable. Exits 1 when kaizen is not more
accurate than math-verify or has more false accepts (the goal of issue 19)."""
import json
import statistics
import subprocess
import sys
import time


def table(name, verdicts, labels):
    n = len(labels)
    right = sum(v == l for v, l in zip(verdicts, labels))
    fa = sum(v and not l for v, l in zip(verdicts, labels))
    fr = sum((not v) and l for v, l in zip(verdicts, labels))
    print(f"| {name:<12} | {n:5d} | {100.0 * right / n:7.2f}% | {fa:13d} | {fr:13d} |")
    return right, fa, fr


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    try:
        from math_verify import parse, verify
    except Exception as error:  # noqa: BLE001
        print(f"KAIZEN_SKIP: math_verify not importable ({error})")
        return 0
    eval_exe, corpus = sys.argv[1], sys.argv[2]
    items = [json.loads(line) for line in open(corpus, encoding="utf-8") if line.strip()]
    labels = [bool(item["label"]) for item in items]

    mv, times = [], []
    for item in items:
        start = time.perf_counter()
        try:
            gold = parse("$" + item["gold"] + "$", parsing_timeout=None)
            answer = parse(item["text"], parsing_timeout=None)
            ok = bool(verify(gold, answer, timeout_seconds=None))
        except Exception:  # noqa: BLE001
            ok = False
        times.append(time.perf_counter() - start)
        mv.append(ok)

    out = subprocess.run([eval_exe, corpus], capture_output=True, text=True, check=True).stdout.splitlines()
    kz = {}
    for line in out:
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0].isdigit():
            kz[int(parts[0])] = parts[1] == "1"
    kaizen = [kz[item["id"]] for item in items]

    print("| verifier     | items | accuracy | false accepts | false rejects |")
    print("|--------------|-------|----------|---------------|---------------|")
    k_right, k_fa, _ = table("kaizen", kaizen, labels)
    m_right, m_fa, _ = table("math-verify", mv, labels)
    times_us = sorted(t * 1e6 for t in times)
    p99 = times_us[min(len(times_us) - 1, int(0.99 * len(times_us)))]
    print(f"math-verify time per item: median {statistics.median(times_us):.1f} us, p99 {p99:.1f} us")
    kinds = {}
    for item, k, m, l in zip(items, kaizen, mv, labels):
        row = kinds.setdefault(item["kind"], [0, 0, 0])
        row[0] += 1
        row[1] += k == l
        row[2] += m == l
    print("| kind | items | kaizen right | math-verify right |")
    for kind, (n, k, m) in sorted(kinds.items()):
        print(f"| {kind} | {n} | {k} | {m} |")
    if "--timing-out" in sys.argv:
        with open(sys.argv[sys.argv.index("--timing-out") + 1], "w") as f:
            json.dump({"median_us": statistics.median(times_us), "p99_us": p99}, f)
    if k_right <= m_right or k_fa > m_fa:
        print("FAIL: kaizen must be more accurate than math-verify with no more false accepts")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
