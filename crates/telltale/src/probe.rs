//! `telltale probe`: real probes of the network path to each target, as probe lines on
//! stdout or in a file (`telltale-probe`). Pipe them into a processor with
//! `telltale probe … | telltale process --input -`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use telltale_probe::{ProbeError, ProbeOptions, probe, to_line};

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Targets to probe, comma-separated FQDNs or addresses.
    #[arg(long, env = "PROBE_TARGET", value_delimiter = ',', required = true)]
    pub target: Vec<String>,
    /// Where probe lines go: `stdout`, or a file (appended to).
    #[arg(long, default_value = "stdout")]
    pub output: String,
    /// Time from the start of one round of probes (every target once) to the next.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Stop after this many rounds (default: until stopped).
    #[arg(long)]
    pub count: Option<u64>,
    /// Packets to every hop per probe; loss and RTT of each hop are over these.
    #[arg(long, default_value_t = 20)]
    pub echoes: usize,
    /// Pace of the echoes (the shortest time one traceroute round takes).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub echo_interval: Duration,
    /// Highest TTL tried.
    #[arg(long, default_value_t = 30)]
    pub max_ttl: u8,
}

pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.echoes > 0, "--echoes must be at least 1");
    anyhow::ensure!(args.max_ttl > 0, "--max-ttl must be at least 1");
    let mut out: Box<dyn Write> = match args.output.as_str() {
        "stdout" | "-" => Box::new(std::io::stdout().lock()),
        s if s.starts_with("http://") || s.starts_with("https://") => anyhow::bail!(
            "--output {s}: telltale probe writes to stdout or a file; to send its lines to a \
             processor, pipe them: `telltale probe … | telltale process --input -`"
        ),
        path => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(PathBuf::from(path))
                .with_context(|| format!("opening --output {path}"))?,
        ),
    };
    let opts = ProbeOptions {
        echoes: args.echoes,
        max_ttl: args.max_ttl,
        round_interval: args.echo_interval,
        ..ProbeOptions::default()
    };
    // ICMP answers are matched to a tracer by its identifier: one per target, and apart
    // from another `telltale probe` running beside this one.
    let base = (std::process::id() as u16).wrapping_mul(31);
    let mut round = 0u64;
    loop {
        let started = Instant::now();
        let timestamp_us = chrono::Utc::now().timestamp_micros();
        // Every target at once: one that does not answer never delays another.
        let results: Vec<(String, Result<_, ProbeError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = args
                .target
                .iter()
                .enumerate()
                .map(|(i, target)| {
                    let opts = &opts;
                    let id = base.wrapping_add(i as u16);
                    scope.spawn(move || (target.clone(), probe(target, opts, id, timestamp_us)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a probe thread panicked"))
                .collect()
        });
        for (target, result) in results {
            match result {
                Ok(p) => {
                    writeln!(out, "{}", to_line(&p)).context("writing a probe line")?;
                    tracing::debug!(target, hops = p.hop_count, loss_pct = p.loss_pct, "probed");
                }
                // Without the privilege nothing can be probed: one clear error.
                Err(e @ ProbeError::Privilege { .. }) => return Err(e.into()),
                Err(e) => tracing::warn!(target, error = %e, "probe gave no measurement"),
            }
        }
        out.flush().context("writing probe lines")?;
        round += 1;
        if args.count.is_some_and(|n| round >= n) {
            return Ok(());
        }
        std::thread::sleep(args.interval.saturating_sub(started.elapsed()));
    }
}
