"""llama.cpp peer of bench/models/bench_llamacpp.cpp: SmolLM2-135M-Instruct sampling tokens/s in llama.cpp
(llama-cpp-python's in-process API), on an all-F32 GGUF of the same weights kaizen dequantises (written once with
tests/remote/make_f32_gguf.py), the same prompt token ids, temperature 1, no top-k / top-p / min-p / repeat
penalty, end-of-generation tokens banned so every row makes exactly N tokens, no log-probs.

llama-cpp-python's high-level API runs one sequence at a time (its Llama object has one sequence; batching several
sequences needs llama.cpp's C++ server with parallel slots, not built here), so a batch of B prompts is B
sequential generations; a batch of 1 is the like-for-like single-sequence figure.

Usage: python llamacpp_peer.py prepare <source.gguf> <f32.gguf>
       python llamacpp_peer.py time <f32.gguf> <prompts.json> <out.json> <new_tokens> <threads> <iterations>
Exit 77 when llama_cpp (or gguf) is missing."""
import json
import math
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))


def prepare(src, dst):
    try:
        sys.path.insert(0, os.path.join(here, "..", "..", "tests", "remote"))
        import make_f32_gguf
    except ImportError:
        sys.exit(77)
    if not os.path.exists(dst):
        make_f32_gguf.convert(src, dst)


def timed(gguf, prompts, out, new_tokens, threads, iterations):
    try:
        import llama_cpp
    except ImportError:
        sys.exit(77)
    longest = max(len(p) for p in prompts)
    llm = llama_cpp.Llama(model_path=gguf, n_ctx=longest + new_tokens + 8, n_threads=threads, n_threads_batch=threads,
                          n_batch=512, logits_all=False, verbose=False, seed=1)
    eog = [i for i in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(llm._model.vocab, i)]
    bias = {i: -math.inf for i in eog}

    def generate(p, seed):
        llm.reset()
        llm.set_seed(seed)
        r = llm.create_completion(p, max_tokens=new_tokens, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
                                  repeat_penalty=1.0, logit_bias=bias, seed=seed)
        return r["usage"]["completion_tokens"]

    generate(prompts[0], 0)  # warm-up
    result = {"eog_banned": eog}
    for name, rows in (("batch", prompts), ("single", prompts[:1])):
        best = None
        for it in range(iterations):
            t0 = time.perf_counter()
            tokens = sum(generate(p, 17 * it + i) for i, p in enumerate(rows))
            dt = time.perf_counter() - t0
            best = dt if best is None or dt < best else best
        result[name] = {"rows": len(rows), "tokens": tokens, "seconds": best, "tokens_per_s": tokens / best}
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    else:
        with open(sys.argv[3]) as f:
            ps = json.load(f)
        timed(sys.argv[2], ps, sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
