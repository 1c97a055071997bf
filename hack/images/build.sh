#!/usr/bin/env bash
# Builds the modelship image from the Dockerfile with buildah, on a machine with no container
# engine and no reachable registry:
#   1. a Debian bookworm base made by debootstrap (minbase plus what python:3.11-slim-bookworm gives
#      the Dockerfile), kept as a tarball keyed by the recipe below, and imported into buildah as
#      localhost/modelship-base:<key>;
#   2. `buildah bud` on the Dockerfile with --build-arg BASE_IMAGE=<that image>.
# buildah runs with the vfs storage driver and chroot isolation (no overlay, no user namespaces),
# its storage under the cache, so nothing outside it changes. Needs root, buildah and debootstrap
# (hack/bootstrap.sh installs them), Debian's mirror and PyPI.
#   $MODELSHIP_CACHE/images/base/bookworm-<key>.tar   the debootstrapped rootfs
#   $MODELSHIP_CACHE/images/storage, run               buildah's image store
# Usage: hack/images/build.sh [IMAGE]   (default localhost/modelship:dev). Prints IMAGE last.
# `hack/images/build.sh --buildah ARGS...` runs buildah on that store (e.g. `images`, `rmi`).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}/images
mirror=${MODELSHIP_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# The base: Debian's Python 3.11 with pip, venv and the C headers (the build stage compiles the
# model server's extension), `python` and `pip` on PATH, CA certificates, /etc/services, tzdata.
# Bump BASE_RECIPE when the steps in make_base change; the key covers the rest.
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python3-pip,python3-dev,python-is-python3,ca-certificates,netbase,tzdata
BASE_RECIPE=1
key=$(printf '%s\n' "$SUITE" "$BASE_PACKAGES" "$BASE_RECIPE" | sha256sum | cut -c1-12)
base_image=localhost/modelship-base:$SUITE-$key
base_tar=$cache/base/$SUITE-$key.tar

export BUILDAH_ISOLATION=chroot
bah() { buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver vfs "$@"; }
log() { echo "[images] $*" >&2; }

if [ "${1:-}" = "--buildah" ]; then shift; bah "$@"; exit; fi
image=${1:-localhost/modelship:dev}

make_base() {
  local root
  rm -rf "$cache"/base/rootfs.* "$base_tar.partial"  # left by an interrupted run
  root=$(mktemp -d "$cache/base/rootfs.XXXXXX")
  log "debootstrap $SUITE (minbase + $BASE_PACKAGES)"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root" "$mirror" >&2
  # The official image's Python owns its prefix, so `pip install` there is allowed; Debian's marks
  # itself externally managed (PEP 668). The image is the environment, so lift the mark.
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SOURCES
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* \
    "$root"/tmp/* "$root"/root/.cache
  tar --numeric-owner --xattrs -C "$root" -cf "$base_tar.partial" .
  mv "$base_tar.partial" "$base_tar"
  rm -rf "$root"
}

mkdir -p "$cache/base"
if ! bah inspect --type image "$base_image" >/dev/null 2>&1; then
  [ -f "$base_tar" ] || make_base
  log "importing $base_tar as $base_image"
  ctr=$(bah from --pull=never scratch)
  bah add "$ctr" "$base_tar" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
  bah commit --rm --quiet "$ctr" "$base_image" >/dev/null
fi

# A build is tagged by a hash of its inputs (the base, the Dockerfile and the files it copies): when
# nothing changed, IMAGE just points at it again. The store keeps only the latest build, since with
# vfs every image is a full copy of its filesystem (gigabytes with TensorFlow).
inputs=$(cd "$repo" && {
  echo "$base_image"
  find Dockerfile .dockerignore pyproject.toml uv.lock README.md operator model_server \
    hack/localcluster -type f ! -name '*.so' ! -path '*/__pycache__/*' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-12)
built=localhost/modelship-build:$inputs
if bah inspect --type image "$built" >/dev/null 2>&1; then
  log "$built is up to date"
  bah tag "$built" "$image"
  echo "$image"
  exit 0
fi
for id in $(bah images --noheading --format '{{.ID}} {{.Name}}' | awk '$2 == "localhost/modelship-build" {print $1}'); do
  bah rmi --force "$id" >/dev/null
done

# RUN steps (apt, pip) trust the build host's CA bundle, so a TLS-inspecting proxy in front of
# PyPI works; it is mounted for the build only, the image keeps Debian's own.
host_ca=${MODELSHIP_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
ca_mount=()
[ -f "$host_ca" ] && ca_mount=(--volume "$host_ca:/etc/ssl/certs/ca-certificates.crt:ro")

# No layer cache either (each layer would be another full copy): a build commits the final image.
log "building $image from Dockerfile on $base_image"
bah bud --layers=false --force-rm --pull=never --build-arg "BASE_IMAGE=$base_image" "${ca_mount[@]}" \
  -f "$repo/Dockerfile" -t "$built" -t "$image" "$repo" >&2
# Images left untagged by interrupted builds.
bah rmi --prune >/dev/null 2>&1 || true
echo "$image"
