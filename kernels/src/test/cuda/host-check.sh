#!/usr/bin/env bash
# Runs the CUDA kernels of kernels/src/main/cuda/flover.cu on the CPU against reference results
# (host_check.cpp beside this script says how), for machines without a GPU.
#
#   kernels/src/test/cuda/host-check.sh [--tsan] [GROUP]
#
# --tsan builds with ThreadSanitizer, which also reports races on shared memory (a missing __syncthreads); it takes
# minutes rather than seconds. GROUP runs only the groups whose name contains it (embedding, norms, elementwise,
# rope, attention, argmax, conversions). Needs a C++20 compiler (CXX, default g++) and the CUDA toolkit's headers
# (CUDA_HOME, default: the toolkit of nvcc on the PATH, else /usr/local/cuda); no GPU and no nvcc.
# Exit status: 0 when every check passed, 1 when one failed, 3 when the compiler or the headers are missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cxx="${CXX:-g++}"
flags=(-std=c++20 -O1 -pthread)
if [ "${1:-}" = "--tsan" ]; then
  flags+=(-g -fsanitize=thread)
  shift
fi

if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "host-check: no C++ compiler ($cxx); skipped"
  exit 3
fi
candidates=()
if [ -n "${CUDA_HOME:-}" ]; then
  candidates+=("$CUDA_HOME/include")
else
  if command -v nvcc >/dev/null 2>&1; then
    candidates+=("$(dirname "$(readlink -f "$(command -v nvcc)")")/../include")
  fi
  candidates+=(/usr/local/cuda/include)
fi
include=""
for c in "${candidates[@]}"; do
  if [ -f "$c/cuda_bf16.h" ]; then
    include="$c"
    break
  fi
done
if [ -z "$include" ]; then
  echo "host-check: no CUDA headers (cuda_bf16.h) in ${candidates[*]} (set CUDA_HOME); skipped"
  exit 3
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$cxx" "${flags[@]}" -I"$include" -o "$work/host_check" "$HERE/host_check.cpp"
"$work/host_check" "$@"
