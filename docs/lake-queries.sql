-- SQL over the telltale lake with datafusion-cli.
--
-- Start `datafusion-cli` in the repository root (where `data/` is) and paste this file,
-- or run `datafusion-cli -f docs/lake-queries.sql`. The files hold no partition columns:
-- `service` and `date` come from the directory names (`service=checkout-api/date=2025-04-30`),
-- and escaped names such as `service=a%2Fb` read back as `a/b`.
-- Tested by telltale-lake (`query::tests::lake_queries_sql_runs_in_a_plain_session`).

CREATE EXTERNAL TABLE events
STORED AS PARQUET
PARTITIONED BY (service, date)
LOCATION 'data/events/';

CREATE EXTERNAL TABLE rollups
STORED AS PARQUET
PARTITIONED BY (service, date)
LOCATION 'data/rollups/';

-- p95 latency by service, over every stored event.
SELECT service,
       count(*) AS requests,
       round(approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms), 2) AS p95_ms
FROM events
GROUP BY service
ORDER BY p95_ms DESC;

-- Error rate by owning team, from the per-window rollups.
SELECT team,
       sum(count) AS requests,
       sum(errors) AS errors,
       round(CAST(sum(errors) AS DOUBLE) / sum(count), 4) AS error_rate
FROM rollups
GROUP BY team
ORDER BY error_rate DESC;

-- The ten slowest endpoints by p99 latency.
SELECT service,
       endpoint,
       count(*) AS requests,
       round(avg(latency_ms), 2) AS avg_ms,
       round(approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms), 2) AS p99_ms
FROM events
WHERE endpoint IS NOT NULL
GROUP BY service, endpoint
ORDER BY p99_ms DESC
LIMIT 10;

-- One service today, per minute: the filter on the partition columns means only the
-- files under events/service=checkout-api/date=<today>/ are read. For another day write
-- the date itself: date = '2025-04-30'.
SELECT date_trunc('minute', timestamp) AS minute,
       count(*) AS requests,
       sum(CASE WHEN is_error THEN 1 ELSE 0 END) AS errors,
       max(latency_ms) AS max_ms
FROM events
WHERE service = 'checkout-api' AND date = CAST(current_date() AS VARCHAR)
GROUP BY date_trunc('minute', timestamp)
ORDER BY minute;

-- URL monitors (docs/monitors.md), in a lake that holds check results: availability and
-- p95 check duration per monitor.
CREATE EXTERNAL TABLE monitors
STORED AS PARQUET
PARTITIONED BY (monitor_id, date)
LOCATION 'data/monitors/';

SELECT monitor_id,
       count(*) AS checks,
       round(avg(CASE WHEN up THEN 1.0 ELSE 0.0 END), 4) AS availability,
       round(approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms), 2) AS p95_ms
FROM monitors
GROUP BY monitor_id
ORDER BY availability;
