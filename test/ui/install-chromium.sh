#!/usr/bin/env bash
# Installs Chromium for the console's browser tests when /usr/bin/chromium is missing (idempotent). apt-get update
# runs only when the install fails, so a machine with fresh package lists needs no network round trip for it.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
install() { as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends chromium; }
echo "[ui] installing chromium" >&2
if ! install >&2; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update >&2
  install >&2
fi
[ -x "$CHROMIUM" ] || { echo "[ui] chromium is still missing at $CHROMIUM" >&2; exit 1; }
