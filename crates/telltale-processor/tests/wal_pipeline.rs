//! The pipeline with its write-ahead log, in process: clock-driven checkpoints and idle
//! drains reach the lake, and a restart over the same log replays nothing twice.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use telltale_core::config::WalConfig;
use telltale_core::{PipelineConfig, ServiceCatalog};
use telltale_lake::store::{LakeStore, LocalDisk};
use telltale_processor::pipeline::WalSettings;
use telltale_processor::{IngestBatch, Metrics, Pipeline, PipelineSettings};

fn start(dir: &Path) -> Pipeline {
    let catalog = Arc::new(ServiceCatalog::from_toml_str("", "test").unwrap());
    let mut cfg = PipelineConfig::default();
    cfg.lake.flush_age = Duration::from_millis(200);
    cfg.rollup.allowed_lateness = Duration::ZERO;
    let mut settings = PipelineSettings::from_config(&cfg, catalog);
    settings.tick = Duration::from_millis(50);
    settings.wal = WalSettings::from_config(&WalConfig::default(), dir.join("wal"));
    Pipeline::start(
        settings,
        Arc::new(LocalDisk::new(dir)),
        Arc::new(Metrics::new()),
        None,
    )
    .unwrap()
}

fn lines(n: usize) -> String {
    let t0 = chrono::Utc::now().timestamp_millis() - 60_000;
    (0..n)
        .map(|i| {
            format!(
                "{{\"service\":\"a\",\"timestamp\":{},\"status_code\":200,\"latency_ms\":5}}\n",
                t0 + i as i64
            )
        })
        .collect()
}

fn files(dir: &Path, table: &str) -> Vec<String> {
    LocalDisk::new(dir)
        .list(table)
        .unwrap()
        .into_iter()
        .map(|f| f.rel_path)
        .collect()
}

/// Regression: rollups emitted by an idle drain right after a checkpoint stayed buffered
/// until the next batch, because the drain did not mark the state as changed.
#[test]
fn rollups_of_an_idle_input_reach_the_lake_without_more_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path());
    p.ingest(IngestBatch::whole(lines(100), "http")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while files(dir.path(), "rollups").is_empty() {
        assert!(
            Instant::now() < deadline,
            "no rollup file 20 s after input went quiet; events: {:?}",
            files(dir.path(), "events")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(files(dir.path(), "events").len(), 1);
    p.shutdown().unwrap();
}

#[test]
fn a_restart_over_the_same_log_replays_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path());
    p.ingest(IngestBatch::whole(lines(10), "http")).unwrap();
    p.shutdown().unwrap();
    let events = files(dir.path(), "events");
    let rollups = files(dir.path(), "rollups");
    assert_eq!(events.len(), 1);
    // A clean shutdown checkpoints everything: the next start has nothing to replay.
    let again = start(dir.path());
    assert_eq!(again.metrics().wal_replayed_records.get(), 0);
    again.shutdown().unwrap();
    assert_eq!(files(dir.path(), "events"), events);
    assert_eq!(files(dir.path(), "rollups"), rollups);
}
