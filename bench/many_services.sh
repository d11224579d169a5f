#!/usr/bin/env bash
# Many distinct service names (#12 item 6): EVENTS plain events spread over SERVICES names
# through `telltale process --input`, for each SERVICES in the list, with the default
# limits.max_services. Prints wall time, peak RSS, lake files and dead-lettered events;
# then serves the same lake (`telltale process --listen`, the SLO engine primed from it) and
# times GET /api/v1/slo and GET / (mean of 20 requests each, curl).
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
printf '%-9s %-9s %9s %10s %11s %11s %8s %12s %12s %10s\n' events services wall_s peak_MiB lake_files dead_events tracked api_slo_ms api_slo_KiB page_ms
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
  # The same lake served: the status page's data for every tracked service.
  "$BIN" --log warn process --listen 127.0.0.1:0 --print-address --data-dir "$lake" \
    >"$WORK/addr" 2>>"$WORK/err" &
  pid=$!
  for _ in $(seq 600); do [[ -s $WORK/addr ]] && break; sleep 0.1; done
  addr=$(head -n1 "$WORK/addr")
  # Primed from the lake's rollups before it answers: wait until every tracked service is in.
  for _ in $(seq 600); do
    n=$(curl -sf "http://$addr/api/v1/slo" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["services"]))' 2>/dev/null || echo 0)
    ((n >= tracked)) && break
    sleep 0.2
  done
  mean_ms() {
    local total=0 size=0 t s
    for _ in $(seq 20); do
      read -r t s < <(curl -sf -o /dev/null -w '%{time_total} %{size_download}\n' "http://$addr$1")
      total=$(python3 -c "print($total + $t)"); size=$s
    done
    python3 -c "print(f'{$total / 20 * 1000:.1f} {$size / 1024:.0f}')"
  }
  read -r slo_ms slo_kib < <(mean_ms /api/v1/slo)
  read -r page_ms _ < <(mean_ms /)
  kill -TERM "$pid"; wait "$pid" || true
  printf '%-9s %-9s %9s %10s %11s %11s %8s %12s %12s %10s\n' "$EVENTS" "$services" "$wall" "$((kb / 1024))" "$files" "$dead" "$tracked" "$slo_ms" "$slo_kib" "$page_ms"
done
