#!/usr/bin/env bash
# `bun run build`: the one self-contained executable (default ./cdc, or the path given), with the commit and the build
# date baked in for `cdc --version` and cdc_build_info. CDC_BUILD_COMMIT / SOURCE_DATE_EPOCH override them (the
# Docker build has no .git; a fixed SOURCE_DATE_EPOCH makes two builds of one commit identical).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-cdc}"
commit="${CDC_BUILD_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then date="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
else date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"; fi
case "$commit$date" in *[!A-Za-z0-9:.+-]*) echo "build: unexpected characters in commit or date" >&2; exit 2 ;; esac
exec bun build --compile --minify-syntax --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
  --define "CDC_BUILD_COMMIT=\"$commit\"" --define "CDC_BUILD_DATE=\"$date\"" src/cli.ts --outfile "$out"
