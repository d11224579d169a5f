//! The URL monitors of a server (`telltale run`, `telltale process` with `--listen`): the
//! registry over `<data_dir>/monitors/monitors.json` and `[[monitors.targets]]`, its
//! scheduler, and the task that hands every result line to the pipeline in-process, the
//! way `--probe-target` hands probe lines (the same ingest, write-ahead log and ack).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use telltale_core::auth::Tokens;
use telltale_monitor::{
    CheckResult, CheckSettings, Checker, FileStore, Monitor, Registry, Scheduler,
    SchedulerSettings, SchedulerStats,
};
use telltale_processor::{IngestBatch, Pipeline};

use crate::config_load::Loaded;

/// The scheduler's own bound is this much over `monitors.timeout`, so a check's own
/// timeout (which keeps the phases it reached) fires first.
const TIMEOUT_BACKSTOP: Duration = Duration::from_secs(1);

/// Results handed to the pipeline in one batch at most.
const MAX_BATCH: usize = 256;

/// Running monitors.
pub struct Monitors {
    registry: Arc<Registry>,
    stop: tokio::sync::watch::Sender<bool>,
    ingest: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the monitors of `loaded` (inside the runtime); `stats` are the counters
/// `/metrics` shows.
pub fn start(
    loaded: &Loaded,
    pipeline: Pipeline,
    stats: Arc<SchedulerStats>,
) -> anyhow::Result<Monitors> {
    let cfg = &loaded.pipeline.monitors;
    let file = &loaded.pipeline_source;
    let mut listed = Vec::new();
    for (i, t) in cfg.targets.iter().enumerate() {
        let m = Monitor::new(&t.url, &t.every)
            .with_context(|| format!("{file}: `monitors.targets[{i}]`"))?;
        listed.push(m);
    }
    let checker = Checker::new(
        CheckSettings {
            timeout: cfg.timeout,
            max_redirects: cfg.max_redirects,
            ..CheckSettings::default()
        },
        cfg.tls_ca.as_deref().map(std::path::Path::new),
    )
    .with_context(|| format!("{file}: `monitors.tls_ca`"))?;
    let settings = SchedulerSettings {
        timeout: cfg.timeout + TIMEOUT_BACKSTOP,
        max_concurrent: cfg.max_concurrent,
        jitter: cfg.jitter,
        max_jitter: cfg.max_jitter,
        seed: chrono::Utc::now().timestamp_micros() as u64,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<CheckResult>(1024);
    let scheduler = Scheduler::new(Arc::new(checker), settings, tx, stats);
    let file_store = FileStore::new(loaded.data_dir.join("monitors").join("monitors.json"));
    let store: Arc<dyn telltale_monitor::MonitorStore> =
        match telltale_postgres::ConnectSettings::from_config(&loaded.postgres)
            .context("setting up PostgreSQL for the URL monitors")?
        {
            Some(connect) => Arc::new(crate::monitor_store_pg::PgMonitorStore::new(
                tokio::runtime::Handle::current(),
                connect,
                Some(file_store),
            )),
            None => Arc::new(file_store),
        };
    let registry =
        tokio::task::block_in_place(|| Registry::start(store, listed, scheduler, cfg.keep_results))
            .context("loading the URL monitors")?;
    let registry = Arc::new(registry);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let ingest = tokio::spawn(ingest(Arc::clone(&registry), pipeline, rx, stop_rx));
    Ok(Monitors {
        registry,
        stop,
        ingest,
    })
}

impl Monitors {
    /// The `/api/v1/monitors` routes over these monitors.
    pub fn router(&self, tokens: Tokens) -> axum::Router {
        telltale_processor::api::monitors::router(Arc::clone(&self.registry), tokens)
    }

    /// Stops the schedule, then ingests the results already made.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.registry.scheduler().stop();
        let _ = self.stop.send(true);
        self.ingest.await.context("monitor ingest panicked")?
    }
}

/// Every result: kept for the registry's availability, then ingested as a line.
async fn ingest(
    registry: Arc<Registry>,
    pipeline: Pipeline,
    mut rx: tokio::sync::mpsc::Receiver<CheckResult>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let first = tokio::select! {
            biased;
            r = rx.recv() => match r {
                Some(r) => r,
                None => break,
            },
            _ = stop.wait_for(|s| *s) => match rx.try_recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        let mut lines = Vec::new();
        let mut next = Some(first);
        while let Some(r) = next.take() {
            registry.record(&r);
            lines.extend_from_slice(serde_json::to_string(&r)?.as_bytes());
            lines.push(b'\n');
            if lines.len() < MAX_BATCH * 1024 {
                next = rx.try_recv().ok();
            }
        }
        let p = pipeline.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            p.ingest(IngestBatch::whole(bytes::Bytes::from(lines), "monitor"))
        })
        .await
        .context("ingest panicked")?;
        match outcome {
            Ok(o) => {
                if let Some(e) = o.errors.first() {
                    tracing::debug!(rejected = o.rejected, "monitor result line rejected: {e}");
                }
            }
            Err(e) => tracing::warn!(error = %e, "monitor results not ingested"),
        }
    }
    Ok(())
}
