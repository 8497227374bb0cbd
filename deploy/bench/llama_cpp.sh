#!/usr/bin/env bash
# Flover beside llama.cpp on the very same weights, on this machine, in one run; prints both engines' figures and
# the ratios Flover / llama.cpp.
#
#   deploy/bench/llama_cpp.sh LLAMA_CPP_SRC [MODEL] [THREADS]
#
# LLAMA_CPP_SRC  a llama.cpp source tree, or the git directory of a snapshot of ggerganov/llama.cpp (its files,
#                large GGUF test models left out, are checked out once into ~/.cache/flover-peers)
# MODEL          a Hugging Face Llama checkpoint in F32, F16 or BF16 (default: the 110m shape in F32, written once
#                by ./flover make-model into ~/.cache/flover-peers/models), or a .gguf file, which both engines read
# THREADS        threads for both engines (default: all cores)
#
# Run it from the Flover checkout. It builds llama-bench and llama-batched-bench once (cmake, a C++ compiler),
# writes the checkpoint as GGUF with llama.cpp's gguf-py (python3 with numpy and sentencepiece), then runs each pair of matching
# measurements one after the other:
#   llama-bench -p 512 -n 128        prompt of 512 tokens; 128 tokens decoded from an empty context
#   ./flover bench-engine --prompt-len 512 --decode-steps 128 --batches 1           the mean of 5 runs, as llama-bench
#   llama-batched-bench -npp 128 -ntg 128 -npl 4,16,32,64     B sequences, each a 128-token prompt then 128 steps
#   ./flover bench-engine --prompt-len 0 --decode-prompt-len 128 --decode-steps 128 --batches 4,16,32,64 \
#       --repetitions 1                                           one run, as llama-batched-bench
# Figures move with whatever else runs on the machine (check uptime first): compare the ratios of one run only.
set -euo pipefail
SRC=${1:?usage: llama_cpp.sh LLAMA_CPP_SRC [MODEL] [THREADS]}
CACHE=${FLOVER_PEERS_CACHE:-$HOME/.cache/flover-peers}
THREADS=${3:-$(nproc)}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$CACHE"
[ -x ./flover ] || { echo "llama_cpp.sh: run it from the Flover checkout (no ./flover here)" >&2; exit 2; }

if [ -f "$SRC/CMakeLists.txt" ]; then TREE=$SRC; else
  TREE=$CACHE/llama.cpp-src
  if [ ! -f "$TREE/CMakeLists.txt" ]; then
    # A snapshot may lack the blobs of its large test models: check out everything else.
    mkdir -p "$TREE"
    git --git-dir="$SRC" ls-tree -r --name-only HEAD | grep -v '\.gguf$' >"$CACHE/files.txt"
    git --git-dir="$SRC" --work-tree="$TREE" checkout HEAD --pathspec-from-file="$CACHE/files.txt" -- 2>/dev/null \
      || git --git-dir="$SRC" --work-tree="$TREE" checkout -f HEAD -- $(cat "$CACHE/files.txt")
  fi
fi
BIN=$CACHE/llama.cpp-build/bin
if [ ! -x "$BIN/llama-batched-bench" ]; then
  echo "building llama.cpp (minutes on 2 cores)..." >&2
  cmake -S "$TREE" -B "$CACHE/llama.cpp-build" -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$CACHE/llama.cpp-build" -j"$(nproc)" --target llama-bench llama-batched-bench >/dev/null
fi

MODEL=${2:-$CACHE/models/llama-110m-f32}
if [[ $MODEL == *.gguf ]]; then
  # A GGUF file (a quantized one, say): both engines read the very same file.
  GGUF=$MODEL
  DT=$(basename "$(dirname "$MODEL")")/$(basename "$MODEL")
else
  [ -f "$MODEL/config.json" ] || ./flover make-model --arch llama --preset 110m --dtype f32 --out "$MODEL" >&2
  DT=$(python3 -c "import json,sys;print({'float32':'f32','bfloat16':'bf16','float16':'f16'}.get(json.load(open(sys.argv[1]+'/config.json')).get('torch_dtype','float32'),'f32'))" "$MODEL")
  GGUF=$CACHE/$(basename "$MODEL")-$DT.gguf
  TO_GGUF=${TO_GGUF:-$HERE/../../../shared/peers/llama.cpp/to_gguf.py}
  # gguf-py needs numpy and sentencepiece: the venv the shared peers script makes has both.
  PY=python3
  [ -x "$CACHE/venv/bin/python" ] && PY=$CACHE/venv/bin/python
  [ -f "$GGUF" ] || "$PY" "$TO_GGUF" "$TREE" "$MODEL" "$GGUF" "$DT" >&2
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "== $(uptime) ==" >&2
echo "== llama.cpp ($(git -C "$TREE" log -1 --format=%h 2>/dev/null || echo '?'), $THREADS threads, $(basename "$GGUF")) ==" >&2
"$BIN/llama-bench" -m "$GGUF" -t "$THREADS" -p 512 -n 128 -r 5 -o json >"$OUT/lb.json" 2>/dev/null
echo "== Flover, prompt and one sequence ==" >&2
./flover bench-engine --model "$MODEL" --threads "$THREADS" --prompt-len 512 --decode-steps 128 --batches 1 \
  --json "$OUT/fl1.json" >&2
"$BIN/llama-batched-bench" -m "$GGUF" -t "$THREADS" -tb "$THREADS" -c 16384 -b 2048 -ub 512 -npp 128 -ntg 128 \
  -npl 4,16,32,64 2>/dev/null | grep -E '^\|' >"$OUT/bb.txt"
echo "== Flover, batches ==" >&2
./flover bench-engine --model "$MODEL" --threads "$THREADS" --prompt-len 0 --decode-prompt-len 128 \
  --decode-steps 128 --batches 4,16,32,64 --repetitions 1 --json "$OUT/fl2.json" >&2
echo "== $(uptime) ==" >&2

python3 - "$OUT" "$DT" <<'PY'
import json, sys
d, dt = sys.argv[1], sys.argv[2]
lb = json.load(open(d + "/lb.json"))
pp = next(r["avg_ts"] for r in lb if r["n_prompt"] > 0)
tg = next(r["avg_ts"] for r in lb if r["n_gen"] > 0)
bb = {}
for line in open(d + "/bb.txt"):
    c = [x.strip() for x in line.strip().strip("|").split("|")]
    if c[0].isdigit():
        bb[int(c[2])] = float(c[7])  # S_TG t/s: aggregate decode tokens/s
one = json.load(open(d + "/fl1.json"))["models"][0]
many = json.load(open(d + "/fl2.json"))["models"][0]
fdec = {x["batch"]: x["tokens_per_s"] for x in one["decode"] + many["decode"]}
fpp = one["prompt_tokens_per_s"]
print("| figure (%s) | llama.cpp | Flover | Flover / llama.cpp |" % (dt if "/" in dt else dt.upper()))
print("|---|---|---|---|")
print("| prompt processing, 512 tokens (tokens/s) | %.0f | %.0f | %.2f |" % (pp, fpp, fpp / pp))
print("| decode, 1 sequence, 128 tokens from empty (tokens/s) | %.1f | %.1f | %.2f |" % (tg, fdec[1], fdec[1] / tg))
for b in (4, 16, 32, 64):
    if b in bb and b in fdec:
        print("| decode, %d sequences (aggregate tokens/s) | %.0f | %.0f | %.2f |" % (b, bb[b], fdec[b], fdec[b] / bb[b]))
PY
