#!/usr/bin/env python3
"""SHA-256 of the float32 little-endian bytes that gguf-py dequantises each tensor of each file to."""
import hashlib, json, sys, numpy as np, gguf
from gguf.quants import dequantize
out = {}
for path in sys.argv[1:]:
    r = gguf.GGUFReader(path)
    out[path.split("/")[-1]] = {t.name: {"type": t.tensor_type.name,
        "sha256": hashlib.sha256(dequantize(t.data, t.tensor_type).astype("<f4").tobytes()).hexdigest()} for t in r.tensors}
json.dump(out, sys.stdout, indent=1)
