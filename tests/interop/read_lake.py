"""Reads a telltale lake with engines telltale does not ship: pyarrow and DuckDB.

Usage: read_lake.py LAKE_DIR EXPECTED_EVENTS EXPECTED_PROBES EXPECTED_CHECKS
Checks: row counts, hive partitions (with a percent-encoded service name decoded back),
UTC microsecond timestamps, flags, rollups summing to the event count, URL check results
in the monitors table.
"""
import sys

import duckdb
import pyarrow.dataset as ds
import pyarrow as pa

lake, want_events, want_probes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
want_checks = int(sys.argv[4])
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


# --- pyarrow -------------------------------------------------------------------------
events = ds.dataset(f"{lake}/events", format="parquet", partitioning="hive").to_table()
check("pyarrow: every event", events.num_rows == want_events, f"{events.num_rows} != {want_events}")
ts = events.schema.field("timestamp").type
check("pyarrow: timestamp is timestamp[us, UTC]", ts == pa.timestamp("us", tz="UTC"), str(ts))
services = set(events.column("service").to_pylist())
check("pyarrow: percent-encoded name decoded", "team/a b" in services, str(sorted(services))[:300])
check("pyarrow: catalogue service present", "auth-service" in services)
check("pyarrow: date partition", all(len(d) == 10 for d in set(events.column("date").to_pylist())))
rollups = ds.dataset(f"{lake}/rollups", format="parquet", partitioning="hive").to_table()
# A monitor's rollups carry its URL as the service (one event per check result).
counts = [
    (s, c) for s, c in zip(rollups.column("service").to_pylist(), rollups.column("count").to_pylist())
]
check("pyarrow: rollups sum to events", sum(c for s, c in counts if not s.startswith("http")) == want_events)
check("pyarrow: monitor rollups sum to checks", sum(c for s, c in counts if s.startswith("http")) == want_checks)
monitors = ds.dataset(f"{lake}/monitors", format="parquet", partitioning="hive").to_table()
check("pyarrow: every check result", monitors.num_rows == want_checks, f"{monitors.num_rows} != {want_checks}")
ids = sorted(monitors.column("monitor_id").to_pylist())
check("pyarrow: monitor_id partitions", ids == ["adhoc", "m1"], str(ids))
mts = monitors.schema.field("timestamp").type
check("pyarrow: check timestamp is timestamp[us, UTC]", mts == pa.timestamp("us", tz="UTC"), str(mts))
check("pyarrow: phases are float64", monitors.schema.field("tls_ms").type == pa.float64())
probes = ds.dataset(f"{lake}/probes", format="parquet", partitioning="hive").to_table()
check("pyarrow: every probe", probes.num_rows == want_probes, f"{probes.num_rows} != {want_probes}")
hops = probes.column("hops").to_pylist()[0]
check("pyarrow: probe hops are a list of structs", isinstance(hops, list) and "ttl" in hops[0], str(hops)[:200])

# --- DuckDB --------------------------------------------------------------------------
con = duckdb.connect()
con.execute("SET threads = 2")
n = con.execute(
    f"SELECT count(*) FROM read_parquet('{lake}/events/*/*/*.parquet', hive_partitioning = true)"
).fetchone()[0]
check("duckdb: every event", n == want_events, f"{n} != {want_events}")
bad = con.execute(
    f"""SELECT count(*) FROM read_parquet('{lake}/events/*/*/*.parquet', hive_partitioning = true)
        WHERE is_error <> (status_code >= 500 OR coalesce(error, false))"""
).fetchone()[0]
check("duckdb: is_error agrees with status_code and error", bad == 0, str(bad))
typ = con.execute(
    f"SELECT typeof(timestamp) FROM read_parquet('{lake}/events/*/*/*.parquet') LIMIT 1"
).fetchone()[0]
check("duckdb: timestamp WITH TIME ZONE", typ == "TIMESTAMP WITH TIME ZONE", typ)
p95 = con.execute(
    f"""SELECT service, quantile_cont(latency_ms, 0.95) FROM
        read_parquet('{lake}/events/*/*/*.parquet', hive_partitioning = true)
        WHERE service = 'auth-service' GROUP BY service"""
).fetchall()
check("duckdb: partition filter and quantile", len(p95) == 1 and p95[0][1] > 0, str(p95))
names = {r[0] for r in con.execute(
    f"SELECT DISTINCT service FROM read_parquet('{lake}/events/*/*/*.parquet', hive_partitioning = true)"
).fetchall()}
# The partition value in the path is percent-encoded (`service=team%2Fa b`); DuckDB must
# give back the name the sender used, not the encoded one.
check("duckdb: percent-encoded name decoded", "team/a b" in names and "team%2Fa b" not in names, str(sorted(names))[:300])

ups = con.execute(
    f"""SELECT monitor_id, up, error, status_code FROM
        read_parquet('{lake}/monitors/*/*/*.parquet', hive_partitioning = true) ORDER BY monitor_id"""
).fetchall()
check(
    "duckdb: check results with monitor_id",
    ups == [("adhoc", False, "connect_refused", None), ("m1", True, None, 200)],
    str(ups),
)

print(f"interop: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
