#!/usr/bin/env bash
# Builds the local control plane's binaries from the official Go modules (no downloads from release
# sites) into a cache outside the repository, keyed by version:
#   $MODELSHIP_CACHE/bin/<version-key>/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,kwok,helm}
#   …plus versitygw and fake-gcs-server, the S3 / GCS API servers the storage tests run against,
#   and Prometheus (with Kubernetes discovery, which Debian's package lacks), and two small mains of
#   ours under hack/toolchain/ for GitOps checks: kstatus (sigs.k8s.io/cli-utils) and argo-health
#   (gopher-lua, Argo CD's Lua VM).
# It also copies CRDs of other projects out of their Go modules (source only, nothing is built):
#   $MODELSHIP_CACHE/crds/<name>-<version>/*.yaml   (KEDA, prometheus-operator)
# A tool whose binary is already cached is skipped, so a warm run does nothing.
# Prints the directory holding the binaries on its last line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}
bindir="$cache/bin"
mkdir -p "$bindir"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { echo "[toolchain] $*" >&2; }

# have NAME VERSION: true when the versioned binary is cached; its stable name is a symlink to it.
have() { [ -x "$bindir/$1-$2" ]; }
link() { ln -sfn "$1-$2" "$bindir/$1"; }

# A scratch module whose replace lines pin each module the target's go.mod points at a local path.
# $1 scratch dir, $2 target module, $3 its version, $4 sed expression turning the target's
# "path => ./local" lines into "path => path <version>" lines.
scratch_module() {
  local dir=$1 module=$2 version=$3 rewrite=$4 gomod
  rm -rf "$dir" && mkdir -p "$dir"
  gomod=$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    echo "module modelship.dev/toolchain-scratch"
    sed -n 's/^go \(.*\)/go \1/p' "$gomod"
    echo "require $module $version"
    echo "replace ("
    grep -E '^\s+\S+ => \.\.?/' "$gomod" | sed -E "$rewrite"
    echo ")"
  } >"$dir/go.mod"
  (cd "$dir" && go mod tidy -e >/dev/null 2>&1 || true)
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl) missing=()
  for t in "${tools[@]}"; do have "$t" "$v" || missing+=("$t"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "building ${missing[*]} $v from k8s.io/kubernetes (a cold build takes many minutes)"
    local dir="$cache/src/kubernetes-$v" staging="v0.${v#v1.}"
    # k8s.io/kubernetes points every k8s.io/* staging module at ./staging; pin each to its v0.X.Y tag.
    scratch_module "$dir" k8s.io/kubernetes "$v" "s#^\s+(\S+) => .*#\t\1 => \1 $staging#"
    local minor=${v#v1.}; minor=${minor%%.*}
    local ld="-s -w"
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
      ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    local pkgs=()
    for t in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$t"); done
    (cd "$dir" && for p in "${pkgs[@]}"; do go get "$p@$v" >/dev/null 2>&1 || true; done
      go build -trimpath -ldflags "$ld" -o "$dir/out/" "${pkgs[@]}")
    for t in "${missing[@]}"; do mv "$dir/out/$t" "$bindir/$t-$v"; done
  fi
  for t in "${tools[@]}"; do link "$t" "$v"; done
}

build_etcd() {
  local v=$ETCD_VERSION
  if ! have etcd "$v"; then
    log "building etcd $v from go.etcd.io/etcd/server/v3"
    local dir="$cache/src/etcd-$v"
    # The server's go.mod points its sibling modules at ../; pin them to the same release.
    scratch_module "$dir" go.etcd.io/etcd/server/v3 "$v" "s#^\s+(\S+) => .*#\t\1 => \1 $v#"
    (cd "$dir" && go get "go.etcd.io/etcd/server/v3@$v" >/dev/null 2>&1 || true
      go build -trimpath -ldflags "-s -w" -o "$bindir/etcd-$v" go.etcd.io/etcd/server/v3)
  fi
  link etcd "$v"
}

# go_install NAME VERSION PACKAGE [LDFLAGS]: modules that build as they are.
go_install() {
  local name=$1 v=$2 pkg=$3 ld=${4:-}
  if ! have "$name" "$v"; then
    log "building $name $v"
    local tmp; tmp=$(mktemp -d)
    GOBIN="$tmp" go install -trimpath -ldflags "-s -w $ld" "$pkg@$v"
    mv "$tmp/$name" "$bindir/$name-$v" && rmdir "$tmp"
  fi
  link "$name" "$v"
}

build_etcd
go_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
go_install versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw "-X main.Version=$VERSITYGW_VERSION"
go_install fake-gcs-server "$FAKE_GCS_SERVER_VERSION" github.com/fsouza/fake-gcs-server
# Only the discovery the local cluster uses (kubernetes; file and http are always in): a shorter build.
GOFLAGS="$GOFLAGS -tags=remove_all_sd,enable_kubernetes_sd" \
  go_install prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus
# go_main NAME VERSION MODULE: a small Go main of ours (hack/toolchain/NAME/main.go) built against
# MODULE@VERSION in a scratch module. The cached binary is keyed by the version and the source's
# hash, so editing main.go rebuilds it.
go_main() {
  local name=$1 v=$2 module=$3 src="$here/$1/main.go" key dir
  key="$v-$(sha256sum "$src" | cut -c1-12)"
  if ! have "$name" "$key"; then
    log "building $name against $module $v"
    dir="$cache/src/$name-$key"
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$src" "$dir/main.go"
    printf 'module modelship.dev/toolchain/%s\n\ngo 1.22\n\nrequire %s %s\n' "$name" "$module" "$v" >"$dir/go.mod"
    (cd "$dir" && go mod tidy >/dev/null && go build -trimpath -ldflags "-s -w" -o "$bindir/$name-$key" .)
  fi
  link "$name" "$key"
}

# kstatus: the status library of kpt and Flux, to check what GitOps tools see of our objects.
go_main kstatus "$CLI_UTILS_VERSION" sigs.k8s.io/cli-utils
# argo-health: Argo CD's Lua VM (gopher-lua), to run the health scripts in docs/argocd/.
go_main argo-health "$GOPHER_LUA_VERSION" github.com/yuin/gopher-lua
# fetch_crds NAME MODULE VERSION FILE...: copy CRD files of a Go module into $cache/crds/NAME-VERSION.
fetch_crds() {
  local name=$1 module=$2 v=$3 dest f dir missing=()
  shift 3
  dest="$cache/crds/$name-$v"
  for f in "$@"; do [ -s "$dest/$(basename "$f")" ] || missing+=("$f"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "fetching $name $v CRDs from $module"
  dir=$(go mod download -json "$module@$v" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  [ -n "$dir" ] || { log "go mod download gave no directory for $module@$v"; return 1; }
  mkdir -p "$dest"
  # Module cache files are read-only; the copies need not be.
  for f in "${missing[@]}"; do install -m 0644 "$dir/$f" "$dest/"; done
}

fetch_crds keda github.com/kedacore/keda/v2 "$KEDA_VERSION" config/crd/bases/keda.sh_scaledobjects.yaml
fetch_crds prometheus-operator github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" \
  example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml \
  example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
  example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
build_kubernetes
echo "$bindir"
