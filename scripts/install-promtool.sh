#!/usr/bin/env bash
# Builds promtool and amtool, the real checkers for the Prometheus configuration,
# alert rules and Alertmanager configuration in manifests/, from Go modules
# (testenv-tools/prometheus), into a cache outside the clone keyed by version.
# crates/pilothouse/tests/desired_state.rs runs them on the rendered overlays.
# Idempotent: a warm cache makes this a no-op. Prints the binary directory last.
#
#   PILOTHOUSE_CACHE   cache root (default ~/.cache/pilothouse)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
mod="$here/testenv-tools/prometheus"
prom_version=$(awk '$1 == "github.com/prometheus/prometheus" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")
am_version=$(awk '$1 == "github.com/prometheus/alertmanager" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")
if [ -z "$prom_version" ] || [ -z "$am_version" ]; then
  echo "error: could not read the Prometheus/Alertmanager versions from $mod/go.mod" >&2
  exit 1
fi
cache="${PILOTHOUSE_CACHE:-$HOME/.cache/pilothouse}"
bin="$cache/tools/prometheus-$prom_version-alertmanager-$am_version"

if ! command -v go >/dev/null 2>&1; then
  echo "error: Go is needed to build promtool and amtool; install Go (the version in testenv-tools/prometheus/go.mod or newer) and re-run $0" >&2
  exit 1
fi

export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOFLAGS=-modcacherw GOTOOLCHAIN=local CGO_ENABLED=0

# The Go module v0.3MM.P of Prometheus is release 3.MM.P; stamp the release
# versions in, as the release build does, so `promtool --version` tells them.
minor=${prom_version#v0.3}; minor=${minor%%.*}; minor=$((10#$minor))
patch=${prom_version##*.}
vpkg=github.com/prometheus/common/version

build() { # name package version [build tags]
  local name=$1 pkg=$2 version=$3 tags=${4:-}
  if [ -x "$bin/$name" ]; then return; fi
  echo "building $name ($pkg) into $bin — a cold build takes a few minutes" >&2
  mkdir -p "$bin"
  (cd "$mod" && go build -trimpath -tags "$tags" -ldflags="-s -X $vpkg.Version=$version" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
}

# Only Kubernetes service discovery is compiled in (Prometheus's own build tags):
# the cloud SDKs of the other discovery mechanisms triple the build time, and
# manifests/prometheus/prometheus.yml uses kubernetes_sd_configs only. A config
# using another mechanism (dns_sd_configs, ec2_sd_configs, ...) needs its
# enable_<name>_sd tag added here, or promtool rejects the unknown field.
build promtool github.com/prometheus/prometheus/cmd/promtool "3.$minor.$patch" remove_all_sd,enable_kubernetes_sd
build amtool github.com/prometheus/alertmanager/cmd/amtool "${am_version#v}"
echo "$bin"
