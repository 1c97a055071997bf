#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine: Debian packages, the Python
# environment (.venv, from uv.lock) and the control-plane toolchain built from Go modules.
# Safe to run again: each step skips what is already in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

UV_VERSION=0.13.8
cache=${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}

# Debian packages the tests and benchmarks use: curl (model server REST tests), wrk (benchmark),
# nghttp2-client (h2load: the gRPC benchmark and the gRPC transport tests),
# gcc (the model server's C extension for JSON tensors), prometheus (promtool, and the Prometheus
# that the autoscaler's query tests run with static targets; the local cluster runs its own,
# built with Kubernetes discovery, which Debian's lacks. The package's system service is not used),
# buildah and debootstrap (hack/images/build.sh builds the image on a debootstrapped base).
APT_PACKAGES=(curl wrk nghttp2-client gcc prometheus buildah debootstrap)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -q && $sudo_cmd apt-get install -y -q "${missing[@]}"
fi

# uv, pinned, in its own virtualenv so the system Python stays untouched.
uv="$cache/uv-venv/bin/uv"
if ! "$uv" --version 2>/dev/null | grep -q " $UV_VERSION"; then
  python3 -m venv "$cache/uv-venv"
  "$cache/uv-venv/bin/pip" install -q "uv==$UV_VERSION"
fi
"$uv" sync --locked --all-groups --quiet

hack/toolchain/build.sh >/dev/null

# The model the local cluster's store serves, built with TensorFlow once into the cache.
.venv/bin/python -m modelship_localcluster.seed_model >/dev/null
