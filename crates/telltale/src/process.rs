//! `telltale process`: the processor alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use telltale_lake::store::LocalDisk;
use telltale_processor::http::{HttpSettings, router};
use telltale_processor::source::{BatchSource, DrainSummary, ReaderSource, drain_source};
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

/// Starts a pipeline over the lake in `loaded.data_dir`.
pub fn start_pipeline(loaded: &Loaded) -> anyhow::Result<Pipeline> {
    std::fs::create_dir_all(&loaded.data_dir)
        .with_context(|| format!("creating data dir {}", loaded.data_dir.display()))?;
    let store = Arc::new(LocalDisk::new(&loaded.data_dir));
    let settings = PipelineSettings::from_config(&loaded.pipeline, Arc::clone(&loaded.catalog));
    Ok(Pipeline::start(settings, store, Arc::new(Metrics::new()))?)
}

pub fn run(args: ProcessArgs) -> anyhow::Result<()> {
    let loaded = load(&args.config)?;
    let pipeline = start_pipeline(&loaded)?;
    tracing::info!(data_dir = %loaded.data_dir.display(), "processor started");
    match (&args.input, &args.listen) {
        (Some(input), None) => {
            let result = drain_input(&pipeline, input, loaded.pipeline.validation.max_line_bytes);
            let stats = pipeline.shutdown()?;
            let summary = result?;
            report(&summary, &loaded.data_dir);
            tracing::debug!(?stats, "writer stopped");
            Ok(())
        }
        _ => {
            let listen = args
                .listen
                .clone()
                .unwrap_or_else(|| loaded.pipeline.server.listen.clone());
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(serve(
                &loaded,
                pipeline.clone(),
                &listen,
                args.input.clone(),
                shutdown_signal(),
            ))?;
            finish(&pipeline)?;
            Ok(())
        }
    }
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

/// Reads a file or stdin through the pipeline with a progress bar, then flushes.
pub fn drain_input(
    pipeline: &Pipeline,
    input: &Path,
    max_line_bytes: usize,
) -> anyhow::Result<DrainSummary> {
    let (mut source, total): (Box<dyn BatchSource>, Option<u64>) = if input == Path::new("-") {
        (
            Box::new(ReaderSource::new(std::io::stdin(), "stdin", max_line_bytes)),
            None,
        )
    } else {
        let file =
            std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
        let len = file.metadata().map(|m| m.len()).ok();
        let name = format!("file:{}", input.display());
        (
            Box::new(ReaderSource::new(file, &name, max_line_bytes)),
            len,
        )
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
    let summary = drain_source(pipeline, source.as_mut(), |outcome, len| {
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
/// input alongside; then stops accepting and flushes the pipeline.
pub async fn serve(
    loaded: &Loaded,
    pipeline: Pipeline,
    listen: &str,
    input: Option<PathBuf>,
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
    };
    if !settings.tokens.is_empty() {
        tracing::info!(
            tokens = settings.tokens.len(),
            "ingest requires a bearer token"
        );
    }
    let app = router(pipeline.clone(), settings);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let summary = tokio::spawn(telltale_processor::summary::run(
        Arc::clone(pipeline.metrics()),
        loaded.pipeline.log.summary_interval,
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
    tracing::info!("listening on http://{addr} (POST /v1/events, GET /metrics, GET /healthz)");
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

/// Flushes every buffer and stops the writer, then logs the totals. Blocking.
pub fn finish(pipeline: &Pipeline) -> anyhow::Result<()> {
    pipeline
        .shutdown()
        .context("flushing the lake at shutdown")?;
    let m = pipeline.metrics();
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
