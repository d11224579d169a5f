//! `telltale run`: simulator and processor in one process, no external services.

use std::time::Duration;

use anyhow::Context;
use telltale_processor::IngestBatch;
use telltale_sim::{Output, RunOptions, SimConfig, SimHandle, Simulator, control_router};

use crate::config_load::{ConfigArgs, load};
use crate::probe::{ProbeSettings, Rounds};
use crate::process::{finish, serve, shutdown_signal, start_pipeline};
use telltale_probe::to_line;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// HTTP address for ingest, /metrics and /healthz (default from `server.listen`).
    #[arg(long, env = "TELLTALE_LISTEN")]
    pub listen: Option<String>,
    /// Simulated events per second.
    #[arg(long, default_value_t = 200.0, env = "TELLTALE_RATE")]
    pub rate: f64,
    /// Simulator seed (random when not given).
    #[arg(long, env = "TELLTALE_SEED")]
    pub seed: Option<u64>,
    /// First generate this much history ending now (e.g. `1h`), as fast as possible.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub backfill: Option<Duration>,
    /// Real probes of these targets (comma-separated FQDNs or addresses; needs
    /// CAP_NET_RAW), tuned by the PROBE_* variables of `telltale probe`. Without the
    /// privilege, one warning and no probes. When not given, the simulator makes probe
    /// lines for `example.com` (agent `simulator`).
    #[arg(long, env = "PROBE_TARGET", value_delimiter = ',')]
    pub probe_target: Vec<String>,
    /// No spontaneous incidents in the simulation.
    #[arg(long)]
    pub no_incidents: bool,
    /// Print the bound HTTP address as the first line on stdout once the listener is open
    /// (with `--listen 127.0.0.1:0` the system picks a free port).
    #[arg(long)]
    pub print_address: bool,
    #[command(flatten)]
    pub tls: crate::listen::ServerTlsArgs,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        anyhow::bail!(
            "--rate {} must be a positive number of events per second",
            args.rate
        );
    }
    let mut loaded = load(&args.config)?;
    loaded.pipeline.server.tls = args.tls.resolve(&loaded.pipeline.server.tls)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let running = runtime.block_on(start_pipeline(&loaded, true))?;
    let pipeline = running.pipeline.clone();
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| loaded.pipeline.server.listen.clone());
    let seed = args
        .seed
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64);
    tracing::info!(
        data_dir = %loaded.data_dir.display(),
        rate = args.rate,
        seed,
        "telltale run: simulator + processor in one process; Ctrl-C flushes and exits"
    );
    let result = runtime.block_on(async {
        let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

        // Simulator → pipeline, in-process: the same validation path as HTTP ingest.
        let consumer = {
            let pipeline = pipeline.clone();
            tokio::spawn(async move {
                while let Some(lines) = lines_rx.recv().await {
                    let p = pipeline.clone();
                    let outcome = tokio::task::spawn_blocking(move || {
                        p.ingest(IngestBatch::whole(lines, "embedded"))
                    })
                    .await
                    .context("ingest panicked")??;
                    if let Some(e) = outcome.errors.first() {
                        tracing::warn!(rejected = outcome.rejected, "simulator line rejected: {e}");
                    }
                }
                anyhow::Ok(())
            })
        };

        let now = chrono::Utc::now().timestamp_micros();
        let backfill = args.backfill;
        let start = backfill.map_or(now, |b| {
            now - i64::try_from(b.as_micros()).unwrap_or(i64::MAX / 2)
        });
        let cfg = SimConfig {
            seed,
            start_us: start,
            rate: args.rate,
            probe_target: args
                .probe_target
                .is_empty()
                .then(|| "simulated.example".to_owned()),
            probe_interval: Duration::from_secs(10),
            incidents: !args.no_incidents,
        };
        // One simulator for history and live, so the backfill flows into live traffic;
        // the control API (`telltale spike`) steers it through a second handle.
        let sim = SimHandle::new(Simulator::new(&loaded.catalog, cfg));
        let control = control_router(sim.clone(), crate::config_load::tokens(&loaded.pipeline)?);
        let sim_stop = stop_rx.clone();
        let simulator = tokio::spawn(async move {
            if backfill.is_some() {
                let opts = RunOptions {
                    paced: false,
                    until_us: Some(now),
                    progress: true,
                    ..RunOptions::default()
                };
                telltale_sim::run(
                    sim.clone(),
                    opts,
                    Output::Channel(lines_tx.clone()),
                    sim_stop.clone(),
                )
                .await?;
            }
            let opts = RunOptions {
                paced: true,
                ..RunOptions::default()
            };
            telltale_sim::run(sim, opts, Output::Channel(lines_tx), sim_stop).await?;
            anyhow::Ok(())
        });

        let probes = if args.probe_target.is_empty() {
            None
        } else {
            real_probes(&args.probe_target, pipeline.clone(), stop_rx.clone())?
        };
        tracing::info!(
            "simulator control API on the same address: GET /control, POST /control/spike, POST /control/incident (telltale spike)"
        );
        let served = serve(
            &loaded,
            &running,
            &listen,
            None,
            Some((control, telltale_sim::CONTROL_ROUTES)),
            &crate::otlp_listen::OtlpListenArgs::default(),
            args.print_address,
            shutdown_signal(),
        )
        .await;
        let _ = stop_tx.send(true);
        if let Some(probes) = probes {
            probes.await.context("probe ingest panicked")??;
        }
        simulator.await.context("simulator panicked")??;
        consumer.await.context("ingest task panicked")??;
        served
    });
    let finished = runtime.block_on(finish(&running));
    result.and(finished)
}

/// Probes `targets` for real on a thread of its own (`telltale probe`'s rounds, settings
/// from the PROBE_* variables) and ingests each result as it ends, until `stop`. Without
/// the privilege: one warning with the fix, and `telltale run` goes on without probes.
fn real_probes(
    targets: &[String],
    pipeline: telltale_processor::Pipeline,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<anyhow::Result<()>>>> {
    let settings = ProbeSettings::from_env()?;
    let prober = settings.prober()?;
    let mode = match telltale_probe::trace_mode(prober.options().protocol, targets) {
        Ok(mode) => mode,
        Err(e) => {
            tracing::warn!("{e}; telltale run goes on without real probes");
            return Ok(None);
        }
    };
    crate::probe::log_mode(mode);
    let rounds = Rounds {
        prober: std::sync::Arc::new(prober.with_mode(mode)),
        targets: targets.to_vec(),
        interval: settings.interval,
        concurrency: settings.concurrency,
        count: None,
    };
    tracing::info!(
        targets = %targets.join(","),
        interval_s = settings.interval.as_secs_f64(),
        "probing the network path to each target"
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
    std::thread::Builder::new()
        .name("probes".into())
        .spawn(move || {
            let _ = rounds.run(|target, result| match result {
                Ok(p) => tx
                    .blocking_send(bytes::Bytes::from(to_line(&p) + "\n"))
                    .map_err(|_| anyhow::anyhow!("shutting down")),
                Err(e) if e.is_privilege() => {
                    tracing::warn!("{e}; telltale run goes on without real probes");
                    Err(e.into())
                }
                Err(e) => {
                    tracing::warn!(target, error = %e, "probe gave no measurement");
                    Ok(())
                }
            });
        })
        .context("starting the probe thread")?;
    Ok(Some(tokio::spawn(async move {
        loop {
            // A line taken is ingested whole before the stop is looked at again.
            let lines = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                lines = rx.recv() => match lines {
                    Some(lines) => lines,
                    None => break,
                },
            };
            let p = pipeline.clone();
            let outcome =
                tokio::task::spawn_blocking(move || p.ingest(IngestBatch::whole(lines, "probe")))
                    .await
                    .context("ingest panicked")??;
            if let Some(e) = outcome.errors.first() {
                tracing::warn!("probe line rejected: {e}");
            }
        }
        anyhow::Ok(())
    })))
}
