//! Compaction: merges a partition's small files into one sorted file.
//!
//! Crash safety rests on one rule: the merged file names its inputs (metadata
//! `telltale.compacted_from`, a JSON array of file names) and is written atomically
//! *before* any input is deleted. If a crash leaves both the merged file and some inputs,
//! the next compaction of the partition sees a file whose listed inputs still exist and
//! deletes those inputs first (their rows are already in the merged file), instead of
//! merging them again into duplicates. Until then a reader sees those rows twice; the
//! window is the time between the merged file's rename and the inputs' deletion.
//!
//! A partition is merged in memory; a partition is one service's (or target's) day.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use parquet::file::metadata::KeyValue;

use crate::error::{LakeError, Result};
use crate::layout::{self, PARQUET_EXT, PartitionKey, Table};
use crate::parquet_io::{self, COMPACTED_FROM_KEY, EncodeOptions};
use crate::schema::{conform, table_schema};
use crate::store::LakeStore;

/// How compacted files are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOptions {
    /// zstd level, 1–22.
    pub zstd_level: i32,
    /// Most rows in one row group.
    pub row_group_rows: usize,
    /// When the lake is written through a write-ahead log: the position its last
    /// checkpoint covers (0 with no checkpoint yet). Files from later positions are left
    /// alone, because after a crash the replay writes them again under the same names,
    /// and a merged copy of their rows would then be a duplicate. `None`: no log.
    pub replay_covered_upto: Option<u64>,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            zstd_level: 3,
            row_group_rows: 128 * 1024,
            replay_covered_upto: None,
        }
    }
}

impl CompactOptions {
    /// Whether a crash could make the write-ahead log's replay write `file_name` again.
    fn replay_may_rewrite(&self, file_name: &str) -> bool {
        match (self.replay_covered_upto, layout::wal_position(file_name)) {
            (Some(covered), Some(position)) => position > covered,
            _ => false,
        }
    }
}

/// What compacting one partition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactOutcome {
    /// The partition.
    pub partition: PartitionKey,
    /// Files merged (0 when the partition was left alone).
    pub files_in: usize,
    /// Files written (0 or 1).
    pub files_out: usize,
    /// Rows in the written file.
    pub rows: u64,
    /// Inputs of an earlier, interrupted compaction that were deleted first.
    pub recovered: usize,
    /// Files left alone because the write-ahead log's last checkpoint does not cover
    /// them yet (see [`CompactOptions::replay_covered_upto`]).
    pub held_back: usize,
}

impl CompactOutcome {
    /// Whether nothing was written or deleted.
    pub fn is_noop(&self) -> bool {
        self.files_out == 0 && self.recovered == 0
    }
}

struct Input {
    name: String,
    bytes: Vec<u8>,
}

/// Merges the `.parquet` files present in one partition into one file sorted by time,
/// then deletes them. A partition with at most one file is left alone; running it again
/// after success is a no-op.
pub fn compact_partition(
    store: &dyn LakeStore,
    table: Table,
    key: &str,
    date: &str,
    opts: &CompactOptions,
) -> Result<CompactOutcome> {
    let partition = PartitionKey::new(table, key, date);
    let dir = partition.rel_dir();
    compact_dir(store, &partition, &dir, opts).map_err(|source| LakeError::Compact {
        partition: dir,
        source: Box::new(source),
    })
}

fn compact_dir(
    store: &dyn LakeStore,
    partition: &PartitionKey,
    dir: &str,
    opts: &CompactOptions,
) -> Result<CompactOutcome> {
    let enc = EncodeOptions {
        zstd_level: opts.zstd_level,
        row_group_rows: opts.row_group_rows,
    };
    enc.validate()?;
    let path_of = |name: &str| format!("{dir}/{name}");
    let mut inputs = Vec::new();
    for file in store.list(dir)? {
        let Some(name) = file
            .rel_path
            .strip_prefix(dir)
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        // Only this partition's own data files, not anything in subdirectories.
        if name.contains('/') || !name.ends_with(PARQUET_EXT) {
            continue;
        }
        inputs.push(Input {
            name: name.to_owned(),
            bytes: store.read(&file.rel_path)?,
        });
    }

    // Finish interrupted compactions: inputs named by a present merged file are done.
    let names: BTreeSet<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let mut finished = BTreeSet::new();
    for input in &inputs {
        let path = path_of(&input.name);
        let footer = parquet_io::decode(input.bytes.clone(), false, &path)?;
        let Some(list) = footer.metadata_value(COMPACTED_FROM_KEY) else {
            continue;
        };
        let sources: Vec<String> =
            serde_json::from_str(list).map_err(|source| LakeError::Json {
                context: format!("{COMPACTED_FROM_KEY} of {path}"),
                source,
            })?;
        finished.extend(
            sources
                .into_iter()
                .filter(|s| *s != input.name && names.contains(s)),
        );
    }
    for name in &finished {
        tracing::info!(file = %path_of(name), "deleting input of an interrupted compaction");
        store.delete(&path_of(name))?;
    }
    inputs.retain(|i| !finished.contains(&i.name));
    let before = inputs.len();
    inputs.retain(|i| !opts.replay_may_rewrite(&i.name));

    let mut outcome = CompactOutcome {
        partition: partition.clone(),
        files_in: 0,
        files_out: 0,
        rows: 0,
        recovered: finished.len(),
        held_back: before - inputs.len(),
    };
    if inputs.len() <= 1 {
        return Ok(outcome);
    }

    let schema = table_schema(partition.table);
    let mut batches = Vec::new();
    for input in &inputs {
        let path = path_of(&input.name);
        let file = parquet_io::decode(input.bytes.clone(), true, &path)?;
        for b in file.batches {
            // In the table's schema: re-tagged (files carry their own key-value metadata),
            // and a file from an older telltale gets the columns added since as nulls.
            let conformed = conform(&b, &schema).ok_or_else(|| LakeError::SchemaMismatch {
                file: path.clone(),
                table: partition.table.dir(),
                detail: format!("file has {:?}", file.schema.fields()),
            })?;
            batches.push(conformed);
        }
    }
    let all = concat_batches(&schema, &batches)
        .map_err(|e| LakeError::arrow(format!("merging {dir}"), e))?;
    let order = sort_to_indices(
        all.column(0),
        Some(SortOptions {
            descending: false,
            nulls_first: false,
        }),
        None,
    )
    .map_err(|e| LakeError::arrow(format!("sorting {dir}"), e))?;
    let sorted = take_record_batch(&all, &order)
        .map_err(|e| LakeError::arrow(format!("sorting {dir}"), e))?;

    let input_names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let list = serde_json::to_string(&input_names).map_err(|source| LakeError::Json {
        context: format!("input list of {dir}"),
        source,
    })?;
    let bytes = parquet_io::encode(
        &sorted,
        &enc,
        vec![KeyValue::new(COMPACTED_FROM_KEY.to_owned(), list)],
        dir,
    )?;
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let out = path_of(&format!(
        "part-{micros}-{:08x}-000000{PARQUET_EXT}",
        rand::random::<u32>()
    ));
    store.put_atomic(&out, &bytes)?;
    for name in &input_names {
        store.delete(&path_of(name))?;
    }
    tracing::info!(
        partition = dir,
        files_in = inputs.len(),
        rows = sorted.num_rows(),
        file = out,
        "compacted"
    );
    outcome.files_in = inputs.len();
    outcome.files_out = 1;
    outcome.rows = sorted.num_rows() as u64;
    Ok(outcome)
}

/// Compacts every partition of `table` (every table when `None`), in path order. A
/// failing partition does not stop the others; the first error is returned after all
/// were tried.
pub fn compact_all(
    store: &dyn LakeStore,
    table: Option<Table>,
    opts: &CompactOptions,
) -> Result<Vec<CompactOutcome>> {
    let tables = match table {
        Some(t) => vec![t],
        None => Table::ALL.to_vec(),
    };
    let mut outcomes = Vec::new();
    let mut first_err = None;
    for table in tables {
        // Partition → its directory as listed (decoding and re-encoding could differ for
        // directories written by other tools).
        let mut partitions = BTreeMap::new();
        for file in store.list(table.dir())? {
            let Some(dir) = file.rel_path.rsplit_once('/').map(|(d, _)| d.to_owned()) else {
                continue;
            };
            if !layout::file_name(&file.rel_path).ends_with(PARQUET_EXT) {
                continue;
            }
            if let Some(key) = PartitionKey::from_rel_path(&dir).filter(|k| k.rel_dir() == dir) {
                partitions.insert(key, dir);
            }
        }
        for (key, dir) in partitions {
            match compact_dir(store, &key, &dir, opts) {
                Ok(o) => outcomes.push(o),
                Err(source) => {
                    let e = LakeError::Compact {
                        partition: dir,
                        source: Box::new(source),
                    };
                    match first_err {
                        None => first_err = Some(e),
                        Some(_) => tracing::warn!(error = %e, "compaction failed"),
                    }
                }
            }
        }
    }
    first_err.map_or(Ok(outcomes), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{DAY0, check, event, rollup};
    use crate::parquet_io::decode;
    use crate::store::LocalDisk;
    use crate::writer::{LakeWriter, WriterOptions};
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const DATE: &str = "2025-04-30";

    /// A lake with `files` one-row files in `events/service=a/date=2025-04-30`, written
    /// newest-first so the merge has to sort.
    fn lake(files: usize) -> (tempfile::TempDir, Arc<LocalDisk>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalDisk::new(dir.path()));
        let opts = WriterOptions {
            flush_rows: 1,
            flush_age: Duration::from_secs(1),
            zstd_level: 1,
            row_group_rows: 100,
        };
        let mut w = LakeWriter::new(store.clone(), opts).unwrap();
        for i in (0..files).rev() {
            w.append_events(vec![event("a", DAY0 + i as i64, i as f64)], Instant::now())
                .unwrap();
        }
        w.append_events(vec![event("b", DAY0, 0.0)], Instant::now())
            .unwrap();
        (dir, store)
    }

    /// Compacts partition `a` of [`DATE`] with default options.
    fn compact_a(store: &Arc<LocalDisk>) -> CompactOutcome {
        compact_a_with(store, &CompactOptions::default())
    }

    fn compact_a_with(store: &Arc<LocalDisk>, opts: &CompactOptions) -> CompactOutcome {
        compact_partition(store.as_ref(), Table::Events, "a", DATE, opts).unwrap()
    }

    fn partition_files(store: &LocalDisk, service: &str) -> Vec<String> {
        let dir = PartitionKey::new(Table::Events, service, DATE).rel_dir();
        store
            .list(&dir)
            .unwrap()
            .into_iter()
            .map(|f| f.rel_path)
            .collect()
    }

    /// Latencies of every row in the partition, in file then row order.
    fn latencies(store: &LocalDisk) -> Vec<f64> {
        let mut out = Vec::new();
        for f in partition_files(store, "a") {
            for b in decode(store.read(&f).unwrap(), true, &f).unwrap().batches {
                out.extend(
                    b.column(2)
                        .as_primitive::<Float64Type>()
                        .values()
                        .iter()
                        .copied(),
                );
            }
        }
        out
    }

    #[test]
    fn many_small_files_become_one_sorted_file() {
        let (_dir, store) = lake(20);
        assert_eq!(partition_files(&store, "a").len(), 20);
        let out = compact_a(&store);
        assert_eq!(
            (out.files_in, out.files_out, out.rows, out.recovered),
            (20, 1, 20, 0)
        );
        let [file] = partition_files(&store, "a").try_into().unwrap();
        let decoded = decode(store.read(&file).unwrap(), true, &file).unwrap();
        let from: Vec<String> =
            serde_json::from_str(decoded.metadata_value(COMPACTED_FROM_KEY).unwrap()).unwrap();
        assert_eq!(from.len(), 20);
        let ts: Vec<i64> = decoded
            .batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<TimestampMicrosecondType>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ts, (0..20).map(|i| DAY0 + i).collect::<Vec<_>>());
        assert_eq!(
            latencies(&store),
            (0..20).map(f64::from).collect::<Vec<_>>()
        );
        assert_eq!(
            partition_files(&store, "b").len(),
            1,
            "other partitions untouched"
        );
    }

    /// Regression: compaction merged files written after the write-ahead log's last
    /// checkpoint; a crash then made the replay write them again next to the merged copy
    /// of their rows (duplicates). They are now left until a checkpoint covers them.
    #[test]
    fn compaction_leaves_files_a_replay_would_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalDisk::new(dir.path()));
        let opts = WriterOptions {
            flush_rows: 1,
            ..WriterOptions::default()
        };
        let mut w = LakeWriter::new(store.clone(), opts).unwrap();
        for lsn in 1..=5u64 {
            w.set_position(lsn);
            let e = event("a", DAY0 + lsn as i64, lsn as f64);
            w.append_events(vec![e], Instant::now()).unwrap();
        }
        let positions = |store: &LocalDisk| -> Vec<Option<u64>> {
            partition_files(store, "a")
                .iter()
                .map(|f| layout::wal_position(layout::file_name(f)))
                .collect()
        };
        assert_eq!(positions(&store), (1..=5).map(Some).collect::<Vec<_>>());

        let covered_to_3 = CompactOptions {
            replay_covered_upto: Some(3),
            ..CompactOptions::default()
        };
        let out = compact_a_with(&store, &covered_to_3);
        assert_eq!((out.files_in, out.held_back, out.rows), (3, 2, 3));
        let mut left = positions(&store);
        left.sort();
        assert_eq!(left, vec![None, Some(4), Some(5)], "merged file + 4 and 5");
        let mut rows = latencies(&store);
        rows.sort_by(f64::total_cmp);
        assert_eq!(rows, vec![1.0, 2.0, 3.0, 4.0, 5.0], "every row once");

        // Once a checkpoint covers them (or there is no log), they are merged too.
        let out = compact_a(&store);
        assert_eq!((out.files_in, out.held_back), (3, 0));
        assert_eq!(partition_files(&store, "a").len(), 1);
    }

    #[test]
    fn compacting_twice_is_a_noop() {
        let (_dir, store) = lake(3);
        compact_a(&store);
        let before = partition_files(&store, "a");
        let again = compact_a(&store);
        assert!(again.is_noop(), "{again:?}");
        assert_eq!(partition_files(&store, "a"), before);
    }

    #[test]
    fn an_interrupted_compaction_is_finished_without_duplicates() {
        let (_dir, store) = lake(5);
        let inputs: Vec<(String, Vec<u8>)> = partition_files(&store, "a")
            .into_iter()
            .map(|f| (f.clone(), store.read(&f).unwrap()))
            .collect();
        compact_a(&store);
        let [merged] = partition_files(&store, "a").try_into().unwrap();
        // The state a crash right after the merged file's rename leaves: merged file and
        // every input.
        for (name, bytes) in &inputs {
            store.put_atomic(name, bytes).unwrap();
        }
        assert_eq!(
            latencies(&store).len(),
            10,
            "rows are duplicated until recovery"
        );

        let out = compact_a(&store);
        assert_eq!((out.recovered, out.files_in, out.files_out), (5, 0, 0));
        assert_eq!(partition_files(&store, "a"), [merged]);
        assert_eq!(latencies(&store), (0..5).map(f64::from).collect::<Vec<_>>());
    }

    #[test]
    fn a_partly_finished_compaction_is_finished_too() {
        let (_dir, store) = lake(4);
        let inputs: Vec<(String, Vec<u8>)> = partition_files(&store, "a")
            .into_iter()
            .map(|f| (f.clone(), store.read(&f).unwrap()))
            .collect();
        compact_a(&store);
        // Crash after deleting two of four inputs.
        for (name, bytes) in &inputs[2..] {
            store.put_atomic(name, bytes).unwrap();
        }
        let out = compact_a(&store);
        assert_eq!((out.recovered, out.files_out), (2, 0));
        assert_eq!(latencies(&store), (0..4).map(f64::from).collect::<Vec<_>>());
    }

    #[test]
    fn new_files_after_a_recovery_are_merged_with_the_merged_file() {
        let (dir, store) = lake(3);
        compact_a(&store);
        let opts = WriterOptions {
            flush_rows: 1,
            ..WriterOptions::default()
        };
        let mut w = LakeWriter::new(Arc::new(LocalDisk::new(dir.path())), opts).unwrap();
        w.append_events(vec![event("a", DAY0 + 10, 99.0)], Instant::now())
            .unwrap();
        let out = compact_a(&store);
        assert_eq!((out.files_in, out.rows), (2, 4));
        assert_eq!(latencies(&store), [0.0, 1.0, 2.0, 99.0]);
    }

    #[test]
    fn compact_all_visits_every_partition() {
        let (dir, store) = lake(4);
        let mut w = LakeWriter::new(
            Arc::new(LocalDisk::new(dir.path())),
            WriterOptions {
                flush_rows: 1,
                ..WriterOptions::default()
            },
        )
        .unwrap();
        w.append_rollups(vec![rollup("a/b", DAY0, 1)], Instant::now())
            .unwrap();
        w.append_rollups(vec![rollup("a/b", DAY0 + 60, 1)], Instant::now())
            .unwrap();
        // Check results, newest first: the merged file is sorted by time.
        for ts in [DAY0 + 9, DAY0 + 3, DAY0] {
            w.append_checks(vec![check("m1", ts, Some(200))], Instant::now())
                .unwrap();
        }
        let outcomes = compact_all(store.as_ref(), None, &CompactOptions::default()).unwrap();
        let done: Vec<_> = outcomes
            .iter()
            .map(|o| (o.partition.to_string(), o.files_in))
            .collect();
        assert_eq!(
            done,
            [
                ("events/service=a/date=2025-04-30".to_owned(), 4),
                ("events/service=b/date=2025-04-30".to_owned(), 0),
                ("rollups/service=a%2Fb/date=2025-04-30".to_owned(), 2),
                ("monitors/monitor_id=m1/date=2025-04-30".to_owned(), 3),
            ]
        );
        let merged = store.list("monitors").unwrap();
        assert_eq!(merged.len(), 1, "{merged:?}");
        let file = decode(store.read(&merged[0].rel_path).unwrap(), true, "m").unwrap();
        let ts = file.batches[0]
            .column(0)
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.values().to_vec(), [DAY0, DAY0 + 3, DAY0 + 9]);
        assert!(
            compact_all(
                store.as_ref(),
                Some(Table::Rollups),
                &CompactOptions::default()
            )
            .unwrap()
            .iter()
            .all(CompactOutcome::is_noop)
        );
    }
}
