#!/usr/bin/env python3
"""Writes quants.gguf: tensors of every type Flover reads, with what gguf-py dequantises them to.

usage: make_quants.py OUT.gguf   (needs `pip install gguf numpy`, or llama.cpp's gguf-py on PYTHONPATH)

Q8_0 and Q4_0 tensors are quantized by gguf-py from random floats; Q4_K and Q6_K blocks are random bytes with
finite float16 scales (gguf-py reads them but does not write them). For each tensor NAME the file also holds
`NAME.expected`, the float32 values of gguf.quants.dequantize, and, for Q8_0 and Q4_0, `NAME.source`, the
floats that were quantized. The metadata holds one key of every GGUF value type.
"""
import sys
import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

rng = np.random.default_rng(16)
w = gguf.GGUFWriter(sys.argv[1], "llama")
w.add_uint8("test.u8", 200); w.add_int8("test.i8", -100)
w.add_uint16("test.u16", 60000); w.add_int16("test.i16", -30000)
w.add_uint32("test.u32", 4000000000); w.add_int32("test.i32", -2000000000)
w.add_uint64("test.u64", 2**40 + 3); w.add_int64("test.i64", -(2**40))
w.add_float32("test.f32", 0.25); w.add_float64("test.f64", -1.5e300)
w.add_bool("test.bool", True); w.add_string("test.string", "h\u00e9llo")
w.add_array("test.array.i32", [1, -2, 3]); w.add_array("test.array.string", ["a", "bc", ""])


def put(name, raw, shape, qtype):
    w.add_tensor(name, raw, raw_dtype=qtype)  # raw: [rows, bytes per row]
    w.add_tensor(name + ".expected", dequantize(raw, qtype).astype(np.float32).reshape(shape))


def random_blocks(n, size, scale_offsets):
    b = rng.integers(0, 256, (n, size), dtype=np.uint8)
    for o in scale_offsets:  # finite float16 scales of moderate size
        b[:, o:o + 2] = (rng.standard_normal(n) * 0.01).astype(np.float16).view(np.uint8).reshape(n, 2)
    return b


for qtype, shape in ((T.Q8_0, (6, 96)), (T.Q4_0, (5, 64))):
    x = (rng.standard_normal(shape) * rng.uniform(0.01, 3, (shape[0], 1))).astype(np.float32)
    x[0, :32] = 0  # an all-zero block: scale 0
    x[1, 5] = 40.0  # an outlier
    x[2, 7] = 2.5 * 127 / 100  # half-way values
    put(qtype.name.lower(), quantize(x, qtype), shape, qtype)
    w.add_tensor(qtype.name.lower() + ".source", x)
put("q4_k", random_blocks(3 * 2, 144, (0, 2)).reshape(3, 2 * 144), (3, 512), T.Q4_K)
put("q6_k", random_blocks(4, 210, (208,)).reshape(2, 2 * 210), (2, 512), T.Q6_K)
f = rng.standard_normal((3, 8)).astype(np.float32)
w.add_tensor("f32", f)
w.add_tensor("f16", f.astype(np.float16))
w.add_tensor("f16.expected", f.astype(np.float16).astype(np.float32))
u = f.view(np.uint32).astype(np.uint64)
bf = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
w.add_tensor("bf16", bf, raw_shape=f.shape, raw_dtype=T.BF16)
w.add_tensor("bf16.expected", (bf.astype(np.uint32) << 16).view(np.float32))
w.add_tensor("cube", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
