#!/usr/bin/env bash
# OTLP vs NDJSON over HTTP (issue #16): the same events, as `telltale loadtest` makes them,
# sent to one release `telltale process` as NDJSON lines (POST /v1/events) and as OTLP/HTTP
# protobuf server spans (POST /v1/traces), alternating, ROUNDS times each. Reports events/s,
# acknowledgement p99, and the server's CPU time per event (utime+stime from /proc) for
# each, and the ratio OTLP/NDJSON of the medians. Each run's lake is checked (every
# acknowledged event present once, unchanged).
#
#   bash bench/otlp.sh [ROUNDS] [DURATION]      (defaults 3, 15s)
#
# TELLTALE_BIN: a prebuilt binary (default: cargo build --release, then target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
DURATION=${2:-15s}
CONNECTIONS=${CONNECTIONS:-8}
BATCH=${BATCH:-1000}
if [[ -z ${TELLTALE_BIN:-} ]]; then
  cargo build --release -p telltale --locked >&2
  TELLTALE_BIN=target/release/telltale
fi
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
TICKS=$(getconf CLK_TCK)

cpu_s() { awk -v t="$TICKS" '{print ($14 + $15) / t}' "/proc/$1/stat"; }

results=()
for round in $(seq 1 "$ROUNDS"); do
  for protocol in ndjson otlp; do
    data="$WORK/lake-$protocol-$round"
    "$TELLTALE_BIN" process --listen 127.0.0.1:0 --print-address --data-dir "$data" \
      > "$WORK/addr" 2> "$WORK/server.log" &
    SERVER=$!
    until [[ -s $WORK/addr ]]; do sleep 0.1; done
    addr=$(head -1 "$WORK/addr")
    before=$(cpu_s "$SERVER")
    "$TELLTALE_BIN" loadtest --url "http://$addr" --protocol "$protocol" --phases steady \
      --connections "$CONNECTIONS" --batch-lines "$BATCH" --duration "$DURATION" \
      --data-dir "$data" --json "$WORK/report.json" > /dev/null 2>&1
    after=$(cpu_s "$SERVER")
    kill -TERM "$SERVER"; wait "$SERVER" || true
    : > "$WORK/addr"
    line=$(python3 - "$WORK/report.json" "$protocol" "$before" "$after" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["steady"]; v = r["verification"]
assert not r["invalid_data"] and v["missing"] == 0 and v["altered"] == 0, r
cpu = float(sys.argv[4]) - float(sys.argv[3])
acked = s["events_acknowledged"]
print(json.dumps({"protocol": sys.argv[2], "events_per_s": s["sustained_events_per_s"],
                  "p99_ms": s["latency_ms"]["p99"], "cpu_us_per_event": cpu * 1e6 / max(acked, 1),
                  "acknowledged": acked}))
PY
)
    echo "$line"
    results+=("$line")
  done
done
printf '%s\n' "${results[@]}" | python3 -c "$(cat <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
keys = ("events_per_s", "p99_ms", "cpu_us_per_event")
med = {p: {k: statistics.median(r[k] for r in rows if r["protocol"] == p) for k in keys}
       for p in ("ndjson", "otlp")}
for p, m in med.items():
    print("%-7s median: %12.0f events/s  p99 %.1f ms  server CPU %.3f us/event"
          % (p, m["events_per_s"], m["p99_ms"], m["cpu_us_per_event"]))
cpu = med["otlp"]["cpu_us_per_event"] / med["ndjson"]["cpu_us_per_event"]
rate = med["otlp"]["events_per_s"] / med["ndjson"]["events_per_s"]
print("OTLP/NDJSON server CPU per event: %.2fx (goal <= 1.5x); events/s ratio %.2f" % (cpu, rate))
PY
)"
