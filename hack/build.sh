#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok, and kubectl for the tests that apply manifests as a user would) from the Go modules pinned beside this script, into a cache outside the repository.
# A binary already in the cache is not built again.
#
#   hack/build.sh                 build what is missing, with progress
#   hack/build.sh --print-bin-dir print where the binaries are (or would be)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# One source of truth for the versions: the go.mod files.
version() { awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$here/$1/go.mod"; }
k8s=$(version controlplane k8s.io/kubernetes)
etcd=$(version controlplane go.etcd.io/etcd/server/v3)
kwok=$(version kwok sigs.k8s.io/kwok)
bin="${XDG_CACHE_HOME:-$HOME/.cache}/custom-scheduler/k8s-${k8s}_etcd-${etcd}_kwok-${kwok}/bin"

if [ "${1:-}" = "--print-bin-dir" ]; then
  echo "$bin"
  exit 0
fi

# name, module directory, package
targets=(
  "etcd controlplane go.etcd.io/etcd/server/v3"
  "kube-apiserver controlplane k8s.io/kubernetes/cmd/kube-apiserver"
  "kube-controller-manager controlplane k8s.io/kubernetes/cmd/kube-controller-manager"
  "kube-scheduler controlplane k8s.io/kubernetes/cmd/kube-scheduler"
  "kubectl controlplane k8s.io/kubernetes/cmd/kubectl"
  "kwok kwok sigs.k8s.io/kwok/cmd/kwok"
)

missing=()
for t in "${targets[@]}"; do
  set -- $t
  [ -x "$bin/$1" ] || missing+=("$t")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "control plane: all binaries cached in $bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "error: Go is not installed or not on PATH; the local control plane is built from Go modules." >&2
  echo "       Install Go 1.26 or newer (https://go.dev/dl/), then run 'make controlplane' again." >&2
  exit 1
fi
need=$(awk '$1 == "go" { print $2; exit }' "$here/controlplane/go.mod")
have=$(go env GOVERSION | sed 's/^go//')
older=$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)
if [ "$older" != "$need" ] && [ "$(go env GOTOOLCHAIN)" = "local" ]; then
  echo "error: Go $have is too old: these modules need Go $need or newer." >&2
  echo "       Upgrade Go, or set GOTOOLCHAIN=auto to let Go fetch go$need." >&2
  exit 1
fi

mkdir -p "$bin"
echo "control plane: Kubernetes $k8s, etcd $etcd, KWOK $kwok -> $bin"
echo "control plane: building ${#missing[@]} binaries (a cold build takes 15-25 minutes on 2 cores; later runs reuse them)"
n=0
for t in "${missing[@]}"; do
  set -- $t
  n=$((n + 1))
  started=$(date +%s)
  echo "  [$n/${#missing[@]}] $1 ..."
  (cd "$here/$2" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin/$1.partial" "$3")
  mv "$bin/$1.partial" "$bin/$1"
  echo "  [$n/${#missing[@]}] $1 built in $(( $(date +%s) - started ))s"
done
echo "control plane: ready in $bin"
