//! The lake read back for the processor's start-up: per-service, per-minute counts from
//! the `rollups` table, which prime the SLO engine so that a restart keeps its budget and
//! burn-rate history.
//!
//! Read with the parquet crate (only the columns needed, only the partitions of the dates
//! asked for), not with SQL: the processor does not link a query engine. The result is
//! what `SELECT service, max(team), date_bin('1 minute', window_start), sum(count),
//! sum(errors), sum(slow) FROM rollups WHERE … GROUP BY 1, 3` gives in DataFusion; a test
//! in `telltale-query` checks the two agree.

use std::collections::BTreeMap;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use telltale_core::RollupRow;

use crate::error::{LakeError, Result};
use crate::layout::Table;
use crate::store::{LakeStore, partition_files_since};

const MINUTE_US: i64 = 60_000_000;

/// Per-service, per-minute sums of the `rollups` table from `since_us` on (event time), as
/// one-minute [`RollupRow`]s with counts only (latency fields are 0), ordered by minute,
/// then service. The team of a minute is the greatest team name seen in it (a service's
/// team only changes when the catalogue does). Summing to minutes keeps 30 days of 20
/// services under a million rows.
pub fn rollup_minutes_since(store: &dyn LakeStore, since_us: i64) -> Result<Vec<RollupRow>> {
    let since_date = telltale_core::event::utc_date(since_us);
    // (minute, service) → (team, count, errors, slow)
    let mut minutes: BTreeMap<(i64, String), (String, u64, u64, u64)> = BTreeMap::new();
    for (file, key) in partition_files_since(store, Table::Rollups, &since_date)? {
        for batch in read_counts(store, &file.rel_path)? {
            let int = |name| batch.column_by_name(name)?.as_primitive_opt::<Int64Type>();
            let start = batch
                .column_by_name("window_start")
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
            let team = batch
                .column_by_name("team")
                .and_then(|c| c.as_string_opt::<i32>());
            let (Some(start), Some(team), Some(count), Some(errors), Some(slow)) =
                (start, team, int("count"), int("errors"), int("slow"))
            else {
                return Err(mismatch(&file.rel_path));
            };
            for i in 0..batch.num_rows() {
                let ws = start.value(i);
                if ws < since_us {
                    continue;
                }
                let minute = ws.div_euclid(MINUTE_US) * MINUTE_US;
                let entry = minutes
                    .entry((minute, key.key.clone()))
                    .or_insert_with(|| (String::new(), 0, 0, 0));
                if team.value(i) > entry.0.as_str() {
                    entry.0 = team.value(i).to_owned();
                }
                entry.1 += count.value(i).max(0) as u64;
                entry.2 += errors.value(i).max(0) as u64;
                entry.3 += slow.value(i).max(0) as u64;
            }
        }
    }
    Ok(minutes
        .into_iter()
        .map(|((minute, service), (team, count, errors, slow))| {
            RollupRow::counts_only(service, team, minute, 60, [count, errors, slow])
        })
        .collect())
}

fn mismatch(file: &str) -> LakeError {
    LakeError::SchemaMismatch {
        file: file.to_owned(),
        table: "rollups",
        detail: "window_start, team, count, errors or slow is missing or of another type".into(),
    }
}

/// The count columns of one rollups file.
fn read_counts(store: &dyn LakeStore, rel_path: &str) -> Result<Vec<RecordBatch>> {
    let err = |e| LakeError::parquet(format!("reading {rel_path}"), e);
    let bytes = Bytes::from(store.read(rel_path)?);
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(err)?;
    let wanted = ["window_start", "team", "count", "errors", "slow"];
    let mask = ProjectionMask::columns(builder.parquet_schema(), wanted);
    builder
        .with_projection(mask)
        .build()
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LakeError::arrow(format!("reading {rel_path}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{DAY0, rollup};
    use crate::store::LocalDisk;
    use crate::writer::{LakeWriter, WriterOptions};
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn sums_rollups_to_minutes_from_the_given_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalDisk::new(dir.path()));
        let mut w = LakeWriter::new(store.clone(), WriterOptions::default()).unwrap();
        let ten_s = |service: &str, start: i64, count| {
            let mut r = rollup(service, start, count);
            r.window_seconds = 10;
            r
        };
        let rows = vec![
            ten_s("a/b", DAY0 - 60_000_000, 100), // before `since`
            ten_s("a/b", DAY0, 8),
            ten_s("a/b", DAY0 + 10_000_000, 4),
            ten_s("a/b", DAY0 + 60_000_000, 40),
            ten_s("search", DAY0 + 50_000_000, 12),
        ];
        w.append_rollups(rows, Instant::now()).unwrap();
        w.flush_all().unwrap();
        let got = rollup_minutes_since(store.as_ref(), DAY0).unwrap();
        let summary: Vec<_> = got
            .iter()
            .map(|r| {
                (
                    r.service.as_str(),
                    r.window_start_us - DAY0,
                    r.count,
                    r.errors,
                    r.slow,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a/b", 0, 12, 2 + 1, 4 + 2),
                ("search", 0, 12, 3, 6),
                ("a/b", 60_000_000, 40, 10, 20),
            ]
        );
        assert!(
            got.iter()
                .all(|r| r.window_seconds == 60 && r.team == "payments")
        );
    }

    #[test]
    fn an_empty_lake_has_no_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDisk::new(dir.path().join("missing"));
        assert!(rollup_minutes_since(&store, DAY0).unwrap().is_empty());
    }

    #[test]
    fn rollup_minutes_sum_windows_per_service_and_minute() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDisk::new(dir.path());
        let mut w = LakeWriter::new(Arc::new(store), WriterOptions::default()).unwrap();
        let rows: Vec<_> = [(0, "a"), (1, "a"), (6, "a"), (0, "b")]
            .into_iter()
            .map(|(i, svc)| rollup(svc, DAY0 + i * 10_000_000, 10))
            .collect();
        let (errors, slow) = (rows[0].errors, rows[0].slow);
        w.append_rollups(rows, Instant::now()).unwrap();
        w.flush_all().unwrap();
        let store = LocalDisk::new(dir.path());
        let mut got: Vec<_> = rollup_minutes_since(&store, DAY0)
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.service,
                    r.window_start_us - DAY0,
                    r.count,
                    r.errors,
                    r.slow,
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("a".into(), 0, 20, 2 * errors, 2 * slow),
                ("a".into(), 60_000_000, 10, errors, slow),
                ("b".into(), 0, 10, errors, slow)
            ]
        );
        let later = rollup_minutes_since(&store, DAY0 + 61_000_000).unwrap();
        assert!(later.is_empty(), "{later:?}");
    }
}
