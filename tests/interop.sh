#!/usr/bin/env bash
# The lake read by engines nobody here wrote (pyarrow, DuckDB), from a Python venv that
# this script makes. Needs target/debug/telltale (built by `cargo test --workspace`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TELLTALE_BIN:-target/debug/telltale}
VENV=target/interop-venv
if [[ ! -x $VENV/bin/python ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check 'duckdb>=1.1' 'pyarrow>=17'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BIN" sim --seed 5 --count 5000 --probe-target example.com --no-incidents --output "$tmp/in.ndjson"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# A service name that is unsafe in a path, to check the percent-encoding round trip.
for i in 1 2 3; do
  echo "{\"service\":\"team/a b\",\"timestamp\":\"$now\",\"status_code\":200,\"latency_ms\":$i}" >> "$tmp/in.ndjson"
done
"$BIN" --log warn process --input "$tmp/in.ndjson" --data-dir "$tmp/lake"
probes=$(grep -c '"kind":"probe"' "$tmp/in.ndjson")
events=$(( $(wc -l < "$tmp/in.ndjson") - probes ))
"$VENV/bin/python" tests/interop/read_lake.py "$tmp/lake" "$events" "$probes"
