#!/usr/bin/env bash
# Builds the real control-plane binaries that Pilothouse's tests run
# (kube-apiserver, etcd, and for testenv's live mode kube-controller-manager and
# kube-scheduler) from Go modules, into a cache outside the clone keyed by version.
# Idempotent: a warm cache makes this a no-op. Prints the binary directory last.
#
#   PILOTHOUSE_CACHE   cache root (default ~/.cache/pilothouse)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
mod="$here/testenv-tools"
k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")
if [ -z "$k8s_version" ] || [ -z "$etcd_version" ]; then
  echo "error: could not read the Kubernetes/etcd versions from $mod/go.mod" >&2
  exit 1
fi
cache="${PILOTHOUSE_CACHE:-$HOME/.cache/pilothouse}"
bin="$cache/testenv/k8s-$k8s_version-etcd-$etcd_version"

if ! command -v go >/dev/null 2>&1; then
  echo "error: Go is needed to build the test cluster binaries (kube-apiserver, etcd); install Go >= 1.25 and re-run $0" >&2
  exit 1
fi

export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOFLAGS=-modcacherw GOTOOLCHAIN=local CGO_ENABLED=0

# Stamp the Kubernetes version into the binaries, as the release build does, so
# /version reports it (clients check it).
minor=${k8s_version#v1.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
ldflags="-X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"

build() { # name package
  local name=$1 pkg=$2
  if [ -x "$bin/$name" ]; then return; fi
  echo "building $name ($pkg) into $bin — a cold build takes several minutes" >&2
  mkdir -p "$bin"
  (cd "$mod" && go build -trimpath -ldflags="-s $ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
}

build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
echo "$bin"
