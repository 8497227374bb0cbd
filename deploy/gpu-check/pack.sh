#!/usr/bin/env bash
# Packs a self-contained kit that checks a Linux x86-64 GPU host for Flover and measures it there, for hosts with an
# NVIDIA driver but no JDK, no Maven and no network:
#
#   deploy/gpu-check/pack.sh OUT_DIR            # here: a JDK 25, Maven Central (first build), patchelf, xz, zip
#   tar -xJf OUT_DIR/flover-gpu-check.tar.xz    # there
#   flover-gpu-check/run.sh info tests engine:1b flover:1b
#
# The kit holds a Java runtime cut to the modules Flover uses (deploy/java-runtime.sh, as in the container images),
# the runnable jar and its launcher, the CUDA golden tests with their checkpoints and the JUnit console launcher,
# deploy/bench/hf_baseline.py, a copy of JCuda's cuBLAS binding rewritten for CUDA 13's libcublas.so.13
# (deploy/cublas-compat.sh) for hosts without CUDA 12's, and run.sh, which says what its stages do. About 50 MB
# compressed: the jar is stored uncompressed inside the archive so that xz compresses the whole.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
die() {
  echo "gpu-check pack: $*" >&2
  exit 2
}
[ $# -eq 1 ] || die "usage: deploy/gpu-check/pack.sh OUT_DIR"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
for tool in patchelf xz zip unzip; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool (e.g. apt-get install $tool)"
done

JDK=""
for c in "${JAVA_HOME:-}" /usr/lib/jvm/*25*; do
  if [ -n "$c" ] && [ -x "$c/bin/jlink" ] && grep -q '^JAVA_VERSION="25' "$c/release" 2>/dev/null; then
    JDK="$c"
    break
  fi
done
[ -n "$JDK" ] || die "no JDK 25 with jlink (set JAVA_HOME)"
export JAVA_HOME="$JDK"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kit="$work/flover-gpu-check"
mkdir -p "$kit/tests"

echo "gpu-check pack: building the jar and the tests with $JDK" >&2
(cd "$ROOT" && ./mvnw -B -q -ntp -DskipTests install) >&2
cp "$ROOT/integration-tests/target/gpu-check/junit.jar" "$kit/tests/junit.jar" # JUnit's console launcher
cp -r "$ROOT/transformer/target/test-classes" "$kit/tests/classes"
jar="$ROOT/cli/target/flover-build.jar" # what this build made (./flover renames it to flover.jar)

echo "gpu-check pack: the Java runtime" >&2
"$ROOT/deploy/java-runtime.sh" "$jar" "$kit/jre"

echo "gpu-check pack: the jar, stored (natives for other platforms left out)" >&2
mkdir "$work/jar"
(cd "$work/jar" && unzip -q "$jar" \
  && find META-INF/native -type f \( -name '*osx*' -o -name '*windows*' -o -name '*aarch_64*' \) -delete \
  && zip -q -0 -X -r "$kit/flover.jar" .)
cp "$ROOT/flover" "$kit/flover"
cp "$ROOT/deploy/bench/hf_baseline.py" "$ROOT/deploy/gpu-check/run.sh" "$kit/"

echo "gpu-check pack: cuBLAS binding for CUDA 13 hosts" >&2
"$ROOT/deploy/cublas-compat.sh" "$kit/cublas13" >&2

echo "gpu-check pack: compressing" >&2
tar -C "$work" -cf - flover-gpu-check | xz -T0 -6 >"$OUT/flover-gpu-check.tar.xz"
echo "$OUT/flover-gpu-check.tar.xz ($(du -h "$OUT/flover-gpu-check.tar.xz" | cut -f1))"
