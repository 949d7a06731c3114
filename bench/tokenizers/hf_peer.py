"""Peer measurement for bench_tokenizers: Hugging Face `tokenizers` encode throughput, single-threaded.

    python hf_peer.py <out_dir>

Writes the tokenizers (tests/tokenizers/make_fixtures.py, once) and the benchmark documents into out_dir,
times `Tokenizer.encode(doc, add_special_tokens=False)` over every document (best of 5 passes after a warm-up
pass, so both sides run with a warm word cache) and writes hf_peer.json: {family: MB/s (wall clock),
family_cpu: MB/s (CPU time of the encoding thread)}. Exits 77 when a
package is missing.
"""
import json
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tests", "tokenizers"))

try:
    import tokenizers
except Exception as e:  # pragma: no cover
    print(f"missing package: {e}")
    sys.exit(77)

from corpus import corpus  # noqa: E402
import make_fixtures  # noqa: E402

FILES = {"smollm2": "smollm2/tokenizer.json", "qwen2": "qwen2.json", "llama3": "llama3.json"}


def main():
    out = sys.argv[1]
    fixtures = os.path.join(out, "fixtures")
    if not os.path.exists(os.path.join(fixtures, "done")):
        sys.argv = [sys.argv[0], fixtures]
        make_fixtures.main()
        open(os.path.join(fixtures, "done"), "w").write("ok\n")
    entries = [e for e in corpus(4000, seed=5, decomposed=False)]
    docs = ["\n".join(entries[i:i + 40]) for i in range(0, len(entries), 40)]
    with open(os.path.join(out, "bench_docs.json"), "w", encoding="utf-8") as f:
        json.dump(docs, f, ensure_ascii=False)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    results = {"bytes": nbytes, "documents": len(docs)}
    for family, rel in FILES.items():
        tok = tokenizers.Tokenizer.from_file(os.path.join(fixtures, rel))
        for d in docs:  # warm-up
            tok.encode(d, add_special_tokens=False)
        best = float("inf")
        best_cpu = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            c0 = time.thread_time()
            for d in docs:
                tok.encode(d, add_special_tokens=False)
            best_cpu = min(best_cpu, time.thread_time() - c0)
            best = min(best, time.perf_counter() - t0)
        results[family] = nbytes / best / 1e6
        # CPU time of this thread: on a loaded machine wall time also counts the time other processes
        # held the core; the C++ side reports its CPU time too (Google Benchmark's cpu_time).
        results[family + "_cpu"] = nbytes / best_cpu / 1e6
        print(f"hf tokenizers {tokenizers.__version__} {family}: {results[family]:.2f} MB/s wall, "
              f"{results[family + '_cpu']:.2f} MB/s CPU time")
    with open(os.path.join(out, "hf_peer.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
