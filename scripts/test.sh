#!/usr/bin/env bash
# The full test suite on a fresh machine: pinned Bun, dependencies, the local stack (PostgreSQL, Kafka, FerretDB),
# then `bun test`. Extra arguments go to `bun test` (e.g. a file or -t pattern).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bun-env.sh
bun install --frozen-lockfile
bash test/stack/stack.sh up
# promtool checks the metrics and docs/alerts.yml (test/ops); its tests say so and skip when it cannot be fetched.
bash scripts/promtool.sh >/dev/null || echo "promtool unavailable: its checks will be skipped" >&2
# Tests talk to real servers and some kill and restart them: 60 s per test (bunfig has no timeout key).
exec bun test --timeout 60000 "$@"
