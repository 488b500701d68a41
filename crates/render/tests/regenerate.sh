#!/usr/bin/env bash
# Regenerates the expected output of every fixture with the real
# `kubectl kustomize` (the oracle). Run from anywhere:
#
#   crates/render/tests/regenerate.sh [case ...]
#
# A fixture is a directory under fixtures/ holding an input tree. The
# directory rendered is the case directory itself, or the subdirectory named
# in its `render-dir` file. When kustomize succeeds its output is written to
# `expected.yaml`. When it fails, the case must hold `error-contains.txt`
# (a substring pilothouse's error must contain, written by hand); kustomize's
# own message is kept in `kustomize-error.txt` for reference.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fixtures="$here/fixtures"

if ! command -v kubectl >/dev/null 2>&1; then
  echo "kubectl is required (it provides 'kubectl kustomize', the oracle); install kubectl 1.32+" >&2
  exit 1
fi

cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
  mapfile -t cases < <(cd "$fixtures" && ls -d */ | tr -d /)
fi

status=0
for case in "${cases[@]}"; do
  dir="$fixtures/$case"
  render="$dir"
  if [ -f "$dir/render-dir" ]; then
    render="$dir/$(tr -d '[:space:]' < "$dir/render-dir")"
  fi
  if out="$(kubectl kustomize "$render" 2>"$dir/.stderr")"; then
    printf '%s\n' "$out" > "$dir/expected.yaml"
    rm -f "$dir/kustomize-error.txt"
    if [ -f "$dir/error-contains.txt" ]; then
      echo "$case: kustomize succeeded but error-contains.txt expects a failure" >&2
      status=1
    fi
    echo "ok    $case"
  else
    rm -f "$dir/expected.yaml"
    # Drop kubectl's log prefix (time stamps, pids) so the file is stable.
    sed -e 's/^E[0-9]* [0-9:.]* *[0-9]* run.go:[0-9]*\] //' "$dir/.stderr" \
      | sed -e "s#$fixtures/##g" > "$dir/kustomize-error.txt"
    if [ ! -f "$dir/error-contains.txt" ]; then
      echo "$case: kustomize failed and there is no error-contains.txt:" >&2
      cat "$dir/kustomize-error.txt" >&2
      status=1
    fi
    echo "error $case"
  fi
  rm -f "$dir/.stderr"
done
exit $status
