#!/usr/bin/env python3
"""The log-probability of every prompt token given the tokens before it, for the golden checkpoints' prompts.

golden.py's float64 forward over the weights of each folder's model.safetensors gives the logits at every prompt
position; token i's log-probability is the float64 log-softmax of the logits at position i - 1, and the best 5
tokens there come with theirs.  Writes FOLDER/prompt_logprobs.json for each folder named.

usage: prompt_logprobs.py FOLDER...
"""
import json, os, struct, sys
import numpy as np
import golden

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", "float32 checkpoints only"
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(t["shape"])
    return out

TOP = 5

for folder in sys.argv[1:]:
    cfg = json.load(open(os.path.join(folder, "config.json")))
    t = read_safetensors(os.path.join(folder, "model.safetensors"))
    llama = cfg["model_type"] == "llama"
    fwd = golden.llama_forward if llama else golden.gpt2_forward
    cases = []
    for case in json.load(open(os.path.join(folder, "expected.json")))["cases"]:
        ids = case["prompt_ids"]
        if len(ids) < 2:
            continue
        logits = fwd(t, cfg, ids)  # [T, V] float64
        m = logits.max(-1, keepdims=True)
        logp = logits - (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))
        entries = []
        for i in range(1, len(ids)):
            row = logp[i - 1]
            order = sorted(range(len(row)), key=lambda j: (-row[j], j))[:TOP]
            entries.append({"logprob": float(row[ids[i]]), "top_ids": order,
                            "top_logprobs": [float(row[j]) for j in order]})
        cases.append({"prompt_ids": ids, "tokens": entries})
    with open(os.path.join(folder, "prompt_logprobs.json"), "w") as f:
        json.dump({"reference": "numpy float64 full recompute (golden.py), log-softmax of the logits at the "
                                "position before each prompt token", "top": TOP, "cases": cases}, f, indent=1)
