"""peft's side of the LoRA conformance test (tests/models/test_lora.cpp).

usage: lora_peft.py load <base_dir> <adapter_dir> <ids.json> <out.f32>
           loads the transformers model kaizen's save_pretrained wrote in <base_dir>, puts the adapter kaizen
           wrote in <adapter_dir> on it with peft.PeftModel.from_pretrained, checks that every tensor of
           adapter_model.safetensors landed in the model (bit for bit), and writes the float32 logits of
           ids.json ([[...], ...], one row per sequence) to <out.f32>, row-major [B, T, V].
       lora_peft.py make <base_dir> <adapter_dir> <config.json> <ids.json> <out.f32>
           builds a peft LoRA adapter of config.json (LoraConfig keyword arguments; B random, not zero) on
           the same model, saves it into <adapter_dir> with peft's save_pretrained, and writes its logits.
(exit 77 and KAIZEN_SKIP when a package is missing)
"""
import importlib.util
import json
import sys


def need(*modules):
    for m in modules:
        if importlib.util.find_spec(m) is None:
            print(f"KAIZEN_SKIP: python package {m} is missing")
            sys.exit(77)


def logits_of(model, ids_path, out):
    import torch
    with open(ids_path) as f:
        ids = torch.tensor(json.load(f), dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float().contiguous()
    with open(out, "wb") as f:
        f.write(logits.numpy().tobytes())


def base_model(folder):
    import torch
    import transformers
    torch.set_num_threads(2)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    return model


def load(base_dir, adapter_dir, ids_path, out):
    need("torch", "transformers", "safetensors", "peft")
    import peft
    import torch
    from safetensors.torch import load_file
    model = peft.PeftModel.from_pretrained(base_model(base_dir), adapter_dir)
    model.eval()
    # PeftModel.from_pretrained only warns about keys it could not place: check each tensor arrived.
    state = dict(model.named_parameters())
    saved = load_file(adapter_dir + "/adapter_model.safetensors")
    for name, t in saved.items():
        live = name.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
        if live not in state:
            print(f"lora_peft.py: peft did not place {name} (no parameter {live})")
            sys.exit(1)
        if not torch.equal(state[live].detach().float(), t.float()):
            print(f"lora_peft.py: {name} differs after loading")
            sys.exit(1)
    lora_live = [n for n in state if ".lora_" in n]
    if len(lora_live) != len(saved):
        print(f"lora_peft.py: the model has {len(lora_live)} LoRA tensors, the file {len(saved)}")
        sys.exit(1)
    logits_of(model, ids_path, out)


def make(base_dir, adapter_dir, config_path, ids_path, out):
    need("torch", "transformers", "safetensors", "peft")
    import peft
    import torch
    with open(config_path) as f:
        kwargs = json.load(f)
    torch.manual_seed(kwargs.pop("seed", 0))
    config = peft.LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **kwargs)
    model = peft.get_peft_model(base_model(base_dir), config)
    model.eval()
    model.save_pretrained(adapter_dir)
    logits_of(model, ids_path, out)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "load":
        load(*sys.argv[2:])
    elif len(sys.argv) == 7 and sys.argv[1] == "make":
        make(*sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
