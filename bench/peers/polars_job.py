"""The batch job done the idiomatic Polars way (lazy API, streaming engine).

NDJSON -> join the service catalogue -> flags -> hive-partitioned Parquet lake
(service, date; zstd) -> 10 s rollups per service from the lake -> one Parquet file.

Usage: polars_job.py --input FILE --out DIR [--services config/services.toml] [--threads 2]

Output: DIR/events/service=S/date=D/*.parquet, DIR/rollups.parquet.
"""

import argparse
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--services", default="config/services.toml")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    # Polars sizes its thread pool once, at import: the limit must be set before.
    os.environ["POLARS_MAX_THREADS"] = str(a.threads)
    import polars as pl

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import catalog

    services, default_team, default_threshold = catalog.load(a.services)
    os.makedirs(a.out, exist_ok=True)
    events_dir = os.path.join(a.out, "events")
    rollups_file = os.path.join(a.out, "rollups.parquet")

    # The input's fields, typed up front (no inference). The timestamp is read as a string
    # and parsed with an explicit format: a Datetime in the NDJSON schema parses the same
    # values about 10x slower (polars 2.1, measured at 1M lines).
    schema = {
        "service": pl.String,
        "timestamp": pl.String,
        "status_code": pl.Int32,
        "latency_ms": pl.Float64,
        "error": pl.Boolean,
        "endpoint": pl.String,
        "method": pl.String,
        "region": pl.String,
        "instance": pl.String,
        "trace_id": pl.String,
    }
    svc = pl.LazyFrame(
        {
            "service": [s for s, _, _ in services],
            "svc_team": [t for _, t, _ in services],
            "threshold_ms": [x for _, _, x in services],
        }
    )

    events = (
        pl.scan_ndjson(a.input, schema=schema)
        .join(svc, on="service", how="left")
        .with_columns(
            pl.col("timestamp").str.to_datetime(
                "%Y-%m-%dT%H:%M:%S%.fZ", time_unit="us", time_zone="UTC"
            )
        )
        .select(
            "timestamp",
            "status_code",
            "latency_ms",
            "error",
            ((pl.col("status_code") >= 500) | pl.col("error").fill_null(False)).alias("is_error"),
            (pl.col("latency_ms") > pl.col("threshold_ms").fill_null(default_threshold)).alias("is_slow"),
            pl.col("svc_team").fill_null(default_team).alias("team"),
            "endpoint",
            "method",
            "region",
            "instance",
            "trace_id",
            "service",
            pl.col("timestamp").dt.date().alias("date"),
        )
    )
    events.sink_parquet(
        pl.PartitionBy(events_dir, key=["service", "date"]),
        compression="zstd",
        mkdir=True,
    )

    rollups = (
        pl.scan_parquet(os.path.join(events_dir, "**", "*.parquet"), hive_partitioning=True)
        .group_by("service", pl.col("timestamp").dt.truncate("10s").alias("window_start"))
        .agg(
            pl.lit(10, pl.Int32).alias("window_seconds"),
            pl.col("team").first(),
            pl.len().cast(pl.Int64).alias("count"),
            pl.col("is_error").sum().cast(pl.Int64).alias("errors"),
            pl.col("is_slow").sum().cast(pl.Int64).alias("slow"),
            pl.col("latency_ms").mean().alias("latency_avg_ms"),
            pl.col("latency_ms").quantile(0.50, interpolation="linear").alias("latency_p50_ms"),
            pl.col("latency_ms").quantile(0.95, interpolation="linear").alias("latency_p95_ms"),
            pl.col("latency_ms").quantile(0.99, interpolation="linear").alias("latency_p99_ms"),
            pl.col("latency_ms").max().alias("latency_max_ms"),
        )
        .with_columns(
            (pl.col("errors") / pl.col("count")).alias("error_rate"),
            (pl.col("slow") / pl.col("count")).alias("slow_rate"),
        )
    )
    rollups.sink_parquet(rollups_file, compression="zstd")


if __name__ == "__main__":
    main()
