#!/usr/bin/env python3
"""Writes the golden checkpoints beside this script as GGUF files, the way llama.cpp's converter does, and the
float64 references for their Q8_0 versions.

usage: to_gguf.py   (needs `pip install gguf numpy`, or llama.cpp's gguf-py on PYTHONPATH; rewrites gguf/)

Llama Q and K rows are permuted as convert_hf_to_gguf.py permutes them, GPT-2's Conv1D weights are transposed
to [out, in] as it does, and the tokenizer is a small one of the right kind (SentencePiece-style for Llama,
byte-level BPE for GPT-2). The F32, F16 and BF16 files hold the golden weights exactly, so their references are
the golden expected.json. In the Q8_0 files every matrix is quantized by gguf-py; gguf/NAME.expected.json holds
golden.py's float64 forward over the weights that gguf-py dequantises from the file.
"""
import json, os, struct
import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize
import golden

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "gguf")


def load_safetensors(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]; raw = b[8 + n + s:8 + n + e]
        if v["dtype"] == "F32": a = np.frombuffer(raw, np.float32)
        elif v["dtype"] == "F16": a = np.frombuffer(raw, np.float16).astype(np.float32)
        else: a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        out[k] = a.reshape(v["shape"])
    return out


def permute(w, n):  # llama.cpp's LlamaModel.permute
    return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n):
    return w.reshape(n, w.shape[0] // n // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def put(wr, name, a, dtype):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim == 1 or dtype == "F32":
        wr.add_tensor(name, a)
    elif dtype == "F16":
        wr.add_tensor(name, a.astype(np.float16))
    elif dtype == "BF16":  # the values are bfloat16 already: keep the upper halves
        wr.add_tensor(name, (a.view(np.uint32) >> 16).astype(np.uint16), raw_shape=a.shape, raw_dtype=T.BF16)
    else:
        wr.add_tensor(name, quantize(a, T.Q8_0), raw_dtype=T.Q8_0)


def spm_vocab(wr, V):
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)]
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["\u2581"] + ["\u2581" + c for c in letters] + list(letters)
    words += [a + b for a in letters for b in letters]
    pieces += words[:V - len(pieces)]
    wr.add_tokenizer_model("llama")
    wr.add_token_list(pieces)
    wr.add_token_scores([0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(V - 259)])
    wr.add_token_types([2, 3, 3] + [6] * 256 + [1] * (V - 259))
    wr.add_bos_token_id(1); wr.add_eos_token_id(2); wr.add_unk_token_id(0)
    wr.add_chat_template("{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}")


def bpe_vocab(wr, V):
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]; n = 0
    for b in range(256):
        if b not in bs: bs.append(b); cs.append(256 + n); n += 1
    byte_tokens = [chr(c) for _, c in sorted(zip(bs, cs))]
    letters = "abcdefghijklmnopqrstuvwxyz"
    merges, tokens = [], list(byte_tokens)
    for a in "\u0120" + letters:
        for b in letters:
            if len(tokens) < V - 1:
                merges.append(a + " " + b); tokens.append(a + b)
    tokens.append("<|endoftext|>")
    wr.add_tokenizer_model("gpt2"); wr.add_tokenizer_pre("gpt-2")
    wr.add_token_list(tokens); wr.add_token_types([1] * (V - 1) + [3]); wr.add_token_merges(merges)
    wr.add_bos_token_id(V - 1); wr.add_eos_token_id(V - 1)


def write(src, dst, dtype):
    cfg = json.load(open(os.path.join(HERE, src, "config.json")))
    W = load_safetensors(os.path.join(HERE, src, "model.safetensors"))
    arch = "llama" if cfg["model_type"] == "llama" else "gpt2"
    wr = gguf.GGUFWriter(os.path.join(OUT, dst + ".gguf"), arch)
    wr.add_name(dst); wr.add_file_type({"F32": 0, "F16": 1, "BF16": 32, "Q8_0": 7}[dtype])
    if arch == "llama":
        H, L, nh = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
        nkv = cfg["num_key_value_heads"]
        wr.add_context_length(cfg["max_position_embeddings"]); wr.add_embedding_length(H); wr.add_block_count(L)
        wr.add_feed_forward_length(cfg["intermediate_size"]); wr.add_head_count(nh); wr.add_head_count_kv(nkv)
        wr.add_rope_dimension_count(H // nh); wr.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        wr.add_rope_freq_base(cfg["rope_theta"]); spm_vocab(wr, cfg["vocab_size"])
        put(wr, "token_embd.weight", W["model.embed_tokens.weight"], dtype)
        put(wr, "output_norm.weight", W["model.norm.weight"], dtype)
        put(wr, "output.weight", W["lm_head.weight"], dtype)
        for i in range(L):
            p = f"model.layers.{i}."
            for gg, hf in (("attn_norm", "input_layernorm"), ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                           ("ffn_norm", "post_attention_layernorm"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                           ("ffn_down", "mlp.down_proj")):
                put(wr, f"blk.{i}.{gg}.weight", W[p + hf + ".weight"], dtype)
            put(wr, f"blk.{i}.attn_q.weight", permute(W[p + "self_attn.q_proj.weight"], nh), dtype)
            put(wr, f"blk.{i}.attn_k.weight", permute(W[p + "self_attn.k_proj.weight"], nkv), dtype)
    else:
        d, L = cfg["n_embd"], cfg["n_layer"]
        wr.add_context_length(cfg["n_ctx"]); wr.add_embedding_length(d); wr.add_block_count(L)
        wr.add_feed_forward_length(4 * d); wr.add_head_count(cfg["n_head"]); wr.add_layer_norm_eps(cfg["layer_norm_epsilon"])
        bpe_vocab(wr, cfg["vocab_size"])
        put(wr, "token_embd.weight", W["wte.weight"], dtype)
        put(wr, "position_embd.weight", W["wpe.weight"], dtype)
        put(wr, "output.weight", W["wte.weight"], dtype)  # the converter repeats the tied embedding
        put(wr, "output_norm.weight", W["ln_f.weight"], dtype); put(wr, "output_norm.bias", W["ln_f.bias"], dtype)
        for i in range(L):
            for gg, hf in (("attn_norm", "ln_1"), ("attn_qkv", "attn.c_attn"), ("attn_output", "attn.c_proj"),
                           ("ffn_norm", "ln_2"), ("ffn_up", "mlp.c_fc"), ("ffn_down", "mlp.c_proj")):
                w = W[f"h.{i}.{hf}.weight"]
                put(wr, f"blk.{i}.{gg}.weight", w.T if w.ndim == 2 and gg not in ("attn_norm", "ffn_norm") else w, dtype)
                put(wr, f"blk.{i}.{gg}.bias", W[f"h.{i}.{hf}.bias"], dtype)
    wr.write_header_to_file(); wr.write_kv_data_to_file(); wr.write_tensors_to_file(); wr.close()
    return cfg


def reference(src, dst):
    """golden.py's forward over the weights gguf-py reads back from dst, in Hugging Face names and layouts."""
    cfg = json.load(open(os.path.join(HERE, src, "config.json")))
    names = set(load_safetensors(os.path.join(HERE, src, "model.safetensors")))
    r = gguf.GGUFReader(os.path.join(OUT, dst + ".gguf"))
    g = {t.name: dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)]) for t in r.tensors}
    if cfg["model_type"] == "llama":
        t = {"model.embed_tokens.weight": g["token_embd.weight"], "model.norm.weight": g["output_norm.weight"],
             "lm_head.weight": g["output.weight"]}
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."; b = f"blk.{i}."
            t.update({p + "input_layernorm.weight": g[b + "attn_norm.weight"],
                      p + "post_attention_layernorm.weight": g[b + "ffn_norm.weight"],
                      p + "self_attn.q_proj.weight": unpermute(g[b + "attn_q.weight"], cfg["num_attention_heads"]),
                      p + "self_attn.k_proj.weight": unpermute(g[b + "attn_k.weight"], cfg["num_key_value_heads"]),
                      p + "self_attn.v_proj.weight": g[b + "attn_v.weight"], p + "self_attn.o_proj.weight": g[b + "attn_output.weight"],
                      p + "mlp.gate_proj.weight": g[b + "ffn_gate.weight"], p + "mlp.up_proj.weight": g[b + "ffn_up.weight"],
                      p + "mlp.down_proj.weight": g[b + "ffn_down.weight"]})
        fwd = golden.llama_forward
    else:
        t = {"wte.weight": g["token_embd.weight"], "wpe.weight": g["position_embd.weight"],
             "ln_f.weight": g["output_norm.weight"], "ln_f.bias": g["output_norm.bias"]}
        for i in range(cfg["n_layer"]):
            for gg, hf in (("attn_norm", "ln_1"), ("attn_qkv", "attn.c_attn"), ("attn_output", "attn.c_proj"),
                           ("ffn_norm", "ln_2"), ("ffn_up", "mlp.c_fc"), ("ffn_down", "mlp.c_proj")):
                w = g[f"blk.{i}.{gg}.weight"]
                t[f"h.{i}.{hf}.weight"] = w.T if w.ndim == 2 else w
                t[f"h.{i}.{hf}.bias"] = g[f"blk.{i}.{gg}.bias"]
        fwd = golden.gpt2_forward
    assert set(t) == names, set(t) ^ names
    cases = []
    for case in json.load(open(os.path.join(HERE, src, "expected.json")))["cases"]:
        ids = case["prompt_ids"]
        cont, margins = golden.greedy(fwd, t, cfg, ids, 24)
        cases.append({"prompt_ids": ids, "last_logits": [round(float(v), 6) for v in fwd(t, cfg, ids)[-1]],
                      "greedy_ids": cont, "greedy_top1_margin": [round(m, 6) for m in margins]})
    with open(os.path.join(OUT, dst + ".expected.json"), "w") as f:
        json.dump({"model": dst, "weights_dtype": "Q8_0",
                   "reference": "numpy float64 full recompute over the weights gguf-py dequantises", "cases": cases}, f, indent=1)
    print(dst, "min greedy margin", min(min(c["greedy_top1_margin"]) for c in cases))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for src, dtype in (("llama-tiny-f32", "F32"), ("llama-tiny-bf16", "BF16"), ("llama-alt-f16", "F16"),
                       ("gpt2-tiny-f32", "F32"), ("gpt2-tiny-bf16", "BF16")):
        write(src, src, dtype)
    for src in ("llama-tiny-f32", "gpt2-tiny-f32"):
        dst = src.replace("f32", "q8_0")
        write(src, dst, "Q8_0")
        reference(src, dst)
