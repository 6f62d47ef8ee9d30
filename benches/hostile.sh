#!/usr/bin/env bash
# Hostile clients and faults at full scale (issue 15's sizes: 1,000 slowloris connections,
# 10,000 idle connections, ...), one test at a time against the release binary, so the
# concurrent viewer's lag with and without each attack is measured on a quiet machine.
# Prints the figures and writes them to benches/results/hostile-<commit>.jsonl.
#
#     benches/hostile.sh            # tests/hostile.rs and tests/faults.rs, about 8 minutes
#     LLHLS_HOSTILE_SERVER_ARGS="--send-unsent-bytes 0" benches/hostile.sh   # other server flags
#     benches/hostile.sh slow_readers   # only the tests whose names contain this
#
# The same tests run at a small scale in `cargo test` (CI); there they assert only counts.
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git rev-parse --short HEAD)$( [ -z "$(git status --porcelain --untracked-files=no)" ] || echo +dirty)
# A run of some tests only (a name filter) goes to its own file.
out=benches/results/hostile-$commit${1:+-$1}.jsonl
log=$(mktemp)
# 10,000 idle connections need 10,000 descriptors on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
LLHLS_HOSTILE_SCALE=full cargo test --release --test hostile --test faults -- --test-threads 1 --nocapture "$@" \
  2>&1 | tee "$log" | grep -E '^test |HOSTILE|FAULT' || true
# With --nocapture a line can start with the test's name: take the JSON wherever it is.
grep -oE '(HOSTILE|FAULT) \{.*\}' "$log" | sed -E 's/^(HOSTILE|FAULT) //' \
  | python3 -c 'import json,sys,time
for l in sys.stdin:
    r = json.loads(l); r["commit"] = sys.argv[1]; r["date"] = time.strftime("%Y-%m-%d")
    if sys.argv[2]: r["server_args"] = sys.argv[2]
    print(json.dumps(r))' "$commit" "${LLHLS_HOSTILE_SERVER_ARGS:-}" >> "$out"
echo "appended to $out"
if grep -q 'FAILED\|panicked' "$log"; then
  echo "hostile.sh: a test failed (full log: $log)" >&2
  exit 1
fi
