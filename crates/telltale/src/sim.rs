//! `telltale sim`: the simulator alone.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use telltale_sim::{
    Output, RunOptions, SimConfig, SimHandle, Simulator, control_router, default_start_us,
};

use crate::config_load::{ConfigArgs, load};

/// Simulated events per second when --rate is not given (unpaced runs).
const DEFAULT_VIRTUAL_RATE: f64 = 1000.0;

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Events per second. Given: output is paced in real time. Not given: as fast as
    /// possible, at 1000 events per simulated second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after this much simulated time (e.g. `10m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many lines.
    #[arg(long)]
    pub count: Option<u64>,
    /// Random seed: the same seed (and --start) gives the same output, byte for byte.
    #[arg(long, env = "TELLTALE_SEED")]
    pub seed: Option<u64>,
    /// Simulated start time (RFC 3339). Default: now when paced; 2025-01-01T00:00:00Z
    /// with --seed; otherwise history ending now.
    #[arg(long)]
    pub start: Option<String>,
    /// `stdout` (or `-`), a file path, or `http://host:port/v1/events`.
    #[arg(long, default_value = "stdout")]
    pub output: String,
    /// Generate this much history ending now, as fast as possible (e.g. `24h`); with
    /// --rate, carry on live afterwards.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub backfill: Option<Duration>,
    /// Bearer token for HTTP output.
    #[arg(long, env = "TELLTALE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Gzip HTTP request bodies.
    #[arg(long)]
    pub gzip: bool,
    #[command(flatten)]
    pub client_tls: crate::client_tls::ClientTlsArgs,
    /// Emit probe lines for a simulated network path to this target.
    #[arg(long, env = "PROBE_TARGET")]
    pub probe_target: Option<String>,
    /// No spontaneous incidents (latency regressions, error bursts, outages).
    #[arg(long)]
    pub no_incidents: bool,
    /// Lines per HTTP request or channel batch.
    #[arg(long, default_value_t = 5000)]
    pub batch_lines: usize,
    /// Serve the control API on this address (e.g. 127.0.0.1:8081) so `telltale spike`
    /// can start load spikes and incidents while the simulator runs. Needs --rate (real
    /// time). Off when not given.
    #[arg(long, env = "TELLTALE_CONTROL_LISTEN", value_name = "ADDR")]
    pub control_listen: Option<String>,
    /// Print the control API's bound address as the first line on stdout once it is open
    /// (with `--control-listen 127.0.0.1:0` the system picks a free port). Needs
    /// --control-listen and an --output other than stdout.
    #[arg(long, requires = "control_listen")]
    pub print_address: bool,
    /// HTTPS for the control API.
    #[command(flatten)]
    pub tls: crate::listen::ServerTlsArgs,
}

pub fn parse_output(
    spec: &str,
    token: Option<String>,
    gzip: bool,
    tls: &telltale_core::config::ClientTlsConfig,
) -> Output {
    match spec {
        "stdout" | "-" => Output::Stdout,
        s if s.starts_with("http://") || s.starts_with("https://") => Output::Http {
            url: s.to_owned(),
            token,
            gzip,
            tls: tls.clone(),
        },
        s => Output::File(PathBuf::from(s)),
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let mut loaded = load(&args.config)?;
    loaded.pipeline.server.tls = args.tls.resolve(&loaded.pipeline.server.tls)?;
    if let Some(r) = args.rate
        && !(r.is_finite() && r > 0.0)
    {
        anyhow::bail!("--rate {r} must be a positive number of events per second");
    }
    if let Some(listen) = &args.control_listen
        && args.rate.is_none()
    {
        anyhow::bail!(
            "--control-listen {listen} needs --rate: the control API steers a simulator \
             running in real time, e.g. --rate 200"
        );
    }
    if args.print_address && matches!(args.output.as_str(), "stdout" | "-") {
        anyhow::bail!(
            "--print-address writes the control address to stdout, where --output stdout \
             writes events: give --output a file or an http:// URL"
        );
    }
    let now = now_us();
    let rate = args.rate.unwrap_or(DEFAULT_VIRTUAL_RATE);
    let explicit_start = match &args.start {
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .with_context(|| {
                    format!("--start {s:?} is not RFC 3339, e.g. 2025-04-30T00:00:00Z")
                })?
                .timestamp_micros(),
        ),
        None => None,
    };
    let seed = args.seed.unwrap_or_else(rand_seed);
    if args.seed.is_none() {
        tracing::info!(
            seed,
            "no --seed given; pass --seed {seed} to repeat this output"
        );
    }
    let cfg = |start_us: i64| SimConfig {
        seed,
        start_us,
        rate,
        probe_target: args.probe_target.clone(),
        probe_interval: Duration::from_secs(10),
        incidents: !args.no_incidents,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Installed now, before anything is printed (see `shutdown_signal`).
    let signal = {
        let _in_runtime = runtime.enter();
        crate::process::shutdown_signal()
    };
    runtime.spawn(async move {
        signal.await;
        let _ = stop_tx.send(true);
    });
    let client_tls = args.client_tls.config();
    let output = || parse_output(&args.output, args.token.clone(), args.gzip, &client_tls);
    // One simulator for history and live, so a backfill flows into live traffic; the
    // control API, when asked for, steers it through a second handle.
    let start_sim = |start: i64| -> anyhow::Result<(SimHandle, Option<ControlServer>)> {
        let sim = SimHandle::new(Simulator::new(&loaded.catalog, cfg(start)));
        let control = runtime.block_on(ControlServer::start_if(
            &args.control_listen,
            args.print_address,
            &loaded.pipeline.server.tls,
            &sim,
            crate::config_load::tokens(&loaded.pipeline)?,
        ))?;
        Ok((sim, control))
    };

    if let Some(backfill) = args.backfill {
        let span = i64::try_from(backfill.as_micros()).context("--backfill is too long")?;
        let (sim, control) = start_sim(explicit_start.unwrap_or(now - span))?;
        let opts = RunOptions {
            paced: false,
            count: args.count,
            until_us: Some(now),
            batch_max_lines: args.batch_lines,
            progress: true,
        };
        let simulated = runtime.block_on(async {
            let summary = telltale_sim::run(sim.clone(), opts, output(), stop_rx.clone()).await?;
            tracing::info!(lines = summary.lines, "backfill done");
            if args.rate.is_none() || *stop_rx.borrow() {
                return anyhow::Ok(());
            }
            let opts = live_options(&args, now);
            telltale_sim::run(sim, opts, output(), stop_rx).await?;
            anyhow::Ok(())
        });
        let stopped = runtime.block_on(ControlServer::stop(control));
        return simulated.and(stopped);
    }

    let paced = args.rate.is_some();
    let span = args
        .duration
        .or_else(|| args.count.map(|c| Duration::from_secs_f64(c as f64 / rate)));
    let start =
        explicit_start.unwrap_or_else(|| default_start_us(args.seed.is_some(), paced, span, now));
    let (sim, control) = start_sim(start)?;
    let mut opts = live_options(&args, start);
    opts.paced = paced;
    opts.progress = !paced && !matches!(output(), Output::Stdout);
    let simulated = runtime.block_on(telltale_sim::run(sim, opts, output(), stop_rx));
    let stopped = runtime.block_on(ControlServer::stop(control));
    let summary = simulated?;
    stopped?;
    if let Some(reason) = &summary.http_fatal {
        anyhow::bail!(
            "{} lines were not delivered: {reason}",
            summary.http_dropped_lines
        );
    }
    tracing::info!(
        lines = summary.lines,
        bytes = summary.bytes,
        "simulation done"
    );
    Ok(())
}

/// The control API served beside a running simulator (`--control-listen`).
struct ControlServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ControlServer {
    /// Binds `listen`, when given, and serves the control API over `sim` until
    /// [`stop`](Self::stop).
    async fn start_if(
        listen: &Option<String>,
        print_address: bool,
        tls: &telltale_core::config::ServerTlsConfig,
        sim: &SimHandle,
        tokens: telltale_core::auth::Tokens,
    ) -> anyhow::Result<Option<Self>> {
        let Some(listen) = listen else {
            return Ok(None);
        };
        let (listener, local) = crate::listen::bind(
            listen,
            "--control-listen",
            "127.0.0.1:8081",
            "the control API",
            tls,
            print_address,
        )
        .await?;
        let scheme = listener.scheme();
        tracing::info!(
            "control API on {scheme}://{local}/control: e.g. `telltale spike --control {scheme}://{local} --factor 10 --for 60s`"
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = crate::guard::guarded(
            control_router(sim.clone(), tokens.clone()),
            telltale_sim::CONTROL_ROUTES.to_vec(),
            tokens,
            None,
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Some(Self { stop, task }))
    }

    /// Stops serving (once open requests are answered).
    async fn stop(server: Option<Self>) -> anyhow::Result<()> {
        let Some(server) = server else {
            return Ok(());
        };
        let _ = server.stop.send(());
        server
            .task
            .await
            .context("the control API task panicked")?
            .context("the control API server failed")
    }
}

fn live_options(args: &SimArgs, start_us: i64) -> RunOptions {
    RunOptions {
        paced: true,
        count: args.count,
        until_us: args.duration.map(|d| start_us + d.as_micros() as i64),
        batch_max_lines: args.batch_lines,
        progress: false,
    }
}

fn rand_seed() -> u64 {
    // Time-derived is enough: the seed only has to differ between runs and be printable.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
}
