#!/usr/bin/env bash
# The batch + streaming benchmark of issue #5 (bench/README.md): telltale against DuckDB and
# Polars on the same NDJSON file, the parse floor, and the HTTP load test. Writes
# $WORK/results.json, prints the summary, and regenerates the results section of
# docs/benchmarks.md and docs/img/bench-batch.png.
#
#   bash bench/run.sh [--count N] [--runs N] [--work DIR] [--contenders LIST] [--cpus LIST]
#                     [--no-streaming] [--stream-duration D] [--no-docs] [--keep-outputs]
#
# Every option is also an environment variable (flags win): COUNT, RUNS, WORK, CONTENDERS,
# CPUS, STREAMING, STREAM_DURATION, STREAM_CONNECTIONS, PORT, VERIFY, DOCS, KEEP_OUTPUTS,
# and TELLTALE_BIN / FLOOR_BIN to use prebuilt binaries instead of building them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1

say() { echo "[$(date +%H:%M:%S)] $*"; }
die() { say "ERROR: $*" >&2; exit 1; }
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

COUNT=${COUNT:-10000000}
RUNS=${RUNS:-5}
WORK=${WORK:-target/bench-work}
CONTENDERS=${CONTENDERS:-telltale,duckdb,polars}
STREAMING=${STREAMING:-1}
STREAM_DURATION=${STREAM_DURATION:-30s}
STREAM_CONNECTIONS=${STREAM_CONNECTIONS:-8}
PORT=${PORT:-0}
VERIFY=${VERIFY:-first}
DOCS=${DOCS:-1}
KEEP_OUTPUTS=${KEEP_OUTPUTS:-0}
PEER_THREADS=${PEER_THREADS:-2}
# Every contender (and the streaming server) runs on these CPUs: two, like the peers'
# thread limit. Unset: CPUs 0,1 on a machine with more than two, no pinning otherwise.
if [[ -z ${CPUS+x} ]]; then
  if (($(nproc) > 2)); then CPUS=0,1; else CPUS=; fi
fi

while (($#)); do
  case $1 in
    --count) COUNT=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --work) WORK=$2; shift ;;
    --contenders) CONTENDERS=$2; shift ;;
    --cpus) CPUS=$2; shift ;;
    --no-streaming) STREAMING=0 ;;
    --stream-duration) STREAM_DURATION=$2; shift ;;
    --no-docs) DOCS=0 ;;
    --keep-outputs) KEEP_OUTPUTS=1 ;;
    -h | --help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 >&2 ;;
  esac
  shift
done

[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "COUNT must be a positive integer, not '$COUNT'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
if [[ -n $CPUS ]]; then
  command -v taskset >/dev/null || die "CPUS=$CPUS needs taskset (util-linux); CPUS= runs unpinned"
fi

# 1. Binaries ------------------------------------------------------------------------
if [[ -n ${TELLTALE_BIN:-} ]]; then
  BIN=$TELLTALE_BIN
  say "telltale: using TELLTALE_BIN=$BIN"
else
  say "telltale: cargo build --release -p telltale"
  cargo build --release -p telltale
  BIN=target/release/telltale
fi
[[ -x $BIN ]] || die "$BIN is not an executable"

FLOOR=
if [[ -n ${FLOOR_BIN:-} ]]; then
  FLOOR=$FLOOR_BIN
  [[ -x $FLOOR ]] || die "FLOOR_BIN=$FLOOR is not an executable"
  say "floor: using FLOOR_BIN=$FLOOR"
elif [[ -f crates/telltale-core/examples/parse_floor.rs || -f crates/telltale-core/examples/parse_floor/main.rs ]]; then
  say "floor: cargo build --release -p telltale-core --example parse_floor"
  cargo build --release -p telltale-core --example parse_floor
  FLOOR=target/release/examples/parse_floor
else
  say "floor: skipped: crates/telltale-core/examples/parse_floor.rs does not exist (set FLOOR_BIN to use a prebuilt one)"
fi

# 2. Python venv with the pinned peers ---------------------------------------------
VENV=target/bench-venv
PY=$VENV/bin/python
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "python3 is $(python3 -V 2>&1); the peers need 3.11+ (tomllib)"
if [[ ! -x $PY ]]; then
  say "venv: creating $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian without python3-venv: no ensurepip. Make the venv without pip and install
    # pip into it with the system's pip.
    rm -rf "$VENV"
    python3 -m venv --without-pip "$VENV"
    python3 -m pip --python "$PY" install -q --disable-pip-version-check pip ||
      die "could not put pip into $VENV: apt-get install python3-venv (or python3-pip) and retry"
  fi
fi
say "venv: pip install -r bench/requirements.txt"
"$PY" -m pip install -q --disable-pip-version-check -r bench/requirements.txt

# 3. The input, once per (count, binary version) ------------------------------------
mkdir -p "$WORK"
INPUT=$WORK/events.ndjson
STAMP="seed=1 count=$COUNT $("$BIN" --version)"
if [[ -f $INPUT && -f $INPUT.stamp && $(cat "$INPUT.stamp") == "$STAMP" ]]; then
  say "input: reusing $INPUT ($STAMP)"
else
  say "input: $BIN sim --seed 1 --count $COUNT --output $INPUT"
  rm -f "$INPUT" "$INPUT.stamp"
  "$BIN" --log warn sim --seed 1 --count "$COUNT" --output "$INPUT.tmp"
  mv "$INPUT.tmp" "$INPUT"
  echo "$STAMP" >"$INPUT.stamp"
fi

# 4-6. Batch runs, floor, streaming -------------------------------------------------
args=(--bin "$BIN" --input "$INPUT" --work "$WORK" --runs "$RUNS" --contenders "$CONTENDERS"
  --cpus "$CPUS" --threads "$PEER_THREADS" --verify "$VERIFY" --streaming "$STREAMING"
  --stream-duration "$STREAM_DURATION" --stream-connections "$STREAM_CONNECTIONS" --port "$PORT"
  --floor-bin "$FLOOR")
((KEEP_OUTPUTS)) && args+=(--keep-outputs)
say "bench: $RUNS runs of $CONTENDERS, CPUs ${CPUS:-all}, streaming=$STREAMING"
"$PY" bench/bench.py "${args[@]}"

# 7-8. Report -----------------------------------------------------------------------
report=("$WORK/results.json")
((DOCS)) || report+=(--no-docs --no-png)
say "report: bench/report.py ${report[*]}"
"$PY" bench/report.py "${report[@]}"
say "done"
