#!/usr/bin/env bash
# Compiles flover.cu to PTX for compute_80 and writes it, under a first line naming the SHA-256 of flover.cu, to
# kernels/src/main/resources/io/flover/kernels/cuda/flover.ptx, the resource the CUDA backend loads.
#
#   kernels/src/main/cuda/build-ptx.sh [--force]
#
# The PTX is committed: machines without nvcc (CI among them) build with it as it is, and PtxSourcesTest fails when
# flover.cu has changed since the PTX was made. Maven runs this script in generate-resources (kernels/pom.xml);
# without nvcc it says so and exits 0. When the first line already names flover.cu's hash, nothing is compiled
# (--force compiles anyway), so machines with another nvcc do not rewrite the committed PTX.
#
# Why compute_80 PTX: the driver JIT-compiles it for the GPU at hand (Ampere, Ada, Hopper, Blackwell), and the
# bfloat16 conversions need sm_80. It declares PTX ISA 8.0, so that drivers from CUDA 12.0 on load it. No fast
# math: results must match the float32 CPU kernels. The output is deterministic: nvcc's PTX carries no timestamps
# or paths, only the toolkit's version in its header comment.
# Environment: NVCC (the nvcc to use; default: nvcc on the PATH).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$HERE/flover.cu"
OUT="$(dirname "$HERE")/resources/io/flover/kernels/cuda/flover.ptx"

force=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

nvcc="${NVCC:-$(command -v nvcc || true)}"
if [ -z "$nvcc" ]; then
  echo "build-ptx: nvcc is not on the PATH; the committed flover.ptx is used"
  exit 0
fi

if command -v sha256sum >/dev/null 2>&1; then
  hash=$(sha256sum "$SRC" | cut -d' ' -f1)
else
  hash=$(shasum -a 256 "$SRC" | cut -d' ' -f1)
fi
header="// flover-source-sha256: $hash"
if [ "$force" = false ] && [ -f "$OUT" ] && [ "$(head -n 1 "$OUT")" = "$header" ]; then
  echo "build-ptx: flover.ptx is up to date with flover.cu"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The precision flags are nvcc's defaults without --use_fast_math, spelled out so that nobody flips them unnoticed.
"$nvcc" -ptx -arch=compute_80 -O3 -std=c++17 -ftz=false -prec-div=true -prec-sqrt=true \
  -o "$tmp/flover.ptx" "$SRC"
# nvcc declares the newest PTX ISA it knows (9.0 for CUDA 13), which drivers older than its own refuse to JIT.
# Declare 8.0 (drivers of CUDA 12.0 and later) instead: the kernels use nothing newer, and ptxas below rejects
# any instruction that 8.0 lacks.
sed -i 's/^\.version [0-9][0-9.]*$/.version 8.0/' "$tmp/flover.ptx"

# Assemble once where ptxas is at hand, so that PTX the driver would reject (an instruction newer than the declared
# ISA among it) fails here.
ptxas="$(dirname "$nvcc")/ptxas"
[ -x "$ptxas" ] || ptxas="$(command -v ptxas || true)"
if [ -n "$ptxas" ]; then
  "$ptxas" -arch=sm_80 -o "$tmp/flover.cubin" "$tmp/flover.ptx"
fi

{
  echo "$header"
  cat "$tmp/flover.ptx"
} >"$tmp/out.ptx"
mkdir -p "$(dirname "$OUT")"
if [ -f "$OUT" ] && cmp -s "$tmp/out.ptx" "$OUT"; then
  echo "build-ptx: flover.ptx unchanged"
else
  mv "$tmp/out.ptx" "$OUT"
  echo "build-ptx: wrote $OUT"
fi
