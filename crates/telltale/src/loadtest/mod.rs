//! `telltale loadtest`: drives `POST /v1/events` of a running processor, then reads its
//! lake back and reports throughput, latency and any invalid data.
//!
//! Phases, in order: `steady` (N closed-loop connections for a duration), then the edge
//! cases `huge` (a batch just under and one just over the body limit), `empty`,
//! `malformed` (good and bad lines mixed), `slow` (a body trickling in) and `drop` (a
//! connection closed mid-body). With `--data-dir` the lake is then checked: every
//! acknowledged event present exactly once and unchanged, nothing refused present, the
//! bad lines in the dead letter. How events are made identifiable: [`events`].
//!
//! Load tests stay on the machine: only loopback targets are accepted.

mod events;
mod otlp;
mod traffic;
mod verify;

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;
use serde::Serialize;

use events::{EventSpace, Ledger};
use traffic::{PhaseReport, Run, SteadyReport, Target};
use verify::Verification;

/// Arguments of `telltale loadtest`.
#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    /// The processor to load: `http://host:port` (path defaults to `/v1/events`). Only
    /// loopback hosts (127.0.0.0/8, ::1, localhost) are accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Concurrent connections in the steady phase, each sending its next batch as soon
    /// as the previous one is answered.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Length of the steady phase.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Lines per batch in the steady phase.
    #[arg(long, default_value_t = 1000)]
    pub batch_lines: usize,
    /// The processor's `server.max_body_bytes`, for the huge-batch phase.
    #[arg(long, default_value_t = telltale_core::config::ServerConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// The processor's lake, to check what it stored; without it nothing is verified.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// How long to wait for the lake to show every acknowledged event (it flushes by
    /// age, `lake.flush_age`).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub verify_timeout: Duration,
    /// How long the slow client takes to send its body.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub slow_client_time: Duration,
    /// Phases to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "steady,huge,empty,malformed,slow,drop"
    )]
    pub phases: Vec<Phase>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Bearer token, when the processor requires one.
    #[arg(long, env = "TELLTALE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// What the steady phase sends: NDJSON lines (`POST /v1/events`) or the same events
    /// as OTLP/HTTP protobuf server spans (`POST /v1/traces`; steady phase only).
    #[arg(long, value_enum, default_value = "ndjson")]
    pub protocol: Protocol,
}

/// The wire format of the steady phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// `application/x-ndjson` to `/v1/events`.
    Ndjson,
    /// `application/x-protobuf` OTLP spans to `/v1/traces`.
    Otlp,
}

/// A phase of the load test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// N connections in a closed loop for `--duration`.
    Steady,
    /// A batch just under the body limit, and one just over it.
    Huge,
    /// An empty body.
    Empty,
    /// Good lines mixed with bad ones.
    Malformed,
    /// A body sent in small pieces with pauses.
    Slow,
    /// A connection closed in the middle of the body.
    Drop,
}

/// Everything a run measured; printed as a table and written with `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Identifies the run; the events went to service `loadtest-<run_id>`.
    pub run_id: String,
    /// The service name the run's events carry.
    pub service: String,
    /// The ingest URL.
    pub url: String,
    /// The command line that produced the report.
    pub command: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// The steady phase, when it ran.
    pub steady: Option<SteadyReport>,
    /// The edge-case phases.
    pub phases: Vec<PhaseReport>,
    /// The lake check; `None` = not verified (no `--data-dir`).
    pub verification: Option<Verification>,
    /// Missing, altered, duplicated or refused-but-stored data was found.
    pub invalid_data: bool,
    /// Some edge-case phase got an answer other than the expected one.
    pub unexpected_answers: bool,
}

/// Runs the load test; fails (non-zero exit) on invalid data or unexpected answers.
pub fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.batch_lines == 0 {
        bail!("--connections and --batch-lines must be at least 1");
    }
    if args.protocol == Protocol::Otlp && args.phases != [Phase::Steady] {
        bail!("--protocol otlp runs the steady phase only: add --phases steady");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(drive(&args))?;
    print!("{}", render(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("encoding the JSON report")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("writing the JSON report to {}", path.display()))?;
    }
    if report.invalid_data {
        bail!("invalid data in the lake (see the verification table above)");
    }
    if report.unexpected_answers {
        bail!("an edge-case phase got an unexpected answer (see the phases table above)");
    }
    Ok(())
}

async fn drive(args: &LoadtestArgs) -> anyhow::Result<Report> {
    let default_path = match args.protocol {
        Protocol::Ndjson => "/v1/events",
        Protocol::Otlp => "/v1/traces",
    };
    let target = resolve_target(&args.url, default_path, args.token.clone()).await?;
    let run_id = run_id();
    let now_us = chrono::Utc::now().timestamp_micros();
    let run = Arc::new(Run {
        target,
        space: EventSpace::new(&run_id, now_us, args.protocol == Protocol::Otlp),
        ledger: Ledger::default(),
        protocol: args.protocol,
    });
    eprintln!(
        "loadtest {run_id}: events go to service {} at {}",
        run.space.service, run.target.url
    );
    let wants = |p| args.phases.contains(&p);
    let steady = if wants(Phase::Steady) {
        Some(
            traffic::steady(
                Arc::clone(&run),
                args.connections,
                args.duration,
                args.batch_lines,
            )
            .await?,
        )
    } else {
        None
    };
    let client = traffic::client(1)?;
    let mut phases = Vec::new();
    if wants(Phase::Huge) {
        eprintln!("phase huge: batches around {} bytes", args.max_body_bytes);
        phases.extend(traffic::huge(&run, &client, args.max_body_bytes).await);
    }
    if wants(Phase::Empty) {
        eprintln!("phase empty");
        phases.push(traffic::empty(&run, &client).await);
    }
    let mut bad_lines = Vec::new();
    if wants(Phase::Malformed) {
        eprintln!("phase malformed");
        let (report, bad) = traffic::malformed(&run, &client).await;
        phases.push(report);
        bad_lines = bad;
    }
    if wants(Phase::Slow) {
        eprintln!(
            "phase slow client: body over {}",
            humantime::format_duration(args.slow_client_time)
        );
        phases.push(traffic::slow_client(&run, args.slow_client_time).await);
    }
    if wants(Phase::Drop) {
        eprintln!("phase drop mid-body");
        phases.push(traffic::drop_mid_body(&run).await);
    }
    let verification = match &args.data_dir {
        Some(dir) => {
            eprintln!(
                "verifying the lake at {} (up to {})",
                dir.display(),
                humantime::format_duration(args.verify_timeout)
            );
            let fates = run.ledger.fates(run.space.allocated());
            Some(verify::verify(dir, &run.space, &fates, &bad_lines, args.verify_timeout).await?)
        }
        None => None,
    };
    Ok(Report {
        run_id,
        service: run.space.service.clone(),
        url: run.target.url.to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_at: telltale_core::event::rfc3339(now_us),
        invalid_data: verification
            .as_ref()
            .is_some_and(Verification::invalid_data),
        unexpected_answers: phases.iter().any(|p| !p.ok),
        steady,
        phases,
        verification,
    })
}

/// Eight hex digits, different for every run.
fn run_id() -> String {
    // RandomState is seeded from the OS per process; the clock and pid separate runs
    // even where it is not.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// Parses `--url`, insists on plain HTTP to a loopback host, and resolves it.
async fn resolve_target(
    url: &str,
    default_path: &str,
    token: Option<String>,
) -> anyhow::Result<Target> {
    let mut parsed = reqwest::Url::parse(url)
        .with_context(|| format!("--url {url:?} is not a URL, e.g. http://127.0.0.1:8080"))?;
    if parsed.scheme() != "http" {
        bail!("--url {url:?}: only http:// is supported");
    }
    let loopback_rule = "load tests must stay on this machine: use 127.0.0.1, ::1 or localhost";
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let host_ok = match host.parse::<IpAddr>() {
        Ok(ip) => is_loopback(ip),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    if !host_ok {
        bail!(
            "--url {url:?}: host {:?} is not a loopback address; {loopback_rule}",
            parsed.host_str().unwrap_or("")
        );
    }
    if parsed.path() == "/" || parsed.path().is_empty() {
        parsed.set_path(default_path);
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .collect();
    // `localhost` could be mapped elsewhere in /etc/hosts: check what it resolves to.
    let addr = addrs
        .iter()
        .copied()
        .find(|a| is_loopback(a.ip()))
        .with_context(|| format!("--url {url:?}: {host} resolves to {addrs:?}; {loopback_rule}"))?;
    if let Some(other) = addrs.iter().find(|a| !is_loopback(a.ip())) {
        bail!("--url {url:?}: {host} also resolves to {other}; {loopback_rule}");
    }
    Ok(Target {
        url: parsed,
        addr,
        token: token.filter(|t| !t.is_empty()),
    })
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The report as text tables.
fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nloadtest {} → {} (service {})",
        r.run_id, r.url, r.service
    );
    if let Some(s) = &r.steady {
        let st = &s.statuses;
        let _ = writeln!(
            out,
            "\nsteady: {} connections × {}-line batches for {:.1}s",
            s.connections, s.batch_lines, s.elapsed_s
        );
        let rows: Vec<(&str, String)> = vec![
            ("requests", s.requests.to_string()),
            ("2xx", st.status_2xx.to_string()),
            ("4xx (not 429)", st.status_4xx.to_string()),
            ("429", st.status_429.to_string()),
            ("5xx", st.status_5xx.to_string()),
            ("transport errors", st.transport_errors.to_string()),
            ("events sent", s.events_sent.to_string()),
            ("events acknowledged", s.events_acknowledged.to_string()),
            (
                "sustained events/s",
                format!("{:.0}", s.sustained_events_per_s),
            ),
            ("peak events/s (best 1s)", s.peak_events_per_s.to_string()),
            ("latency p50 ms", format!("{:.1}", s.latency_ms.p50)),
            ("latency p95 ms", format!("{:.1}", s.latency_ms.p95)),
            ("latency p99 ms", format!("{:.1}", s.latency_ms.p99)),
            ("latency max ms", format!("{:.1}", s.latency_ms.max)),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<26}{value:>14}");
        }
    }
    if !r.phases.is_empty() {
        let _ = writeln!(out, "\nedge cases:");
        for p in &r.phases {
            let verdict = if p.ok { "ok" } else { "UNEXPECTED" };
            let _ = writeln!(out, "  {:<20}{verdict}", p.name);
            let _ = writeln!(out, "      sent:     {}", p.sent);
            let _ = writeln!(out, "      expected: {}", p.expected);
            let _ = writeln!(out, "      got:      {}", p.got);
        }
    }
    let _ = writeln!(out, "\nlake:");
    match &r.verification {
        None => {
            let _ = writeln!(out, "  not verified (pass --data-dir to check the lake)");
        }
        Some(v) => {
            let rows: Vec<(&str, u64)> = vec![
                ("acknowledged", v.acknowledged),
                ("present exactly once", v.present_once),
                ("missing", v.missing),
                ("altered", v.altered),
                ("duplicated", v.duplicated),
                ("present but refused", v.present_but_refused),
                ("unexpected rows", v.unexpected_rows),
                ("ambiguous (no answer)", v.ambiguous),
                ("  of which stored", v.ambiguous_present),
                ("dead letters expected", v.deadletter_expected),
                ("dead letters found", v.deadletter_found),
            ];
            for (name, value) in rows {
                let _ = writeln!(out, "  {name:<26}{value:>14}");
            }
            if !v.first_missing.is_empty() {
                let _ = writeln!(out, "  first missing: {}", v.first_missing.join(", "));
            }
            let _ = writeln!(
                out,
                "  {}after {:.1}s: {}",
                if v.complete { "" } else { "INCOMPLETE " },
                v.waited_s,
                if v.invalid_data() {
                    "INVALID DATA"
                } else {
                    "no invalid data"
                }
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3:9/v1/events",
            "http://[::1]:8080",
            "http://localhost:8080",
        ] {
            let t = resolve_target(ok, "/v1/events", None)
                .await
                .unwrap_or_else(|e| panic!("{ok}: {e:#}"));
            assert_eq!(t.url.path(), "/v1/events");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://example.com:8080",
            "http://0.0.0.0:8080",
            "https://127.0.0.1:8080",
        ] {
            assert!(
                resolve_target(bad, "/v1/events", None).await.is_err(),
                "{bad} must be refused"
            );
        }
        let e = resolve_target("http://192.0.2.1:8080", "/v1/events", None)
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("not a loopback address"), "{e:#}");
    }
}
