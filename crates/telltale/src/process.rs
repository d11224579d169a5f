//! `telltale process`: the processor alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};
use telltale_lake::store::LocalDisk;

use telltale_core::slo::{SloEngine, SloSettings};
use telltale_influx::InfluxSink;
use telltale_lake::query::{QueryEngine, rollup_minutes_since};
use telltale_processor::alertmanager::{Notifier, NotifierSettings};
use telltale_processor::http::{HttpSettings, router};
use telltale_processor::metrics::OutputStats;
use telltale_processor::outputs::{AlertDelivery, Outputs, SloView};
use telltale_processor::pipeline::WalSettings;
use telltale_processor::source::{BatchSource, DrainSummary, ReaderSource, drain_source};
use telltale_processor::summary::{Snapshot, pipeline_point};
use telltale_processor::{Metrics, Pipeline, PipelineSettings};

use crate::ConfigArgs;
use crate::config_load::{Loaded, ingest_tokens, load};

#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Serve HTTP ingest (POST /v1/events), /metrics and /healthz on this address. The
    /// default, from `server.listen`, is used when no --input is given.
    #[arg(long, env = "TELLTALE_LISTEN")]
    pub listen: Option<String>,
    /// NDJSON file to read to its end, or `-` for stdin; then flush and exit (unless
    /// --listen is also given, in which case the server keeps running).
    #[arg(long)]
    pub input: Option<PathBuf>,
}

/// A started processor: the pipeline and the sinks that must be shut down after it.
#[derive(Debug)]
pub struct Running {
    pub pipeline: Pipeline,
    pub view: Arc<SloView>,
    pub influx: Option<InfluxSink>,
}

/// How far back the SLO engine is primed from the lake: the longest SLO window (a calendar
/// month is at most 31 days).
const SLO_HISTORY: Duration = Duration::from_secs(31 * 86_400);

/// Starts a pipeline over the lake in `loaded.data_dir`, with the SLO engine primed from
/// the lake's rollups and the InfluxDB and Alertmanager outputs when configured. Must run
/// inside a multi-threaded tokio runtime (the sinks spawn tasks). `logged`: ingest goes
/// through the write-ahead log (when `[wal]` enables it); a file read to its end is its
/// own log (run it again), so it does not.
pub async fn start_pipeline(loaded: &Loaded, logged: bool) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&loaded.data_dir)
        .with_context(|| format!("creating data dir {}", loaded.data_dir.display()))?;
    // The replay comes first, so the lake holds everything acknowledged before a crash
    // when the SLO engine is primed from it.
    let store = Arc::new(LocalDisk::new(&loaded.data_dir));
    let mut settings = PipelineSettings::from_config(&loaded.pipeline, Arc::clone(&loaded.catalog));
    settings.queue_capacity = loaded.pipeline.server.queue_batches;
    if logged {
        settings.wal = WalSettings::from_config(&loaded.pipeline.wal, loaded.data_dir.join("wal"));
    }
    let influx = if loaded.influx.is_enabled() {
        let (sink, _task) = InfluxSink::start(&loaded.influx, &loaded.data_dir)
            .context("starting the InfluxDB sink")?;
        tracing::info!(target = %loaded.influx.url, api = ?loaded.influx.api, "pushing rollups to InfluxDB");
        Some(sink)
    } else {
        None
    };
    let alerts = if loaded.alertmanager.is_enabled() {
        let am = &loaded.alertmanager;
        let (notifier, _task) = Notifier::start(NotifierSettings {
            url: am.url.clone(),
            resend_interval: am.resend_interval,
            generator_url: am.generator_url.clone(),
        });
        tracing::info!(url = %am.url, "delivering SLO alerts to Alertmanager");
        Some(AlertDelivery {
            notifier,
            max_age_us: am.max_alert_age.as_micros() as i64,
        })
    } else {
        None
    };
    // The outputs start first so that /metrics can show their counters from the start.
    let metrics = Metrics::new().with_outputs(OutputStats {
        influx: influx.as_ref().map(InfluxSink::stats_reader),
        alertmanager: alerts.as_ref().map(|a| a.notifier.shared_stats()),
    });
    let pipeline =
        tokio::task::block_in_place(|| Pipeline::start(settings, store, Arc::new(metrics), None))
            .context("starting the pipeline (replaying the write-ahead log)")?;
    let mut slo = SloEngine::new(&loaded.catalog, SloSettings::default())
        .context("configuring the SLO engine")?;
    let since = chrono::Utc::now().timestamp_micros() - SLO_HISTORY.as_micros() as i64;
    let engine = QueryEngine::open(&loaded.data_dir).await?;
    let history = rollup_minutes_since(&engine, since)
        .await
        .context("reading rollup history for the SLO engine")?;
    for row in &history {
        slo.observe(row);
    }
    if !history.is_empty() {
        tracing::info!(
            minutes = history.len(),
            "SLO engine primed with rollup history from the lake"
        );
    }
    let view = Arc::new(SloView::default());
    let outputs = Outputs::new(slo, influx.clone(), alerts, Arc::clone(&view));
    // Outputs see only what arrives from now on; what the replay wrote is in the lake,
    // where the SLO engine was primed from.
    pipeline.attach_outputs(outputs)?;
    Ok(Running {
        pipeline,
        view,
        influx,
    })
}

pub fn run(args: ProcessArgs) -> anyhow::Result<()> {
    let loaded = load(&args.config)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let file_only = args.input.is_some() && args.listen.is_none();
    let running = runtime.block_on(start_pipeline(&loaded, !file_only))?;
    tracing::info!(data_dir = %loaded.data_dir.display(), "processor started");
    let result = match (&args.input, &args.listen) {
        (Some(input), None) => {
            let max_line = loaded.pipeline.validation.max_line_bytes;
            let (p, input) = (running.pipeline.clone(), input.clone());
            let metrics = Arc::clone(running.pipeline.metrics());
            let (before, started) = (Snapshot::take(&metrics), Instant::now());
            let reader = runtime.spawn_blocking(move || drain_input(&p, &input, max_line));
            let result = runtime
                .block_on(reader)
                .context("input reader panicked")
                .and_then(|r| r)
                .map(|summary| report(&summary, &loaded.data_dir));
            if let Some(influx) = &running.influx {
                // One `pipeline` point for the whole file (a server sends one per interval).
                let point = pipeline_point(
                    &metrics,
                    before,
                    Snapshot::take(&metrics),
                    started.elapsed(),
                );
                influx.send(&[point]);
            }
            result
        }
        _ => {
            let listen = args
                .listen
                .clone()
                .unwrap_or_else(|| loaded.pipeline.server.listen.clone());
            runtime.block_on(serve(
                &loaded,
                &running,
                &listen,
                args.input.clone(),
                None,
                shutdown_signal(),
            ))
        }
    };
    let timeout = loaded.pipeline.server.shutdown_timeout;
    let finished = runtime.block_on(async {
        match tokio::time::timeout(timeout, finish(&running)).await {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!(
                "shutdown did not finish within server.shutdown_timeout ({}); what was \
                 acknowledged is in the write-ahead log and is replayed at the next start",
                humantime::format_duration(timeout)
            )),
        }
    });
    result.and(finished)
}

fn report(s: &DrainSummary, data_dir: &Path) {
    for e in &s.first_errors {
        eprintln!("rejected: {e}");
    }
    if s.rejected as usize > s.first_errors.len() {
        eprintln!(
            "rejected: … and {} more",
            s.rejected as usize - s.first_errors.len()
        );
    }
    eprintln!(
        "processed {} bytes: {} accepted, {} rejected{} → {}",
        s.bytes,
        s.accepted,
        s.rejected,
        if s.rejected > 0 {
            format!(" (kept with reasons in {}/deadletter/)", data_dir.display())
        } else {
            String::new()
        },
        data_dir.display()
    );
}

/// Bytes per batch when reading a file. While the writer encodes a burst of files, the
/// parse threads go on only as far as the writer's queue (`queue_batches` batches)
/// reaches; bigger batches give them more room and cost less per batch. Measured on the
/// benchmark's 10M events (docs/benchmarks.md): 1 MiB 6.9 s, 2 MiB 6.3 s, 4 MiB 5.8 s
/// (RSS 580 MiB), 16 MiB 6.0 s (RSS 1.1 GiB). Stdin keeps the source's smaller default.
const FILE_BATCH_BYTES: usize = 4 << 20;

/// Reads a file or stdin through the pipeline with a progress bar, then flushes.
pub fn drain_input(
    pipeline: &Pipeline,
    input: &Path,
    max_line_bytes: usize,
) -> anyhow::Result<DrainSummary> {
    let (mut source, total): (Box<dyn BatchSource>, Option<u64>) = if input == Path::new("-") {
        (
            Box::new(ReaderSource::new(std::io::stdin(), "stdin", max_line_bytes).live()),
            None,
        )
    } else {
        let file =
            std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
        let meta = file.metadata().ok();
        let name = format!("file:{}", input.display());
        match meta.filter(|m| m.is_file()) {
            Some(meta) => (
                Box::new(
                    ReaderSource::new(file, &name, max_line_bytes)
                        .with_batch_bytes(FILE_BATCH_BYTES),
                ),
                Some(meta.len()),
            ),
            // A named pipe or a device: lines arrive over time, like stdin.
            None => (
                Box::new(ReaderSource::new(file, &name, max_line_bytes).live()),
                None,
            ),
        }
    };
    let bar = match total {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    let (mut accepted, mut rejected) = (0u64, 0u64);
    // One parse thread per core: the writer thread keeps up by using the cores while the
    // parsers wait on it (the queues between them are bounded).
    let parse_threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let summary = drain_source(pipeline, source.as_mut(), parse_threads, |outcome, len| {
        accepted += outcome.accepted;
        rejected += outcome.rejected;
        bar.inc(len as u64);
        bar.set_message(format!("{accepted} accepted, {rejected} rejected"));
    })
    .with_context(|| format!("processing {}", input.display()))?;
    bar.finish_and_clear();
    Ok(summary)
}

/// Serves HTTP until Ctrl-C or SIGTERM (or `stop` turns true), optionally reading an
/// input alongside; then stops accepting and flushes the pipeline. `extra_routes` are
/// served beside the processor's (e.g. the simulator's control API in `telltale run`).
pub async fn serve(
    loaded: &Loaded,
    running: &Running,
    listen: &str,
    input: Option<PathBuf>,
    extra_routes: Option<axum::Router>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listen.parse().with_context(|| {
        format!("--listen {listen:?} is not an address: use host:port, e.g. 127.0.0.1:8080")
    })?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("binding {addr} (is another telltale running? pick another with --listen)")
    })?;
    let settings = HttpSettings {
        tokens: ingest_tokens(&loaded.pipeline)?,
        max_body_bytes: loaded.pipeline.server.max_body_bytes,
        max_inflight_bytes: loaded.pipeline.server.max_inflight_bytes,
        queue_batches: loaded.pipeline.server.queue_batches,
        autoscale: loaded.pipeline.autoscale.clone(),
    };
    if !settings.tokens.is_empty() {
        tracing::info!(
            tokens = settings.tokens.len(),
            "ingest requires a bearer token"
        );
    }
    let pipeline = running.pipeline.clone();
    let app = router(pipeline.clone(), settings, Arc::clone(&running.view))
        .merge(extra_routes.unwrap_or_default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let summary = tokio::spawn(telltale_processor::summary::run(
        Arc::clone(pipeline.metrics()),
        loaded.pipeline.log.summary_interval,
        running.influx.clone(),
        stop_rx.clone(),
    ));
    let reader = input.map(|path| {
        let p = pipeline.clone();
        let max = loaded.pipeline.validation.max_line_bytes;
        let data_dir = loaded.data_dir.clone();
        tokio::task::spawn_blocking(move || {
            drain_input(&p, &path, max).map(|s| report(&s, &data_dir))
        })
    });
    tracing::info!(
        "listening on http://{addr}: status page /, /api/v1/slo, POST /v1/events, /metrics, /healthz"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new requests, flushing the lake");
        })
        .await
        .context("HTTP server failed")?;
    let _ = stop_tx.send(true);
    if let Some(r) = reader {
        r.await.context("input reader panicked")??;
    }
    let _ = summary.await;
    Ok(())
}

/// Flushes every buffer and stops the writer, then drains the InfluxDB sink (what it
/// cannot deliver in time is spooled to disk), then logs the totals.
pub async fn finish(running: &Running) -> anyhow::Result<()> {
    let p = running.pipeline.clone();
    let flushed = tokio::task::spawn_blocking(move || p.shutdown())
        .await
        .context("writer shutdown panicked")?;
    if let Some(influx) = &running.influx {
        let stats = influx.shutdown().await;
        tracing::info!(
            sent = stats.points_sent,
            spooled = stats.spooled_points,
            dropped = stats.points_dropped,
            "InfluxDB sink stopped"
        );
    }
    flushed.context("flushing the lake at shutdown")?;
    let m = running.pipeline.metrics();
    tracing::info!(
        "stopped: {} accepted, {} rejected, {} files written",
        m.ingested_total(),
        m.rejected_total(),
        m.files_written_total()
    );
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
