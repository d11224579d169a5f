//! The pipeline's threads together, in process.

use std::sync::{Arc, Mutex};

use telltale_core::slo::{SloEngine, SloSettings};
use telltale_core::{PipelineConfig, RollupRow, ServiceCatalog};
use telltale_lake::store::LocalDisk;

use super::{Pipeline, PipelineSettings};
use crate::batch::IngestBatch;
use crate::metrics::Metrics;
use crate::outputs::{Outputs, SloView};
use crate::sinks::Sink;

/// A sink that counts the events in the rollup rows it is given.
#[derive(Debug, Clone, Default)]
struct CountingSink(Arc<Mutex<u64>>);

impl Sink for CountingSink {
    fn on_rollups(&mut self, rows: &[RollupRow]) {
        *self.0.lock().unwrap() += rows.iter().map(|r| r.count).sum::<u64>();
    }
}

/// `n` events of one service, one a second, ending a minute ago.
fn lines(n: i64) -> String {
    let t0 = chrono::Utc::now().timestamp_millis() - 60_000 - n * 1_000;
    (0..n)
        .map(|i| {
            format!(
                "{{\"service\":\"a\",\"timestamp\":{},\"status_code\":200,\"latency_ms\":5}}\n",
                t0 + i * 1_000
            )
        })
        .collect()
}

/// Regression (issue #12, item 2): outputs attached with `attach_outputs` went to the
/// writer on another path than the batches, and the sequencer forwarded a batch that
/// arrived with them first, so the rollups of the first batches of a fast input (a file)
/// never reached InfluxDB or the SLO engine. Outputs attached before a batch is ingested
/// must see every rollup of it.
#[test]
fn outputs_attached_before_ingest_see_every_rollup() {
    let catalog = Arc::new(ServiceCatalog::from_toml_str("", "test").unwrap());
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let settings = PipelineSettings::from_config(&PipelineConfig::default(), catalog.clone());
        let pipeline = Pipeline::start(
            settings,
            Arc::new(LocalDisk::new(dir.path())),
            Arc::new(Metrics::new()),
            None,
        )
        .unwrap();
        let seen = CountingSink::default();
        let slo = SloEngine::new(&catalog, SloSettings::default()).unwrap();
        let outputs = Outputs::new(slo, vec![Box::new(seen.clone())], Arc::default());
        pipeline.attach_outputs(outputs).unwrap();
        let outcome = pipeline
            .ingest(IngestBatch::whole(lines(600), "file:test"))
            .unwrap();
        assert_eq!(outcome.accepted, 600);
        pipeline.shutdown().unwrap();
        assert_eq!(*seen.0.lock().unwrap(), 600, "round {round}");
    }
}

#[test]
fn outputs_given_at_start_see_every_rollup() {
    let catalog = Arc::new(ServiceCatalog::from_toml_str("", "test").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let seen = CountingSink::default();
    let slo = SloEngine::new(&catalog, SloSettings::default()).unwrap();
    let view = Arc::new(SloView::default());
    let outputs = Outputs::new(slo, vec![Box::new(seen.clone())], Arc::clone(&view));
    let settings = PipelineSettings::from_config(&PipelineConfig::default(), catalog.clone());
    let pipeline = Pipeline::start(
        settings,
        Arc::new(LocalDisk::new(dir.path())),
        Arc::new(Metrics::new()),
        Some(outputs),
    )
    .unwrap();
    pipeline
        .ingest(IngestBatch::whole(lines(300), "http"))
        .unwrap();
    pipeline.shutdown().unwrap();
    assert_eq!(*seen.0.lock().unwrap(), 300);
    assert_eq!(
        view.snapshot().services.len(),
        1,
        "the live view was evaluated"
    );
}
