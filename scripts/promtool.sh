#!/usr/bin/env bash
# Prints the path of promtool (Prometheus' rule and metrics checker, used by test/ops), fetching it once from Debian's
# `prometheus` package into ~/.cache/cdc-stack: only the binary is unpacked, so no Prometheus server gets installed
# or started. Idempotent; exits 1 with the reason when it cannot be had (no apt, no network).
set -euo pipefail
if command -v promtool >/dev/null; then command -v promtool; exit 0; fi
dir="${XDG_CACHE_HOME:-$HOME/.cache}/cdc-stack/promtool"
if [ -x "$dir/promtool" ]; then echo "$dir/promtool"; exit 0; fi
command -v apt-get >/dev/null || { echo "promtool: not on PATH and apt-get is missing" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus >/dev/null 2>&1; then
  # A fresh machine may not have package lists yet.
  { apt-get update -qq && apt-get download prometheus; } >/dev/null 2>&1 || { echo "promtool: apt-get download prometheus failed" >&2; exit 1; }
fi
dpkg-deb -x prometheus_*.deb root
mkdir -p "$dir"
install -m 0755 root/usr/bin/promtool "$dir/promtool.tmp"
mv -f "$dir/promtool.tmp" "$dir/promtool"
echo "$dir/promtool"
