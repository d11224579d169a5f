//! `telltale probe`: real probes of the network path to each target (`telltale-probe`),
//! as probe lines on stdout, in a file, or POSTed to a processor's `/v1/events` (the
//! simulator's HTTP output). [`Rounds`] is also what `telltale run` probes with.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use telltale_core::ProbeEvent;
use telltale_probe::{Geo, ProbeError, ProbeOptions, Prober, Protocol, TraceMode, to_line};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProtocolArg {
    /// ICMP echo requests (as mtr).
    Icmp,
    /// UDP datagrams to high ports (classic traceroute).
    Udp,
    /// TCP SYNs to --port (default 80): through firewalls that drop ICMP.
    Tcp,
}

/// How probes are made: shared by `telltale probe` and `telltale run`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeSettings {
    /// Time from the start of one round of probes (every target once) to the next.
    #[arg(long, env = "PROBE_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Packets to every hop per probe; loss and RTT of each hop are over these.
    #[arg(long, env = "PROBE_ECHOES", default_value_t = 20)]
    pub echoes: usize,
    /// Pace of the echoes (the shortest time one traceroute round takes).
    #[arg(long, env = "PROBE_ECHO_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub echo_interval: Duration,
    /// Highest TTL tried.
    #[arg(long, env = "PROBE_MAX_TTL", default_value_t = 30)]
    pub max_ttl: u8,
    /// How the path is traced.
    #[arg(long, env = "PROBE_PROTOCOL", value_enum, default_value = "icmp")]
    pub protocol: ProtocolArg,
    /// Destination port for --protocol tcp (default 80) or udp.
    #[arg(long, env = "PROBE_PORT")]
    pub port: Option<u16>,
    /// The vantage point, a label on every result (default: the host name).
    #[arg(long, env = "PROBE_AGENT")]
    pub agent: Option<String>,
    /// Targets probed at once; more wait for a free slot.
    #[arg(long, env = "PROBE_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// A MaxMind-format City database (GeoLite2-City or DB-IP City Lite `.mmdb`) for
    /// the location of each hop.
    #[arg(long, env = "GEOIP_CITY_DB", value_name = "FILE")]
    pub geoip_city: Option<PathBuf>,
    /// A MaxMind-format ASN database (GeoLite2-ASN or DB-IP ASN Lite `.mmdb`).
    #[arg(long, env = "GEOIP_ASN_DB", value_name = "FILE")]
    pub geoip_asn: Option<PathBuf>,
    /// Do not look up hop names (reverse DNS).
    #[arg(long)]
    pub no_reverse_dns: bool,
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Targets to probe, comma-separated FQDNs or addresses.
    #[arg(long, env = "PROBE_TARGET", value_delimiter = ',', required = true)]
    pub target: Vec<String>,
    /// Where probe lines go: `stdout`, a file (appended to), or a processor's
    /// `http://HOST:PORT/v1/events`.
    #[arg(long, default_value = "stdout")]
    pub output: String,
    /// Bearer token for HTTP output.
    #[arg(long, env = "TELLTALE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Gzip HTTP request bodies.
    #[arg(long)]
    pub gzip: bool,
    #[command(flatten)]
    pub client_tls: crate::client_tls::ClientTlsArgs,
    /// Stop after this many rounds (default: until stopped).
    #[arg(long)]
    pub count: Option<u64>,
    #[command(flatten)]
    pub settings: ProbeSettings,
}

impl ProbeSettings {
    /// The settings from the environment (`PROBE_INTERVAL`, `PROBE_ECHOES`, …) and the
    /// defaults: how `telltale run` probes.
    pub fn from_env() -> anyhow::Result<Self> {
        #[derive(clap::Parser)]
        struct Env {
            #[command(flatten)]
            settings: ProbeSettings,
        }
        use clap::Parser;
        Ok(Env::try_parse_from(["telltale"])
            .context("reading the PROBE_* environment variables")?
            .settings)
    }

    /// The prober these settings describe (opens the geolocation databases).
    pub fn prober(&self) -> anyhow::Result<Prober> {
        anyhow::ensure!(self.echoes > 0, "--echoes must be at least 1");
        anyhow::ensure!(self.max_ttl > 0, "--max-ttl must be at least 1");
        anyhow::ensure!(self.concurrency > 0, "--concurrency must be at least 1");
        let geo = Geo::open(self.geoip_city.as_deref(), self.geoip_asn.as_deref())?;
        if geo.is_empty() {
            tracing::info!(
                "no geolocation database (--geoip-city/--geoip-asn): hops have no location"
            );
        }
        let agent = self
            .agent
            .clone()
            .filter(|a| !a.is_empty())
            .or_else(telltale_probe::host_name);
        Ok(Prober::new(
            ProbeOptions {
                echoes: self.echoes,
                max_ttl: self.max_ttl,
                round_interval: self.echo_interval,
                protocol: match self.protocol {
                    ProtocolArg::Icmp => Protocol::Icmp,
                    ProtocolArg::Udp => Protocol::Udp,
                    ProtocolArg::Tcp => Protocol::Tcp,
                },
                port: self.port,
                reverse_dns: !self.no_reverse_dns,
                agent,
                ..ProbeOptions::default()
            },
            geo,
        ))
    }
}

/// Rounds of probes: every `interval`, each target once, at most `concurrency` at a time.
/// Results are handed on as each probe ends, so a slow target never holds back another's.
pub struct Rounds {
    pub prober: Arc<Prober>,
    pub targets: Vec<String>,
    pub interval: Duration,
    pub concurrency: usize,
    pub count: Option<u64>,
}

impl Rounds {
    /// Probes until `count` rounds are done (or forever), calling `emit` with each result
    /// in the order they end. Stops at the first `Err` of `emit`.
    pub fn run(
        &self,
        mut emit: impl FnMut(&str, Result<ProbeEvent, ProbeError>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        // ICMP answers are matched to a tracer by its identifier: one per target, and apart
        // from another `telltale probe` running beside this one.
        let base = (std::process::id() as u16).wrapping_mul(31);
        // Capabilities are per thread: raised here, inherited by the workers below.
        if self.prober.options().mode == TraceMode::Raw && !telltale_probe::acquire_privileges() {
            tracing::debug!("CAP_NET_RAW is not in the effective set; the tracer will say so");
        }
        let mut round = 0u64;
        loop {
            let started = Instant::now();
            let timestamp_us = chrono::Utc::now().timestamp_micros();
            let next = AtomicUsize::new(0);
            let (tx, rx) = mpsc::channel();
            let workers = self.concurrency.clamp(1, self.targets.len().max(1));
            let emitted = std::thread::scope(|scope| {
                for _ in 0..workers {
                    let (tx, next) = (tx.clone(), &next);
                    scope.spawn(move || {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(target) = self.targets.get(i) else {
                                break;
                            };
                            let id = base.wrapping_add(i as u16);
                            let result = self.prober.probe(target, id, timestamp_us);
                            if tx.send((target.as_str(), result)).is_err() {
                                break;
                            }
                        }
                    });
                }
                drop(tx);
                let mut outcome = Ok(());
                for (target, result) in rx {
                    if outcome.is_ok() {
                        outcome = emit(target, result);
                        if outcome.is_err() {
                            // No more work: the workers stop after their current probe.
                            next.store(usize::MAX / 2, Ordering::Relaxed);
                        }
                    }
                }
                outcome
            });
            emitted?;
            round += 1;
            if self.count.is_some_and(|n| round >= n) {
                return Ok(());
            }
            let took = started.elapsed();
            if took > self.interval {
                tracing::warn!(
                    took_s = took.as_secs_f64(),
                    interval_s = self.interval.as_secs_f64(),
                    targets = self.targets.len(),
                    "a round of probes took longer than --interval; raise --concurrency or --interval"
                );
            }
            std::thread::sleep(self.interval.saturating_sub(took));
        }
    }
}

/// Where `telltale probe` writes its lines.
enum Sink {
    Writer(Box<dyn Write>),
    Http {
        runtime: tokio::runtime::Runtime,
        tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
        delivery: tokio::task::JoinHandle<telltale_sim::HttpStats>,
        _shutdown: tokio::sync::watch::Sender<bool>,
    },
}

impl Sink {
    fn open(args: &ProbeArgs) -> anyhow::Result<Self> {
        let spec = args.output.as_str();
        if spec == "stdout" || spec == "-" {
            return Ok(Self::Writer(Box::new(std::io::stdout().lock())));
        }
        if spec.starts_with("http://") || spec.starts_with("https://") {
            let target = telltale_sim::HttpTarget::new(
                spec,
                args.token.clone(),
                args.gzip,
                &args.client_tls.config(),
            )?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .context("starting the HTTP output")?;
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
            let delivery = runtime.spawn(target.deliver(rx, shutdown_rx));
            return Ok(Self::Http {
                runtime,
                tx,
                delivery,
                _shutdown: shutdown,
            });
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(PathBuf::from(spec))
            .with_context(|| format!("opening --output {spec}"))?;
        Ok(Self::Writer(Box::new(file)))
    }

    fn write_line(&mut self, line: String) -> anyhow::Result<()> {
        match self {
            Self::Writer(w) => {
                writeln!(w, "{line}").context("writing a probe line")?;
                w.flush().context("writing probe lines")
            }
            Self::Http { tx, .. } => tx
                .blocking_send(bytes::Bytes::from(line + "\n"))
                .map_err(|_| anyhow::anyhow!("the HTTP output stopped")),
        }
    }

    fn close(self) -> anyhow::Result<()> {
        if let Self::Http {
            runtime,
            tx,
            delivery,
            ..
        } = self
        {
            drop(tx);
            let stats = runtime
                .block_on(delivery)
                .context("the HTTP output panicked")?;
            tracing::info!(
                batches = stats.batches,
                accepted = stats.accepted,
                rejected = stats.rejected,
                dropped_lines = stats.dropped_lines,
                "probe lines delivered"
            );
            if let Some(reason) = stats.fatal {
                anyhow::bail!(
                    "{} probe lines were not delivered: {reason}",
                    stats.dropped_lines
                );
            }
        }
        Ok(())
    }
}

/// Says once how this process traces (raw sockets or unprivileged ICMP sockets).
pub fn log_mode(mode: TraceMode) {
    match mode {
        TraceMode::Raw => tracing::info!(mode = mode.as_str(), "tracing over raw sockets"),
        TraceMode::PingSocket => tracing::info!(
            mode = mode.as_str(),
            "no CAP_NET_RAW: tracing ICMP over unprivileged ICMP sockets \
             (net.ipv4.ping_group_range)"
        ),
    }
}

pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let prober = args.settings.prober()?;
    // Without a privilege nothing can be probed: one clear error, before any output.
    let mode = telltale_probe::trace_mode(prober.options().protocol, &args.target)?;
    log_mode(mode);
    let prober = Arc::new(prober.with_mode(mode));
    let mut sink = Sink::open(&args)?;
    let rounds = Rounds {
        prober,
        targets: args.target.clone(),
        interval: args.settings.interval,
        concurrency: args.settings.concurrency,
        count: args.count,
    };
    let result = rounds.run(|target, result| match result {
        Ok(p) => {
            if let Some(e) = &p.dns_error {
                tracing::warn!(target, error = %e, "target does not resolve");
            }
            tracing::debug!(target, hops = p.hop_count, loss_pct = p.loss_pct, "probed");
            sink.write_line(to_line(&p))
        }
        // Without the privilege nothing can be probed: one clear error.
        Err(e) if e.is_privilege() => Err(e.into()),
        Err(e) => {
            tracing::warn!(target, error = %e, "probe gave no measurement");
            Ok(())
        }
    });
    let closed = sink.close();
    result.and(closed)
}
