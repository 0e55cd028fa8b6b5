#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok, and kubectl for the tests that apply manifests as a user would) from the Go modules
# pinned beside this script, into a cache outside the repository. go.sum is committed, so a
# build is reproducible; a binary already in the cache is not built again. Two builds at once
# (two checkouts, two terminals) take turns on a lock: the second finds the binaries built.
#
#   hack/build.sh                 build what is missing, with progress
#   hack/build.sh --print-bin-dir print where the binaries are (or would be); tests/harness/controlplane.py asks this
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# One source of truth for the versions: the go.mod files. The cache directory names them, and
# the recipe below (bump `recipe` when the way a binary is built changes), so a change of either
# builds into a new directory and never mixes binaries of two releases or two recipes.
# Recipe 2: the Kubernetes binaries know their version (recipe 1 said v0.0.0-master).
recipe=2
version() { awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$here/$1/go.mod"; }
k8s=$(version controlplane k8s.io/kubernetes)
etcd=$(version controlplane go.etcd.io/etcd/server/v3)
kwok=$(version kwok sigs.k8s.io/kwok)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/custom-scheduler/k8s-${k8s}_etcd-${etcd}_kwok-${kwok}_recipe-${recipe}"
bin="$cache/bin"

# What `kubectl version` and every component's --version say, set as Kubernetes' own build sets
# it (hack/lib/version.sh): a module build otherwise reports v0.0.0-master+$Format:%H$, which
# kubectl cannot parse. No build date or commit, so that a build stays reproducible.
k8s_minor=${k8s#v*.}
k8s_minor=${k8s_minor%%.*}
k8s_major=${k8s#v}
k8s_major=${k8s_major%%.*}
k8s_ldflags=""
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $package.gitVersion=$k8s -X $package.gitMajor=$k8s_major"
  k8s_ldflags+=" -X $package.gitMinor=$k8s_minor -X $package.gitTreeState=clean"
done

if [ "${1:-}" = "--print-bin-dir" ]; then
  echo "$bin"
  exit 0
fi

# name, module directory, package, whether it is a Kubernetes binary (with its version)
targets=(
  "etcd controlplane go.etcd.io/etcd/server/v3 no"
  "kube-apiserver controlplane k8s.io/kubernetes/cmd/kube-apiserver yes"
  "kube-controller-manager controlplane k8s.io/kubernetes/cmd/kube-controller-manager yes"
  "kube-scheduler controlplane k8s.io/kubernetes/cmd/kube-scheduler yes"
  "kubectl controlplane k8s.io/kubernetes/cmd/kubectl yes"
  "kwok kwok sigs.k8s.io/kwok/cmd/kwok no"
)

find_missing() {
  missing=()
  for t in "${targets[@]}"; do
    set -- $t
    [ -x "$bin/$1" ] || missing+=("$t")
  done
}
find_missing
if [ ${#missing[@]} -eq 0 ]; then
  echo "control plane: all binaries cached in $bin"
  exit 0
fi

# One build at a time per cache directory: two that race would both spend minutes on the same
# binaries. The lock goes with this process (flock on an open descriptor), however it ends.
mkdir -p "$cache"
exec 9>"$cache/build.lock"
if ! command -v flock >/dev/null 2>&1; then
  echo "control plane: no flock (util-linux) here; building without the lock"
elif ! flock --nonblock 9; then
  echo "control plane: another build into $cache is running; waiting for it"
  flock 9
fi
find_missing  # what the other build left to do
if [ ${#missing[@]} -eq 0 ]; then
  echo "control plane: all binaries cached in $bin (built meanwhile)"
  exit 0
fi

# Go: $GO, else `go` on PATH, else the official tarball's place (not always on a non-login PATH).
go=${GO:-$(command -v go || true)}
if [ -z "$go" ] && [ -x /usr/local/go/bin/go ]; then
  go=/usr/local/go/bin/go
fi
if [ -z "$go" ] || ! "$go" version >/dev/null 2>&1; then
  echo "error: Go is not installed (no 'go' on PATH, nor \$GO); the local control plane is built from Go modules." >&2
  echo "       Install Go 1.26 or newer (https://go.dev/dl/), then run 'make controlplane' again." >&2
  exit 1
fi
need=$(awk '$1 == "go" { print $2 }' "$here/controlplane/go.mod" "$here/kwok/go.mod" | sort -V | tail -n1)
have=$("$go" env GOVERSION 2>/dev/null | sed 's/^go//')
have=${have:-0}
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
  # Go 1.21 and newer can fetch the toolchain a module asks for (through the module proxy),
  # unless GOTOOLCHAIN=local forbids it; older Go cannot.
  case "$("$go" env GOTOOLCHAIN 2>/dev/null)" in
    auto | *+auto | path | *+path)
      echo "control plane: Go $have is older than the go$need these modules need; Go will fetch go$need (GOTOOLCHAIN)" ;;
    *)
      echo "error: Go $have ($go) is too old: these modules need Go $need or newer." >&2
      echo "       Upgrade Go, or with Go 1.21+ set GOTOOLCHAIN=auto to let it fetch go$need." >&2
      exit 1 ;;
  esac
fi

mkdir -p "$bin"
echo "control plane: Kubernetes $k8s, etcd $etcd, KWOK $kwok -> $bin"
echo "control plane: building ${#missing[@]} binaries with $("$go" env GOVERSION)" \
  "(a cold build takes about 6 minutes on 2 cores, downloads included; later runs reuse them)"
all_started=$(date +%s)
n=0
for t in "${missing[@]}"; do
  set -- $t
  n=$((n + 1))
  started=$(date +%s)
  echo "  [$n/${#missing[@]}] $1 ..."
  ldflags="-s -w"
  [ "$4" = yes ] && ldflags+="$k8s_ldflags"
  # -mod=readonly: the committed go.sum is the truth; a build never rewrites go.mod or go.sum.
  (cd "$here/$2" && CGO_ENABLED=0 GOFLAGS=-mod=readonly "$go" build -trimpath -ldflags="$ldflags" -o "$bin/$1.partial" "$3")
  mv "$bin/$1.partial" "$bin/$1"  # only a complete binary ever counts as built
  echo "  [$n/${#missing[@]}] $1 built in $(( $(date +%s) - started ))s"
done
echo "control plane: ready in $bin ($(( $(date +%s) - all_started ))s)"
