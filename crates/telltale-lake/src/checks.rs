//! The `monitors` table read back at start-up: the URL check results of the last hours,
//! for the PostgreSQL sink to catch up on what a crash of telltale cut off (results the
//! write-ahead log replayed into the lake but no sink saw). Read with the parquet crate,
//! only the partitions of the dates asked for, like `history`.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use telltale_core::HttpCheckEvent;
use telltale_core::event::ADHOC_MONITOR_ID;

use crate::error::{LakeError, Result};
use crate::layout::Table;
use crate::parquet_io::decode;
use crate::store::{LakeStore, partition_files_since};

/// Every scheduled check result (not the `adhoc` partition) that started at or after
/// `since_us`, in file order.
pub fn checks_since(store: &dyn LakeStore, since_us: i64) -> Result<Vec<HttpCheckEvent>> {
    let since_date = telltale_core::event::utc_date(since_us);
    let mut out = Vec::new();
    for (file, key) in partition_files_since(store, Table::Monitors, &since_date)? {
        if key.key == ADHOC_MONITOR_ID {
            continue;
        }
        let decoded = decode(store.read(&file.rel_path)?, true, &file.rel_path)?;
        for batch in &decoded.batches {
            rows(batch, &key.key, since_us, &mut out).ok_or_else(|| LakeError::SchemaMismatch {
                file: file.rel_path.clone(),
                table: "monitors",
                detail: "a column is missing or of another type".into(),
            })?;
        }
    }
    Ok(out)
}

fn rows(
    batch: &RecordBatch,
    monitor_id: &str,
    since_us: i64,
    out: &mut Vec<HttpCheckEvent>,
) -> Option<()> {
    let col = |name: &str| batch.column_by_name(name);
    let ts = col("timestamp")?.as_primitive_opt::<TimestampMicrosecondType>()?;
    let url = col("url")?.as_string_opt::<i32>()?;
    let every = col("every_s")?.as_primitive_opt::<Int64Type>()?;
    let status = col("status_code")?.as_primitive_opt::<Int32Type>()?;
    let f64s = |name: &str| col(name)?.as_primitive_opt::<Float64Type>();
    let (duration, dns, connect, tls, ttfb, transfer, expiry) = (
        f64s("duration_ms")?,
        f64s("dns_ms")?,
        f64s("connect_ms")?,
        f64s("tls_ms")?,
        f64s("ttfb_ms")?,
        f64s("transfer_ms")?,
        f64s("cert_expiry_days")?,
    );
    let redirects = col("redirects")?.as_primitive_opt::<Int64Type>()?;
    let body = col("body_bytes")?.as_primitive_opt::<Int64Type>()?;
    let final_url = col("final_url")?.as_string_opt::<i32>()?;
    let error = col("error")?.as_string_opt::<i32>()?;
    let message = col("error_message")?.as_string_opt::<i32>()?;
    let opt =
        |a: &arrow::array::PrimitiveArray<Float64Type>, i: usize| a.is_valid(i).then(|| a.value(i));
    let text =
        |a: &arrow::array::StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_owned());
    for i in 0..batch.num_rows() {
        if ts.value(i) < since_us {
            continue;
        }
        out.push(HttpCheckEvent {
            url: url.value(i).to_owned(),
            monitor_id: Some(monitor_id.to_owned()),
            every_s: every
                .is_valid(i)
                .then(|| every.value(i))
                .and_then(|v| u64::try_from(v).ok()),
            timestamp_us: ts.value(i),
            status_code: status
                .is_valid(i)
                .then(|| status.value(i))
                .and_then(|v| u16::try_from(v).ok()),
            duration_ms: duration.value(i),
            dns_ms: opt(dns, i),
            connect_ms: opt(connect, i),
            tls_ms: opt(tls, i),
            ttfb_ms: opt(ttfb, i),
            transfer_ms: opt(transfer, i),
            redirects: u32::try_from(redirects.value(i)).unwrap_or(u32::MAX),
            body_bytes: body
                .is_valid(i)
                .then(|| body.value(i))
                .and_then(|v| u64::try_from(v).ok()),
            cert_expiry_days: opt(expiry, i),
            final_url: text(final_url, i),
            error: text(error, i),
            error_message: text(message, i),
        });
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{DAY0, check};
    use crate::store::LocalDisk;
    use crate::writer::{LakeWriter, WriterOptions};
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn scheduled_checks_since_a_time_come_back_as_they_were_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalDisk::new(dir.path()));
        let mut w = LakeWriter::new(store.clone(), WriterOptions::default()).unwrap();
        let mut adhoc = check("x", DAY0 + 2, Some(200));
        adhoc.monitor_id = None;
        let written = vec![
            check("m1", DAY0 - 1, Some(200)),
            check("m1", DAY0, Some(503)),
            check("m2", DAY0 + 1, None),
            adhoc,
        ];
        w.append_checks(written.clone(), Instant::now()).unwrap();
        w.flush_all().unwrap();
        let mut got = checks_since(store.as_ref(), DAY0).unwrap();
        got.sort_by_key(|c| c.timestamp_us);
        assert_eq!(got, written[1..3].to_vec());
    }
}
