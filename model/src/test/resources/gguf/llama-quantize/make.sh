#!/usr/bin/env bash
# Files quantized by llama.cpp's own llama-quantize (commit c392e50), and the SHA-256 of what gguf-py dequantises
# each of their tensors to. Needs gguf-py (pip install gguf numpy) and a llama.cpp build (BIN, default the one
# ../shared/peers/llama.cpp/bench.sh builds).
set -euo pipefail
cd "$(dirname "$0")"
BIN=${BIN:-$HOME/.cache/flover-peers/llama.cpp-build/bin}
tmp=$(mktemp -d)
python3 make_f32.py "$tmp/f32.gguf"
for t in Q8_0 Q4_0 Q4_K_M; do LD_LIBRARY_PATH=$BIN "$BIN/llama-quantize" "$tmp/f32.gguf" "$t.gguf" "$t" >/dev/null; done
python3 hashes.py Q8_0.gguf Q4_0.gguf Q4_K_M.gguf > dequantised.sha256.json
rm -rf "$tmp"
