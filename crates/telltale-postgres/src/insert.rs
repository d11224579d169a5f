//! Writing results: one transaction per batch, two statements whose parameters are
//! arrays (`unnest`), so a batch of any size is two round trips. A result already stored
//! (same monitor, same start time: a retry or a replay) inserts nothing. Rows are
//! inserted in the batch's order (`WITH ORDINALITY`), so the ids follow arrival.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::error::PgError;
use crate::row::CheckRow;

/// Registers each monitor of the batch that `urltargets` lacks (results may come from
/// another processor's monitors, through ingest).
const TARGETS: &str = "INSERT INTO urltargets (monitor_id, urltarget, monitor_frequency) \
     SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::int2[]) \
     ON CONFLICT DO NOTHING";

const RESULTS: &str = "INSERT INTO monitor_results (urltarget_fk, start_time, http_status, \
     duration, dns_ms, connect_ms, tls_ms, ttfb_ms, transfer_ms, redirects, body_bytes, \
     cert_expiry_days, final_url, error, error_message, up) \
     SELECT t.urltargets_pk, x.start_time, x.http_status, x.duration, x.dns_ms, \
     x.connect_ms, x.tls_ms, x.ttfb_ms, x.transfer_ms, x.redirects, x.body_bytes, \
     x.cert_expiry_days, x.final_url, x.error, x.error_message, x.up \
     FROM unnest($1::varchar[], $2::timestamptz[], $3::int2[], $4::float8[], $5::float8[], \
     $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::int4[], $11::int8[], \
     $12::float8[], $13::varchar[], $14::varchar[], $15::text[], $16::bool[]) WITH ORDINALITY \
     AS x(monitor_id, start_time, http_status, duration, dns_ms, connect_ms, tls_ms, \
     ttfb_ms, transfer_ms, redirects, body_bytes, cert_expiry_days, final_url, error, \
     error_message, up, ord) \
     JOIN urltargets t ON t.monitor_id = x.monitor_id ORDER BY x.ord \
     ON CONFLICT ON CONSTRAINT monitor_results_once DO NOTHING";

fn col<T: Clone>(rows: &[CheckRow], f: impl Fn(&CheckRow) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// Writes `rows` in one transaction; how many were new (the rest were there already).
pub async fn insert(client: &mut Client, rows: &[CheckRow]) -> Result<u64, PgError> {
    let what = |s: &str| format!("{s} ({} results)", rows.len());
    let tx = client
        .transaction()
        .await
        .map_err(|source| PgError::Query {
            what: what("opening a transaction"),
            source,
        })?;
    let mut monitors: Vec<&CheckRow> = rows.iter().collect();
    monitors.sort_by(|a, b| a.monitor_id.cmp(&b.monitor_id));
    monitors.dedup_by(|a, b| a.monitor_id == b.monitor_id);
    let ids: Vec<&str> = monitors.iter().map(|r| r.monitor_id.as_str()).collect();
    let urls: Vec<&str> = monitors.iter().map(|r| r.url.as_str()).collect();
    let freqs: Vec<i16> = monitors.iter().map(|r| r.frequency_min).collect();
    tx.execute(TARGETS, &[&ids, &urls, &freqs])
        .await
        .map_err(|source| PgError::Query {
            what: what("registering the monitors"),
            source,
        })?;
    let start: Vec<DateTime<Utc>> = col(rows, |r| {
        DateTime::from_timestamp_micros(r.start_us).unwrap_or_default()
    });
    let inserted = tx
        .execute(
            RESULTS,
            &[
                &col(rows, |r| r.monitor_id.clone()),
                &start,
                &col(rows, |r| r.http_status),
                &col(rows, |r| r.duration_ms),
                &col(rows, |r| r.dns_ms),
                &col(rows, |r| r.connect_ms),
                &col(rows, |r| r.tls_ms),
                &col(rows, |r| r.ttfb_ms),
                &col(rows, |r| r.transfer_ms),
                &col(rows, |r| r.redirects),
                &col(rows, |r| r.body_bytes),
                &col(rows, |r| r.cert_expiry_days),
                &col(rows, |r| r.final_url.clone()),
                &col(rows, |r| r.error.clone()),
                &col(rows, |r| r.error_message.clone()),
                &col(rows, |r| r.up),
            ],
        )
        .await
        .map_err(|source| PgError::Query {
            what: what("inserting"),
            source,
        })?;
    tx.commit().await.map_err(|source| PgError::Query {
        what: what("committing"),
        source,
    })?;
    Ok(inserted)
}
