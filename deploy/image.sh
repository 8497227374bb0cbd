#!/usr/bin/env bash
# Builds Flover's container image from this checkout, with Docker or podman:
#
#   deploy/image.sh [cpu|cuda] [--engine docker|podman] [--base IMAGE | --local-base] [--tag NAME] [--jar JAR]
#
# cpu (the default) is FROM debian:bookworm-slim, cuda FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04; --base names
# another. --local-base (podman) builds FROM localhost/debian-min:bookworm, a Debian bookworm made here by
# mmdebstrap and imported once, for machines that reach Debian's mirrors but no image registry (CI). The image
# is tagged flover-cpu:0.1.0 or flover-cuda:0.1.0 unless --tag names another.
#
# Nothing is compiled in the image build: the launcher builds the jar here (or --jar names one), and
# deploy/java-runtime.sh cuts its Java runtime (a JDK 25 is needed here), as for the GPU check kit. The build
# context is target/image/FLAVOR: the launcher, the jar, the runtime and deploy/healthcheck.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_BASE=localhost/debian-min:bookworm
die() {
  echo "image: $*" >&2
  exit 2
}

flavor=cpu
engine=""
base=""
local_base=false
tag=""
jar=""
while [ $# -gt 0 ]; do
  case "$1" in
    cpu|cuda) flavor="$1"; shift ;;
    --engine) engine="${2:?--engine needs docker or podman}"; shift 2 ;;
    --base) base="${2:?--base needs an image}"; shift 2 ;;
    --local-base) local_base=true; shift ;;
    --tag) tag="${2:?--tag needs a name}"; shift 2 ;;
    --jar) jar="${2:?--jar needs a file}"; shift 2 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (deploy/image.sh --help)" ;;
  esac
done
case "$flavor" in
  cpu) base="${base:-debian:bookworm-slim}" ;;
  cuda) base="${base:-nvidia/cuda:12.8.1-runtime-ubuntu24.04}" ;;
esac
tag="${tag:-flover-$flavor:0.1.0}"
if [ -z "$engine" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null 2>&1; then
    engine=podman
  else
    die "neither a running Docker engine nor podman found"
  fi
fi
case "$engine" in docker|podman) ;; *) die "--engine must be docker or podman, got $engine" ;; esac
if [ "$local_base" = true ]; then
  [ "$engine" = podman ] || die "--local-base is for podman"
  base="$LOCAL_BASE"
fi

if [ "$local_base" = true ] && ! podman image exists "$LOCAL_BASE"; then
  command -v mmdebstrap >/dev/null 2>&1 || die "--local-base needs mmdebstrap (apt-get install mmdebstrap)"
  echo "image: making $LOCAL_BASE with mmdebstrap (once per machine; a few minutes)" >&2
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  # Debian's essential packages and useradd, without documentation: glibc, bash and coreutils are what runs.
  mmdebstrap --quiet --variant=essential --include=passwd --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$rootfs/rootfs.tar" >&2
  podman import --quiet "$rootfs/rootfs.tar" "$LOCAL_BASE" >/dev/null
fi

if [ -z "$jar" ]; then
  jar="$("$ROOT/flover" jar)"
fi
[ -f "$jar" ] || die "no jar at $jar"

context="$ROOT/target/image/$flavor"
rm -rf "$context"
mkdir -p "$context/flover"
cp "$ROOT/flover" "$ROOT/deploy/healthcheck" "$context/flover/"
cp "$jar" "$context/flover/flover.jar"
"$ROOT/deploy/java-runtime.sh" "$jar" "$context/flover/java"

# podman writes OCI images by default, which have no HEALTHCHECK; the Docker format keeps it.
format=()
[ "$engine" = podman ] && format=(--format docker)
echo "image: building $tag FROM $base with $engine" >&2
"$engine" build "${format[@]}" -f "$ROOT/deploy/Dockerfile" --build-arg "BASE=$base" --build-arg "FLAVOR=$flavor" \
  -t "$tag" "$context" >&2
echo "$tag"
