#!/usr/bin/env bash
# Checks this GPU host for Flover and measures it, from the kit deploy/gpu-check/pack.sh makes: no JDK, Maven or
# network needed, only an NVIDIA driver and cuBLAS 12 or 13 (a CUDA toolkit, or the Python package nvidia-cublas).
#
#   run.sh [--device cuda:N] [--out DIR] [--models DIR] STAGE...
#
# Stages, run in the order given (one per invocation works as well):
#   info            the GPU (nvidia-smi), the Java runtime, and which cuBLAS Flover will use
#   tests           the CUDA golden tests (transformer's CudaGoldenModelTest, GPU 0): float32 logits within 1e-3 of the
#                   references and identical greedy ids for every golden checkpoint, then 64 fused requests with
#                   16-bit weights yielding what each yields alone; a skipped test is a failure here
#   engine:PRESET   bench-engine on a random-weight bf16 Llama of make-model's PRESET (110m, 1b, 7b): decode
#                   against the copy-bandwidth limit, prompt processing, decode throughput up to 256 sequences
#   flover:PRESET   bench flover on that model (the paper's experiments), then hf_baseline.py replaying the same
#                   workloads on transformers' generate with static batching on the same device (needs python3
#                   with torch and transformers)
#
# Results (logs and JSON) go to --out (default ./gpu-check-results); models to --models (default
# /tmp/flover-models), written once per preset. --device cpu runs the benchmark stages on the CPU, to try the kit.
set -euo pipefail

KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
device=cuda:0
out=gpu-check-results
models=/tmp/flover-models
stages=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device|--out|--models)
      [ $# -ge 2 ] || { echo "gpu-check: $1 needs a value" >&2; exit 2; }
      case "$1" in --device) device="$2" ;; --out) out="$2" ;; --models) models="$2" ;; esac
      shift 2 ;;
    -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) stages+=("$1"); shift ;;
  esac
done
[ ${#stages[@]} -gt 0 ] || { echo "gpu-check: no stage given (run.sh --help)" >&2; exit 2; }
mkdir -p "$out" "$models"

export JAVA_HOME="$KIT/jre" FLOVER_JAR="$KIT/flover.jar"
JVM=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow)

# The directory of library $1: the loader's cache, else Python's nvidia packages (e.g. nvidia-cublas), else nothing.
find_lib() {
  local p
  p=$(ldconfig -p 2>/dev/null | awk -v n="$1" '$1 == n {print $NF; exit}')
  if [ -z "$p" ] && command -v python3 >/dev/null 2>&1; then
    p=$(python3 - "$1" 2>/dev/null <<'EOF' || true
import glob, os, sys
try:
    import nvidia
except ImportError:
    sys.exit()
for root in nvidia.__path__:
    hits = sorted(glob.glob(os.path.join(root, "**", sys.argv[1]), recursive=True))
    if hits:
        print(hits[0])
        break
EOF
    )
  fi
  [ -n "$p" ] && dirname "$p"
}

# JCuda's cuBLAS binding links libcublas.so.12; on a host with only libcublas.so.13 the kit's rewritten copy goes
# first on the library path (deploy/README.md, "CUDA 12 libraries on CUDA 13 hosts").
if dir=$(find_lib libcublas.so.12); then
  cublas="CUDA 12's, in $dir"
  export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
elif dir=$(find_lib libcublas.so.13); then
  cublas="CUDA 13's, in $dir, through the kit's rewritten binding"
  export LD_LIBRARY_PATH="$KIT/cublas13:$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  cublas="none found (no libcublas.so.12 or .13 in the loader's cache or Python's nvidia packages)"
fi

model_of() { # writes the random bf16 llama of preset $1 once; prints its directory
  local dir="$models/llama-$1-bf16"
  if [ ! -f "$dir/config.json" ]; then
    "$KIT/flover" make-model --arch llama --preset "$1" --dtype bf16 --out "$dir" >&2
  fi
  echo "$dir"
}

for stage in "${stages[@]}"; do
  echo "gpu-check: $stage" >&2
  case "$stage" in
    info)
      { if command -v nvidia-smi >/dev/null 2>&1; then
          nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "nvidia-smi failed"
        else
          echo "nvidia-smi: not found"
        fi
        "$JAVA_HOME/bin/java" -version 2>&1 | head -n 1
        echo "cuBLAS: $cublas"
      } | tee "$out/info.txt"
      ;;
    tests)
      # JUnit's exit status ignores skipped and aborted tests; here either means the GPU could not be used.
      status=0
      "$JAVA_HOME/bin/java" "${JVM[@]}" -Xmx8g -jar "$KIT/tests/junit.jar" execute \
        --class-path "$KIT/flover.jar:$KIT/tests/classes" --select-class io.flover.worker.CudaGoldenModelTest \
        --details=tree --disable-banner --disable-ansi-colors 2>&1 | tee "$out/tests.txt" || status=${PIPESTATUS[0]}
      if [ "$status" -ne 0 ] || grep -Eq '\[ +0 tests successful' "$out/tests.txt" \
          || grep -Eq '\[ +[1-9][0-9]* (tests|containers) (skipped|aborted)' "$out/tests.txt"; then
        echo "gpu-check: tests failed or were skipped (see $out/tests.txt)" >&2
        exit 1
      fi
      ;;
    engine:*)
      preset=${stage#engine:}
      model=$(model_of "$preset")
      "$KIT/flover" bench-engine --device "$device" --model "$model" --batches 1,8,32,64,128,256 \
        --json "$out/engine-$preset.json" 2>&1 | tee "$out/engine-$preset.txt"
      ;;
    flover:*)
      preset=${stage#flover:}
      model=$(model_of "$preset")
      kv=(--kv-memory 1g)
      [ "$device" = cpu ] || kv=(--gpu-memory-fraction 0.9) # the baseline runs after Flover has exited
      "$KIT/flover" bench flover --device "$device" "${kv[@]}" --model "$model" \
        --json "$out/flover-$preset.json" --plots "$out/flover-$preset" 2>&1 | tee "$out/flover-$preset.txt"
      python3 "$KIT/hf_baseline.py" "$out/flover-$preset.json" --device "$device" \
        --json "$out/hf-$preset.json" 2>&1 | tee "$out/hf-$preset.txt"
      ;;
    *)
      echo "gpu-check: unknown stage $stage (run.sh --help)" >&2
      exit 2
      ;;
  esac
done
