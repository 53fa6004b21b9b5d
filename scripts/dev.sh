#!/usr/bin/env bash
# The whole pipeline locally on a fresh machine: pinned Bun, dependencies, the local stack, the `cdc` binary,
# migrations (demo schema + capture), then `cdc all` (relay, consumer, API on http://127.0.0.1:8080) until Ctrl-C.
# The demo application is opt-in; this script turns it on.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bun-env.sh
bun install --frozen-lockfile
bash test/stack/stack.sh up
bun run build
export CDC_DEMO_ENABLED=true
./cdc migrate
exec ./cdc all "$@"
