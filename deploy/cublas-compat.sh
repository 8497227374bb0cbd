#!/usr/bin/env bash
# Makes JCuda's cuBLAS bindings, built against CUDA 12, load on a host that has only CUDA 13's cuBLAS.
#
#   deploy/cublas-compat.sh [--jar JAR | --lib SO] [--version V] [--cublas-dir DIR] OUT_DIR
#
# JCublas' native libraries (libJCublas2-V-linux-x86_64.so and libJCublas-V-linux-x86_64.so in the jar
# org.jcuda:jcublas-natives:V:linux-x86_64) need libcublas.so.12 and import each cuBLAS function at symbol version
# "libcublas.so.12". For each of them this script writes a copy to OUT_DIR, under the same file name, that:
#   - needs libcublas.so.13 instead (patchelf --replace-needed; libcublasLt likewise where it is needed),
#   - imports every cuBLAS function without a symbol version (patchelf --clear-symbol-version, one per function),
#   - requires version "libcublas.so.13" where it required "libcublas.so.12" (the .gnu.version_r entry that glibc
#     checks when it loads the library, which patchelf leaves as it was: without this the loader stops at
#     "version `libcublas.so.12' not found").
# Then it checks the result with readelf. With --cublas-dir DIR (the folder holding libcublas.so.13, e.g.
# .../site-packages/nvidia/cu13/lib) it also records DIR as the copies' RUNPATH, so that they find cuBLAS without
# LD_LIBRARY_PATH, checks that DIR's libcublas.so.13 exports every function they import, and loads them once with
# every symbol bound (Python's ctypes), which needs no GPU.
#
# Sources: --jar JAR (a jcublas-natives jar), --lib SO (one library), or by default the jar of version V (default
# 12.6.0) in the local Maven repository (M2_REPO, default ~/.m2/repository); fetch it there with
#   ./mvnw dependency:get -Dartifact=org.jcuda:jcublas-natives:12.6.0:jar:linux-x86_64 -Dtransitive=false
# Needs: patchelf, readelf, unzip (for a jar), python3 (for the version entry and the load check).
# deploy/README.md ("CUDA 12 libraries on CUDA 13 hosts") says how to put the copies in front of JCuda's own.
set -euo pipefail

die() {
  echo "cublas-compat: $*" >&2
  exit 2
}

usage() {
  sed -n '4,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

jar=""
lib=""
version="12.6.0"
cublas_dir=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --jar) jar="${2:?}"; shift 2 ;;
    --lib) lib="${2:?}"; shift 2 ;;
    --version) version="${2:?}"; shift 2 ;;
    --cublas-dir) cublas_dir="${2:?}"; shift 2 ;;
    -h|--help) usage ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$out" ] || usage; out="$1"; shift ;;
  esac
done
[ -n "$out" ] || usage
for tool in patchelf readelf python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (apt-get install patchelf binutils python3)"
done
if [ -n "$cublas_dir" ]; then
  [ -f "$cublas_dir/libcublas.so.13" ] || die "no libcublas.so.13 in $cublas_dir"
  cublas_dir="$(cd "$cublas_dir" && pwd)"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The libraries to patch, in $work.
if [ -n "$lib" ]; then
  [ -f "$lib" ] || die "no file $lib"
  cp "$lib" "$work/"
else
  if [ -z "$jar" ]; then
    jar="${M2_REPO:-$HOME/.m2/repository}/org/jcuda/jcublas-natives/$version/jcublas-natives-$version-linux-x86_64.jar"
    [ -f "$jar" ] || die "no $jar: fetch it with ./mvnw dependency:get -Dartifact=org.jcuda:jcublas-natives:$version:jar:linux-x86_64 -Dtransitive=false, or name it with --jar"
  fi
  [ -f "$jar" ] || die "no file $jar"
  command -v unzip >/dev/null 2>&1 || die "unzip is needed to read $jar"
  unzip -q -j -o "$jar" 'lib/*.so' -d "$work" || die "no lib/*.so in $jar"
fi

# Undefined dynamic symbols of $1 that carry symbol version $2, one per line.
versioned_imports() {
  readelf --dyn-syms -W "$1" | awk -v ver="$2" '$7 == "UND" { n = split($8, a, "@"); if (n > 1 && a[n] == ver) print a[1] }' | sort -u
}

# Points each version requirement on $2 (an old soname, e.g. libcublas.so.12) at $3 (the new one) in $1: the
# requirement's name becomes the string the entry's file name already uses (patchelf wrote $3 there), and its
# hash the ELF hash of $3. The loader reads .gnu.version_r through DT_VERNEED, so both must agree.
retarget_version() {
  python3 - "$1" "$2" "$3" <<'PY'
import struct, sys

path, old, new = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
data = bytearray(open(path, "rb").read())
if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
    sys.exit(f"{path}: not a 64-bit little-endian ELF file")

def elf_hash(name):
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h

shoff, = struct.unpack_from("<Q", data, 0x28)
shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
SHT_DYNAMIC, SHT_GNU_VERNEED, DT_VERNEED = 6, 0x6FFFFFFE, 0x6FFFFFFE
verneed = [s for s in sections if s[1] == SHT_GNU_VERNEED]
if len(verneed) != 1:
    sys.exit(f"{path}: expected one .gnu.version_r section, found {len(verneed)}")
_, _, _, addr, off, _, link, count, _, _ = verneed[0]
strtab = sections[link][4]

for s in sections:
    if s[1] == SHT_DYNAMIC:
        for i in range(s[5] // 16):
            tag, val = struct.unpack_from("<qQ", data, s[4] + i * 16)
            if tag == DT_VERNEED and val != addr:
                sys.exit(f"{path}: DT_VERNEED {val:#x} is not .gnu.version_r at {addr:#x}")

def string(o):
    return bytes(data[strtab + o:data.index(b"\0", strtab + o)])

changed = 0
entry = off
for _ in range(count):
    _, cnt, vn_file, vn_aux, vn_next = struct.unpack_from("<HHIII", data, entry)
    if string(vn_file) == new:
        aux = entry + vn_aux
        for _ in range(cnt):
            _, flags, other, name, next_aux = struct.unpack_from("<IHHII", data, aux)
            if string(name) == old:
                struct.pack_into("<IHHII", data, aux, elf_hash(new), flags, other, vn_file, next_aux)
                changed += 1
            aux += next_aux
    entry += vn_next
open(path, "wb").write(data)
print(f"  version requirement {old.decode()} -> {new.decode()}: {changed} entr{'y' if changed == 1 else 'ies'}")
PY
}

patched=0
for so in "$work"/*.so; do
  name=$(basename "$so")
  needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  olds=()
  for base in libcublas libcublasLt; do
    if grep -qx "$base.so.12" <<<"$needed"; then
      olds+=("$base")
    fi
  done
  if [ ${#olds[@]} -eq 0 ]; then
    continue  # not a cuBLAS binding (or already patched)
  fi
  echo "cublas-compat: $name"
  for base in "${olds[@]}"; do
    symbols=$(versioned_imports "$so" "$base.so.12")
    echo "  patchelf --replace-needed $base.so.12 $base.so.13"
    patchelf --replace-needed "$base.so.12" "$base.so.13" "$so"
    if [ -n "$symbols" ]; then
      echo "  patchelf --clear-symbol-version SYMBOL for $(wc -l <<<"$symbols") symbols at version $base.so.12"
      args=()
      while read -r sym; do
        args+=(--clear-symbol-version "$sym")
      done <<<"$symbols"
      patchelf "${args[@]}" "$so"
    fi
    retarget_version "$so" "$base.so.12" "$base.so.13"
  done
  if [ -n "$cublas_dir" ]; then
    echo "  patchelf --set-rpath $cublas_dir"
    patchelf --set-rpath "$cublas_dir" "$so"
  fi

  # Check: nothing of CUDA 12's cuBLAS is left.
  problems=""
  if readelf -d "$so" | grep -q '\[libcublas\(Lt\)\{0,1\}\.so\.12\]'; then
    problems+=" still needs a .so.12;"
  fi
  if readelf -V "$so" | grep -q 'Name: libcublas\(Lt\)\{0,1\}\.so\.12'; then
    problems+=" still requires version libcublas*.so.12;"
  fi
  if readelf --dyn-syms -W "$so" | grep -q '@libcublas\(Lt\)\{0,1\}\.so\.12'; then
    problems+=" still imports symbols at version libcublas*.so.12;"
  fi
  if [ -n "$cublas_dir" ]; then
    imports=$(readelf --dyn-syms -W "$so" | awk '$7 == "UND" { split($8, a, "@"); print a[1] }' | grep '^cublas' | sort -u || true)
    exports=$(for f in "$cublas_dir"/libcublas.so.13 "$cublas_dir"/libcublasLt.so.13; do
                [ -f "$f" ] && readelf --dyn-syms -W "$f" | awk '$7 != "UND" { split($8, a, "@"); print a[1] }'
              done | sort -u)
    missing=$(comm -23 <(echo "$imports") <(echo "$exports"))
    if [ -n "$missing" ]; then
      problems+=" imports $(wc -l <<<"$missing") functions that $cublas_dir does not export ($(head -n 5 <<<"$missing" | paste -sd, -)...);"
    else
      echo "  $cublas_dir exports all $(wc -l <<<"$imports") cuBLAS functions it imports"
    fi
    if ! python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' "$so" 2>"$work/load.err"; then
      problems+=" does not load: $(tr '\n' ' ' <"$work/load.err");"
    else
      echo "  loads with every symbol bound against $cublas_dir"
    fi
  fi
  [ -z "$problems" ] || die "$name:$problems"

  cp "$so" "$out/$name"
  echo "  wrote $out/$name"
  patched=$((patched + 1))
done
[ "$patched" -gt 0 ] || die "found no library that needs libcublas.so.12"
