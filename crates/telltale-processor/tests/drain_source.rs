//! `drain_source` with several parse threads: batches parsed out of order are submitted in
//! input order, so the lake and the reported rejections are those of a single thread.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use telltale_core::{PipelineConfig, ServiceCatalog};
use telltale_lake::parquet_io;
use telltale_lake::store::{LakeStore, LocalDisk};
use telltale_processor::sources::{ReaderSource, drain_source};
use telltale_processor::{Metrics, Pipeline, PipelineSettings};

fn start(dir: &Path) -> Pipeline {
    let catalog = Arc::new(ServiceCatalog::from_toml_str("", "test").unwrap());
    let settings = PipelineSettings::from_config(&PipelineConfig::default(), catalog);
    Pipeline::start(
        settings,
        Arc::new(LocalDisk::new(dir)),
        Arc::new(Metrics::new()),
        None,
    )
    .unwrap()
}

/// 3,000 lines, every 100th one invalid; timestamps increase with the line number.
fn input() -> String {
    let t0 = chrono::Utc::now().timestamp_millis() - 3_600_000;
    (1..=3_000)
        .map(|n| {
            if n % 100 == 0 {
                format!("{{\"service\":\"a\",\"timestamp\":{},\"status_code\":700}}\n", t0 + n)
            } else {
                let service = ["a", "b", "c"][n as usize % 3];
                format!(
                    "{{\"service\":\"{service}\",\"timestamp\":{},\"status_code\":200,\"latency_ms\":{n}}}\n",
                    t0 + n
                )
            }
        })
        .collect()
}

/// Every `latency_ms` in the `events` table (one per line number), in file order.
fn stored_latencies(dir: &Path) -> Vec<Vec<f64>> {
    let store = LocalDisk::new(dir);
    let mut files = store.list("events").unwrap();
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    files
        .iter()
        .map(|f| {
            let decoded = parquet_io::decode(store.read(&f.rel_path).unwrap(), true, "t").unwrap();
            decoded
                .batches
                .iter()
                .flat_map(|b| {
                    let col = b.column_by_name("latency_ms").unwrap();
                    let values = col
                        .as_any()
                        .downcast_ref::<arrow::array::Float64Array>()
                        .unwrap();
                    values.values().to_vec()
                })
                .collect()
        })
        .collect()
}

/// The `line` of every dead letter, in the order the files hold them.
fn dead_letter_lines(dir: &Path) -> Vec<u64> {
    let store = LocalDisk::new(dir);
    let mut files = store.list("deadletter").unwrap();
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    files
        .iter()
        .flat_map(|f| {
            let text = String::from_utf8(store.read(&f.rel_path).unwrap()).unwrap();
            text.lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                        .as_u64()
                        .unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn parallel_parsing_submits_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = start(dir.path());
    // ~100-byte lines in 2 KiB batches: about 150 batches over 4 parse threads.
    let mut source =
        ReaderSource::new(Cursor::new(input()), "file:t", 65_536).with_batch_bytes(2_048);
    let mut seen_lines = Vec::new();
    let summary = drain_source(&pipeline, &mut source, 4, |outcome, _| {
        seen_lines.extend(outcome.errors.iter().map(|e| e.line));
    })
    .unwrap();
    pipeline.shutdown().unwrap();

    assert_eq!((summary.accepted, summary.rejected), (2_970, 30));
    // Outcomes arrive in input order, each naming the line in the file.
    let expected: Vec<u64> = (1..=30).map(|i| i * 100).collect();
    assert_eq!(seen_lines, expected);
    // The writer applies batches in submission order: the dead letters, which it appends
    // as it applies each batch (no sort), name the bad lines in file order. (The events
    // files cannot show the order: the writer sorts their rows by time.)
    assert_eq!(dead_letter_lines(dir.path()), expected);
    // Every good line stored once.
    let files = stored_latencies(dir.path());
    let mut all: Vec<f64> = files.iter().flatten().copied().collect();
    assert_eq!(all.len(), 2_970);
    all.sort_by(f64::total_cmp);
    let want: Vec<f64> = (1..=3_000)
        .filter(|n| n % 100 != 0)
        .map(f64::from)
        .collect();
    assert_eq!(all, want);
}
