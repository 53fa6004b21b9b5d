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
log=$(mktemp)
set +e
bun test --timeout 60000 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Each failed test's error again at the end (up to 60 lines bun printed before its "(fail)" line): a log cut to
# its tail still says why.
awk '/^\(pass\)|^\(skip\)|^\(todo\)/ { n = 0; next }
     /^\(fail\)/ { if (!seen[$0]++) { print "=== why: " $0; for (i = 1; i <= n; i++) print buf[i] } n = 0; next }
     { if (n == 60) { for (i = 1; i < 60; i++) buf[i] = buf[i + 1]; n = 59 } buf[++n] = $0 }' "$log" | sed 's/^ *\([0-9][0-9]*\) \(pass\|fail\)$/(\1 \2)/'
rm -f "$log"
exit "$status"
