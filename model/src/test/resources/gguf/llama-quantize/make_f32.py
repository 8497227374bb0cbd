#!/usr/bin/env python3
"""A one-layer Llama in F32 whose rows are whole K-quant super-blocks (256), for llama-quantize. usage: make_f32.py OUT.gguf"""
import sys, numpy as np, gguf
rng = np.random.default_rng(16)
w = gguf.GGUFWriter(sys.argv[1], "llama")
H, F, V, L, nh = 256, 256, 64, 1, 4
w.add_name("lq"); w.add_context_length(64); w.add_embedding_length(H); w.add_block_count(L)
w.add_feed_forward_length(F); w.add_head_count(nh); w.add_head_count_kv(nh); w.add_rope_dimension_count(H // nh)
w.add_layer_norm_rms_eps(1e-5); w.add_file_type(0)
w.add_tokenizer_model("llama"); w.add_token_list(["<unk>", "<s>", "</s>"] + [f"<t{i}>" for i in range(V - 3)])
w.add_token_scores([0.0] * V); w.add_token_types([2, 3, 3] + [1] * (V - 3))
g = lambda *s: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)
w.add_tensor("token_embd.weight", g(V, H)); w.add_tensor("output_norm.weight", np.ones(H, np.float32)); w.add_tensor("output.weight", g(V, H))
for i in range(L):
    w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(H, np.float32)); w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(H, np.float32))
    for n in ("attn_q", "attn_k", "attn_v", "attn_output"): w.add_tensor(f"blk.{i}.{n}.weight", g(H, H))
    w.add_tensor(f"blk.{i}.ffn_gate.weight", g(F, H)); w.add_tensor(f"blk.{i}.ffn_up.weight", g(F, H)); w.add_tensor(f"blk.{i}.ffn_down.weight", g(H, F))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
