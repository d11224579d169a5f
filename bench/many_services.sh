#!/usr/bin/env bash
# Many distinct service names (#12 item 6): EVENTS plain events spread over SERVICES names
# through `telltale process --input`, for each SERVICES in the list, with the default
# limits.max_services. Prints wall time, peak RSS, lake files and dead-lettered events.
#
#   bash bench/many_services.sh [EVENTS] [SERVICES...]     (default: 300000 20 10000 100000)
#
# TELLTALE_BIN picks the binary (default target/release/telltale, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-300000}
shift || true
LIST=("$@")
((${#LIST[@]})) || LIST=(20 10000 100000)
BIN=${TELLTALE_BIN:-target/release/telltale}
[[ -x $BIN ]] || cargo build --release --locked
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
printf '%-9s %-9s %9s %10s %11s %11s %13s\n' events services wall_s peak_MiB lake_files dead_events tracked
for services in "${LIST[@]}"; do
  input=$WORK/in-$services.ndjson
  python3 - "$EVENTS" "$services" > "$input" <<'PY'
import sys, time
events, services = int(sys.argv[1]), int(sys.argv[2])
t0 = int(time.time() * 1000) - 3_600_000
out = sys.stdout
for i in range(events):
    status = 503 if i % 50 == 0 else 200
    out.write(f'{{"service":"svc-{i % services}","timestamp":{t0 + i * 10},"status_code":{status},"latency_ms":{i % 400}.5}}\n')
PY
  lake=$WORK/lake-$services
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$BIN" --log warn process --input "$input" --data-dir "$lake" 2>"$WORK/err" ||
    { cat "$WORK/err"; exit 1; }
  read -r wall kb < "$WORK/time"
  files=$(find "$lake/events" "$lake/rollups" -name '*.parquet' | wc -l)
  dead=$(cat "$lake"/deadletter/*/*.ndjson 2>/dev/null | grep -c '"reason":"service_limit"' || true)
  tracked=$(find "$lake/events" -maxdepth 1 -name 'service=*' | wc -l)
  printf '%-9s %-9s %9s %10s %11s %11s %13s\n' "$EVENTS" "$services" "$wall" "$((kb / 1024))" "$files" "$dead" "$tracked"
done
