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
# URL check results: a scheduled monitor's and the line `telltale monitor check` prints for
# a port nobody listens on (a one-off check, filed under monitor_id=adhoc).
echo "{\"kind\":\"http\",\"url\":\"https://example.com/health\",\"monitor_id\":\"m1\",\"timestamp\":\"$now\",\"status_code\":200,\"duration_ms\":12.5,\"tls_ms\":3.5,\"redirects\":0,\"error\":null}" >> "$tmp/in.ndjson"
"$BIN" monitor check http://127.0.0.1:9/ >> "$tmp/in.ndjson" 2>/dev/null || true
"$BIN" --log warn process --input "$tmp/in.ndjson" --data-dir "$tmp/lake"
probes=$(grep -c '"kind":"probe"' "$tmp/in.ndjson")
checks=$(grep -c '"kind":"http"' "$tmp/in.ndjson")
events=$(( $(wc -l < "$tmp/in.ndjson") - probes - checks ))
"$VENV/bin/python" tests/interop/read_lake.py "$tmp/lake" "$events" "$probes" "$checks"
