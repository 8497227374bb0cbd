#!/usr/bin/env bash
# Cuts the Java runtime that runs Flover's jar outside a JDK: jlink with the modules jdeps finds the jar uses, from
# a JDK 25 (JAVA_HOME, else /usr/lib/jvm/*25*). The container images (deploy/image.sh) and the GPU check kit
# (deploy/gpu-check/pack.sh) both ship the runtime this makes.
#
#   deploy/java-runtime.sh JAR OUT_DIR        # OUT_DIR must not exist; it becomes the runtime's home
#
# The modules are left uncompressed: the kit's xz and the images' layer compression do better on the whole.
set -euo pipefail

die() {
  echo "java-runtime: $*" >&2
  exit 2
}
[ $# -eq 2 ] || die "usage: deploy/java-runtime.sh JAR OUT_DIR"
jar="$1"
out="$2"
[ -f "$jar" ] || die "no jar at $jar"
[ ! -e "$out" ] || die "$out exists already"

JDK=""
for c in "${JAVA_HOME:-}" /usr/lib/jvm/*25*; do
  if [ -n "$c" ] && [ -x "$c/bin/jlink" ] && grep -q '^JAVA_VERSION="25' "$c/release" 2>/dev/null; then
    JDK="$c"
    break
  fi
done
[ -n "$JDK" ] || die "no JDK 25 with jlink (set JAVA_HOME)"

modules=$("$JDK/bin/jdeps" --ignore-missing-deps --print-module-deps --multi-release 25 "$jar")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$JDK/bin/jlink" --add-modules "$modules" --strip-debug --no-header-files --no-man-pages --output "$out" \
  >"$log" 2>&1 || { cat "$log" >&2; die "jlink failed"; }
echo "java-runtime: $out ($modules)" >&2
