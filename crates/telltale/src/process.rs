//! `telltale process`: the processor alone.

use std::path::Path;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use std::time::{Duration, Instant};
use telltale_lake::store::LocalDisk;

use telltale_core::slo::{SloEngine, SloSettings};
use telltale_influx::InfluxSink;
use telltale_lake::history::rollup_minutes_since;
use telltale_processor::api::router_with_state;
use telltale_processor::metrics::OutputStats;
use telltale_processor::outputs::{Outputs, SloView};
use telltale_processor::pipeline::WalSettings;
use telltale_processor::sinks::Sink;
use telltale_processor::sinks::alertmanager::AlertDelivery;
use telltale_processor::sinks::influxdb::InfluxOutput;
use telltale_processor::sources::DrainSummary;
use telltale_processor::sources::http::HttpSettings;
use telltale_processor::summary::{Snapshot, pipeline_point};
use telltale_processor::{Metrics, Pipeline, PipelineSettings};

use crate::config_load::{ConfigArgs, Loaded, load, tokens};
use crate::input::{Input, InputArgs, drain_input};

#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Serve HTTP ingest (POST /v1/events), /metrics and /healthz on this address. The
    /// default, from `server.listen`, is used when no --input is given.
    #[arg(long, env = "TELLTALE_LISTEN")]
    pub listen: Option<String>,
    #[command(flatten)]
    pub input: InputArgs,
    /// Print the bound HTTP address (e.g. `127.0.0.1:43127`) as the first line on stdout
    /// once the listener is open: with `--listen 127.0.0.1:0` the system picks a free port.
    /// Then `otlp-http ADDR` and `otlp-grpc ADDR` lines for --otlp-listen and
    /// --otlp-grpc-listen.
    #[arg(long)]
    pub print_address: bool,
    #[command(flatten)]
    pub tls: crate::listen::ServerTlsArgs,
    #[command(flatten)]
    pub otlp: crate::otlp_listen::OtlpListenArgs,
}

/// A started processor: the pipeline and the sinks that must be shut down after it.
#[derive(Debug)]
pub struct Running {
    pub pipeline: Pipeline,
    pub view: Arc<SloView>,
    pub influx: Option<InfluxSink>,
    /// The PostgreSQL sink of URL monitor results, when `[postgres]` is on.
    pub postgres: Option<telltale_postgres::PostgresSink>,
    /// The Alertmanager delivery task: it ends once the pipeline's writer has stopped and
    /// what the sink queued is posted.
    pub alert_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The URL monitors' counters (shown in `/metrics`; the scheduler starts with the server).
    pub monitor_stats: Arc<telltale_monitor::SchedulerStats>,
}

/// How far back the SLO engine is primed from the lake: the longest SLO window (a calendar
/// month is at most 31 days).
const SLO_HISTORY: Duration = Duration::from_secs(31 * 86_400);

/// How far back the PostgreSQL sink catches up from the lake at start (results a crash of
/// telltale acknowledged but did not write there).
const PG_CATCH_UP: Duration = Duration::from_secs(86_400);

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
    let store: Arc<LocalDisk> = Arc::new(LocalDisk::new(&loaded.data_dir));
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
    let postgres_skipped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let postgres = match telltale_postgres::SinkSettings::from_config(
        &loaded.postgres,
        &loaded.data_dir,
    )
    .context("setting up the PostgreSQL sink")?
    {
        Some(settings) => {
            tracing::info!(target = %settings.connect.target(), "writing URL monitor results to PostgreSQL");
            let (sink, _task) = telltale_postgres::PostgresSink::start(settings)
                .context("starting the PostgreSQL sink")?;
            Some(sink)
        }
        None => None,
    };
    let (alerts, alert_task) = if loaded.alertmanager.is_enabled() {
        tracing::info!(url = %loaded.alertmanager.url, "delivering SLO alerts to Alertmanager");
        let (sink, task) =
            AlertDelivery::start(&loaded.alertmanager).context("starting the Alertmanager sink")?;
        (Some(sink), Some(task))
    } else {
        (None, None)
    };
    // The outputs start first so that /metrics can show their counters from the start.
    let view = Arc::new(SloView::default());
    let monitor_stats = Arc::new(telltale_monitor::SchedulerStats::default());
    let metrics = Metrics::new()
        .with_outputs(OutputStats {
            influx: influx.as_ref().map(InfluxSink::stats_reader),
            alertmanager: alerts.as_ref().map(AlertDelivery::stats),
            slo: Some(Arc::clone(&view)),
            postgres: postgres.clone().map(|p| (p, Arc::clone(&postgres_skipped))),
        })
        .with_monitors(Arc::clone(&monitor_stats));
    let pipeline = tokio::task::block_in_place(|| {
        Pipeline::start(settings, store.clone(), Arc::new(metrics), None)
    })
    .context("starting the pipeline (replaying the write-ahead log)")?;
    let mut slo = SloEngine::new(&loaded.catalog, SloSettings::default())
        .context("configuring the SLO engine")?;
    let since = chrono::Utc::now().timestamp_micros() - SLO_HISTORY.as_micros() as i64;
    let history = tokio::task::block_in_place(|| rollup_minutes_since(store.as_ref(), since))
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
    if let Some(pg) = &postgres {
        // What a crash cut off: results the log replayed into the lake that PostgreSQL may
        // not have. The unique key makes the ones it has a no-op.
        let since = chrono::Utc::now().timestamp_micros() - PG_CATCH_UP.as_micros() as i64;
        let checks = tokio::task::block_in_place(|| {
            telltale_lake::checks::checks_since(store.as_ref(), since)
        })
        .context("reading the lake's recent monitor results for PostgreSQL")?;
        let rows: Vec<_> = checks
            .iter()
            .filter_map(telltale_processor::sinks::postgres::row)
            .collect();
        if !rows.is_empty() {
            tracing::info!(
                results = rows.len(),
                "PostgreSQL: the last day's monitor results from the lake are written again (stored ones are skipped)"
            );
            pg.send(rows);
        }
    }
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(influx) = &influx {
        sinks.push(Box::new(InfluxOutput(influx.clone())));
    }
    if let Some(alerts) = alerts {
        sinks.push(Box::new(alerts));
    }
    if let Some(pg) = &postgres {
        sinks.push(Box::new(
            telltale_processor::sinks::postgres::PostgresOutput::new(pg.clone(), postgres_skipped),
        ));
    }
    let mut outputs = Outputs::new(slo, sinks, Arc::clone(&view));
    if let Some(newest) = history.iter().map(|r| r.window_start_us).max() {
        outputs.evaluate_history(newest);
    }
    // Outputs see only what arrives from now on; what the replay wrote is in the lake,
    // where the SLO engine was primed from.
    pipeline.attach_outputs(outputs)?;
    Ok(Running {
        pipeline,
        view,
        influx,
        postgres,
        alert_task: std::sync::Mutex::new(alert_task),
        monitor_stats,
    })
}

pub fn run(args: ProcessArgs) -> anyhow::Result<()> {
    let mut loaded = load(&args.config)?;
    loaded.pipeline.server.tls = args.tls.resolve(&loaded.pipeline.server.tls)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let input = Input::from_args(&args.input, &loaded)?;
    // A file read to its end is its own log (run it again); a followed file is not.
    let file_only = input.is_some() && args.listen.is_none();
    let logged = !file_only || input.as_ref().is_some_and(|i| i.follow.is_some());
    let running = runtime.block_on(start_pipeline(&loaded, logged))?;
    tracing::info!(data_dir = %loaded.data_dir.display(), "processor started");
    let result = match (input, &args.listen) {
        (Some(input), None) => {
            let max_line = loaded.pipeline.validation.max_line_bytes;
            let p = running.pipeline.clone();
            let metrics = Arc::clone(running.pipeline.metrics());
            let (before, started) = (Snapshot::take(&metrics), Instant::now());
            let stop = Arc::new(AtomicBool::new(false));
            if input.follow.is_some() {
                let stop = Arc::clone(&stop);
                runtime.spawn(async move {
                    shutdown_signal().await;
                    tracing::info!("stopping: reading what is already in the file, then flushing");
                    stop.store(true, Ordering::Release);
                });
            }
            let reader = runtime.spawn_blocking(move || drain_input(&p, &input, max_line, stop));
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
        (input, _) => {
            let listen = args
                .listen
                .clone()
                .unwrap_or_else(|| loaded.pipeline.server.listen.clone());
            // In the runtime: `shutdown_signal` installs its handlers when called.
            runtime.block_on(async {
                let shutdown = shutdown_signal();
                serve(
                    &loaded,
                    &running,
                    &listen,
                    input,
                    None,
                    &args.otlp,
                    args.print_address,
                    shutdown,
                )
                .await
            })
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

/// Serves HTTP until Ctrl-C or SIGTERM (or `stop` turns true), optionally reading an
/// input alongside; then stops accepting and flushes the pipeline. `extra_routes` are
/// served beside the processor's (e.g. the simulator's control API in `telltale run`).
/// `print_address`: the bound address goes to stdout as one line once the port is open.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site each in process and run; a struct of borrowed flags would add nothing"
)]
pub async fn serve(
    loaded: &Loaded,
    running: &Running,
    listen: &str,
    input: Option<Input>,
    extra_routes: Option<(axum::Router, &'static [telltale_core::auth::RouteAccess])>,
    otlp: &crate::otlp_listen::OtlpListenArgs,
    print_address: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Single sign-on first: a provider that cannot be discovered is an error before the
    // port is taken.
    let oidc = &loaded.pipeline.server.oidc;
    let sso = if oidc.is_enabled() {
        let https = loaded.pipeline.server.tls.is_enabled();
        Some(crate::sso::Sso::start(oidc, &loaded.data_dir, https).await?)
    } else {
        None
    };
    let (listener, addr) = crate::listen::bind(
        listen,
        "--listen",
        "127.0.0.1:8080",
        "the HTTP server",
        &loaded.pipeline.server.tls,
        print_address,
    )
    .await?;
    let scheme = listener.scheme();
    let tokens = tokens(&loaded.pipeline)?;
    let settings = HttpSettings::from_config(&loaded.pipeline, tokens.clone());
    if settings.tokens.any() {
        use telltale_core::auth::Role;
        tracing::info!(
            write_tokens = settings.tokens.count(Role::Write),
            admin_tokens = settings.tokens.count(Role::Admin),
            "ingest needs a write or admin bearer token, the control API an admin one"
        );
    }
    let settings_drain = settings.drain.clone();
    let pipeline = running.pipeline.clone();
    let mut table = telltale_processor::api::routes();
    let (mut app, state) = router_with_state(pipeline.clone(), settings, Arc::clone(&running.view));
    let otlp_servers = crate::otlp_listen::start(
        otlp,
        &state,
        &tokens,
        &loaded.pipeline.server.tls,
        print_address,
    )
    .await?;
    if let Some((extra, extra_table)) = extra_routes {
        app = app.merge(extra);
        table.extend_from_slice(extra_table);
    }
    // URL monitors: scheduled from now on, their results ingested like probe lines.
    let monitors = crate::monitor_service::start(
        loaded,
        pipeline.clone(),
        Arc::clone(&running.monitor_stats),
    )?;
    app = app.merge(monitors.router(tokens.clone()));
    if let Some(sso) = &sso {
        app = app.merge(sso.router());
    }
    let app = crate::guard::guarded(app, table, tokens, sso);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let summary = tokio::spawn(telltale_processor::summary::run(
        Arc::clone(pipeline.metrics()),
        loaded.pipeline.log.summary_interval,
        running.influx.clone(),
        stop_rx.clone(),
    ));
    let stop_input = Arc::new(AtomicBool::new(false));
    let reader = input.map(|input| {
        let p = pipeline.clone();
        let max = loaded.pipeline.validation.max_line_bytes;
        let data_dir = loaded.data_dir.clone();
        let stop = Arc::clone(&stop_input);
        tokio::task::spawn_blocking(move || {
            drain_input(&p, &input, max, stop).map(|s| report(&s, &data_dir))
        })
    });
    tracing::info!(
        "listening on {scheme}://{addr}: status page /, /api/v1/slo, /api/v1/monitors, POST /v1/events, POST /v1/traces and /v1/logs (OTLP), /metrics, /healthz"
    );
    let drain = settings_drain;
    let (grace, timeout) = (
        loaded.pipeline.server.drain_grace,
        loaded.pipeline.server.shutdown_timeout,
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<telltale_tls::Peer>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        stop_input.store(true, Ordering::Release);
        drain.start();
        force_exit_after(timeout);
        tracing::info!(
            in_flight = drain.in_flight(),
            "shutting down: new ingest gets 503, finishing the requests in flight"
        );
        tokio::time::sleep(grace).await;
        drain.idle().await;
        tracing::info!("no ingest request in flight: closing the listener, flushing the lake");
    })
    .await
    .context("HTTP server failed")?;
    otlp_servers.stop().await?;
    monitors.stop().await?;
    let _ = stop_tx.send(true);
    if let Some(r) = reader {
        r.await.context("input reader panicked")??;
    }
    let _ = summary.await;
    Ok(())
}

/// Flushes every buffer and stops the writer, then drains the InfluxDB sink (what it
/// cannot deliver in time is spooled to disk) and posts the alerts still firing to
/// Alertmanager, then logs the totals.
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
    if let Some(pg) = &running.postgres {
        let stats = pg.shutdown().await;
        tracing::info!(
            inserted = stats.inserted,
            duplicates = stats.duplicates,
            spooled = stats.spooled,
            dropped = stats.dropped,
            "PostgreSQL sink stopped"
        );
    }
    let alert_task = running.alert_task.lock().ok().and_then(|mut t| t.take());
    if let Some(task) = alert_task {
        // The writer has dropped the sink, so the task posts what it was sent and ends.
        task.await.context("alert delivery panicked")?;
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

/// From the first signal on: a second Ctrl-C or SIGTERM, or `timeout` passing, ends the
/// process at once with exit code 1 and a message saying why. Nothing acknowledged is
/// lost by that: it is in the write-ahead log and replayed at the next start.
fn force_exit_after(timeout: Duration) {
    tokio::spawn(async move {
        let why = tokio::select! {
            () = shutdown_signal() => "a second signal".to_owned(),
            () = tokio::time::sleep(timeout) => format!(
                "server.shutdown_timeout ({}) passed",
                humantime::format_duration(timeout)
            ),
        };
        tracing::error!(
            "shutdown cut short by {why}: exiting now; what was acknowledged is in the \
             write-ahead log and is replayed at the next start"
        );
        eprintln!("telltale: shutdown cut short by {why}; exiting 1");
        std::process::exit(1);
    });
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: a server prints its address before it awaits the
/// signal, and a SIGTERM in between used to kill it with the default action (exit by
/// signal, nothing flushed). Call it inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                // No handler could be installed: Ctrl-C the portable way, at least.
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
