#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (the
# test-cluster binaries and promtool/amtool, built from Go modules into a cache
# outside the clone, while the Rust side is checked), then runs formatting,
# lints and every test of the workspace (test binaries in parallel, see
# scripts/run-tests.py).
#
#   PILOTHOUSE_CACHE       cache root for Go/Rust build caches and binaries (default ~/.cache/pilothouse)
#   PILOTHOUSE_TEST_JOBS   test binaries run at once (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in cargo go git kubectl python3 openssl ssh-keygen; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "error: missing tools: ${missing[*]}" >&2
  echo "  cargo:   Rust toolchain via rustup (with the rustfmt and clippy components)" >&2
  echo "  go:      Go >= 1.25, builds the kube-apiserver/etcd test binaries" >&2
  echo "  git:     the git CLI, used by the GitOps tests" >&2
  echo "  kubectl: the Kubernetes CLI (with its built-in kustomize), the tests' reference client" >&2
  echo "  python3: with venv, installs openapi-spec-validator, the OpenAPI document's checker" >&2
  echo "  openssl: the OpenSSL CLI, signs webhook deliveries independently of our code (Debian: openssl)" >&2
  echo "  ssh-keygen: from OpenSSH's client, makes passphrase-protected keys for the Git SSH tests (Debian: openssh-client)" >&2
  exit 1
fi

cache="${PILOTHOUSE_CACHE:-$HOME/.cache/pilothouse}"
# Rust build output lives outside the clone too, so a fresh clone builds warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/cargo-target}"
# Incremental data is per checkout path: for fresh clones (CI) it only
# fills the disk (tens of GiB over a few runs). Set it to 1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

# The Go-built tools (test clusters, promtool/amtool) and the Rust build are
# independent: the tools build in the background while formatting and lints
# run, and the tests wait for them.
step "test cluster binaries and Prometheus tools (in the background)"
tools_log="$cache/tools-build.log"
mkdir -p "$cache"
(
  bash scripts/install-test-binaries.sh
  for extra in scripts/install-promtool.sh; do
    if [ -f "$extra" ]; then bash "$extra"; fi
  done
) >"$tools_log" 2>&1 &
tools=$!
# a failing lint ends the run: the background build goes with it
trap 'kill "$tools" 2>/dev/null || true' EXIT
echo "building; log in $tools_log"

step "openapi-spec-validator"
venv="$cache/venv"
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check openapi-spec-validator==0.9.0
fi
export PILOTHOUSE_OPENAPI_VALIDATOR="$venv/bin/openapi-spec-validator"
echo "$PILOTHOUSE_OPENAPI_VALIDATOR"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "waiting for the test cluster binaries and Prometheus tools"
if ! wait "$tools"; then
  cat "$tools_log" >&2
  echo "error: building the test tools failed (log above, also in $tools_log)" >&2
  exit 1
fi
tail -n 3 "$tools_log"

step "cargo test (test binaries in parallel)"
python3 scripts/run-tests.py --locked
