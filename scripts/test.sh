#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (the
# test-cluster binaries, built from Go modules into a cache outside the clone),
# then runs formatting, lints and every test of the workspace.
#
#   PILOTHOUSE_CACHE   cache root for Go/Rust build caches and binaries (default ~/.cache/pilothouse)
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

step() { printf '\n==> %s\n' "$*"; }

step "test cluster binaries"
bash scripts/install-test-binaries.sh
for extra in scripts/install-promtool.sh; do
  if [ -f "$extra" ]; then bash "$extra"; fi
done

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

step "cargo test"
cargo test --workspace --locked
