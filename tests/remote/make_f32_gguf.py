"""Writes an all-F32 copy of a GGUF model: every tensor dequantised with the gguf package, every metadata key
copied (general.file_type set to ALL_F32). Used by tests/remote and bench/models/bench_llamacpp.py so llama.cpp
computes in float32 on the same weights kaizen dequantises.
Usage: python make_f32_gguf.py <source.gguf> <target.gguf>   (exit 77 when gguf or numpy is missing)"""
import os
import sys

try:
    import numpy as np
    import gguf
except ImportError:
    sys.exit(77)

def convert(src, dst):
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    tmp = dst + ".tmp"
    writer = gguf.GGUFWriter(tmp, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if key == "general.file_type":
            value = int(gguf.LlamaFileType.ALL_F32)
        writer.add_key_value(key, value, vtype, sub_type=sub)
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        writer.add_tensor(t.name, np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, dst)


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2])
