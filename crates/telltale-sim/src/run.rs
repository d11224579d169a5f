//! Running a simulator into an output: as fast as possible or paced to the wall clock,
//! in batches, until a count, a simulated time or a shutdown signal.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::error::SimError;
use crate::http_output::{HttpStats, HttpTarget};
use crate::shutdown::wait_shutdown;
use crate::sim::{SimPlan, Simulator};

/// Where lines go.
#[derive(Debug, Clone)]
pub enum Output {
    /// Standard output (a closed pipe, as with `| head`, ends the run quietly).
    Stdout,
    /// A file, created or truncated.
    File(PathBuf),
    /// NDJSON batches POSTed to the processor's ingest endpoint (see the `http` module
    /// docs for retries). `url` must be `http://`; a bare host (`http://host:port`) means
    /// `/v1/events`. `token` is sent as `Authorization: Bearer`; `gzip` compresses bodies
    /// (`Content-Encoding: gzip`).
    Http {
        /// Ingest URL.
        url: String,
        /// Bearer token, if the processor requires one.
        token: Option<String>,
        /// Whether to gzip request bodies.
        gzip: bool,
        /// How an https URL's server is verified (CA file, client certificate).
        tls: telltale_core::config::ClientTlsConfig,
    },
    /// Batches of whole lines (each ending in `'\n'`) to an in-process consumer, e.g. the
    /// processor in `telltale run`.
    Channel(mpsc::Sender<Bytes>),
}

/// How to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// Real time: emit each line once the wall clock reaches its simulated time (the start
    /// should be about now; a start in the past is emitted as a backlog at full speed).
    /// Lines are batched and flushed every ~100 ms or at `batch_max_lines`.
    pub paced: bool,
    /// Stop after this many lines (service and probe lines together).
    pub count: Option<u64>,
    /// Stop before the first line stamped at or after this simulated time.
    pub until_us: Option<i64>,
    /// Most lines per batch (an HTTP request, a channel message, a write); at least 1.
    pub batch_max_lines: usize,
    /// Show a progress bar on stderr, over `count`, else over the simulated span to
    /// `until_us`, else a spinner.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            paced: false,
            count: None,
            until_us: None,
            batch_max_lines: 5000,
            progress: false,
        }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `count` lines were emitted.
    Count,
    /// The simulated clock reached `until_us`.
    Until,
    /// The shutdown signal was received.
    Shutdown,
    /// Nothing is left to simulate (rate 0 and no probe target; unpaced runs only).
    Exhausted,
    /// Standard output was closed by the reader.
    OutputClosed,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Lines handed to the output (service and probe lines).
    pub lines: u64,
    /// Bytes of those lines (before any gzip).
    pub bytes: u64,
    /// Probe lines among them.
    pub probes: u64,
    /// Batches handed to the output.
    pub batches: u64,
    /// HTTP attempts that were retried.
    pub http_retries: u64,
    /// HTTP batches dropped (refused with a 4xx, or undeliverable at shutdown).
    pub http_dropped_batches: u64,
    /// Lines in those dropped batches.
    pub http_dropped_lines: u64,
    /// Lines the server reported accepted.
    pub http_accepted: u64,
    /// Lines the server reported rejected.
    pub http_rejected: u64,
    /// Why HTTP delivery stopped for good (an untrusted server certificate), if it did.
    pub http_fatal: Option<String>,
    /// Timestamp of the first line, microseconds.
    pub first_us: Option<i64>,
    /// Timestamp of the last line, microseconds.
    pub last_us: Option<i64>,
    /// Wall-clock duration of the run, seconds.
    pub elapsed_secs: f64,
    /// Why the run ended.
    pub stop: StopReason,
}

/// A simulator shared between [`run`] and a control API: `run` locks it once per batch
/// (never across an `.await`), so a controller can call
/// [`Simulator::start_incident`], [`Simulator::set_spike`] or [`Simulator::plan`] through
/// [`lock`](Self::lock) while it runs, and the change applies from the next batch.
#[derive(Debug, Clone)]
pub struct SimHandle(Arc<Mutex<Simulator>>);

impl SimHandle {
    /// Wraps a simulator.
    pub fn new(sim: Simulator) -> Self {
        Self(Arc::new(Mutex::new(sim)))
    }

    /// Locks the simulator (a panic while it was locked does not poison it for good: the
    /// simulator's state is always consistent between lines).
    pub fn lock(&self) -> MutexGuard<'_, Simulator> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The simulator's current plan.
    pub fn plan(&self) -> SimPlan {
        self.lock().plan()
    }
}

impl From<Simulator> for SimHandle {
    fn from(sim: Simulator) -> Self {
        Self::new(sim)
    }
}

/// The wall clock in microseconds since the epoch.
pub fn wall_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The consumer side of an output.
enum Sink {
    /// Our writer thread (stdout, file).
    Writer(JoinHandle<Result<(), SimError>>),
    /// Our HTTP delivery task.
    Http(JoinHandle<HttpStats>),
    /// The caller's channel.
    External,
}

fn start_sink(
    output: Output,
    paced: bool,
    shutdown: &watch::Receiver<bool>,
) -> Result<(mpsc::Sender<Bytes>, Sink), SimError> {
    match output {
        Output::Channel(tx) => Ok((tx, Sink::External)),
        Output::Stdout => {
            let (tx, rx) = mpsc::channel(4);
            let h = tokio::task::spawn_blocking(move || {
                write_all(rx, std::io::stdout().lock(), paced, "stdout", true)
            });
            Ok((tx, Sink::Writer(h)))
        }
        Output::File(path) => {
            let file = std::fs::File::create(&path).map_err(|source| SimError::Io {
                action: "creating",
                target: path.display().to_string(),
                source,
            })?;
            let (tx, rx) = mpsc::channel(4);
            let label = path.display().to_string();
            let h = tokio::task::spawn_blocking(move || write_all(rx, file, paced, &label, false));
            Ok((tx, Sink::Writer(h)))
        }
        Output::Http {
            url,
            token,
            gzip,
            tls,
        } => {
            let target = HttpTarget::new(&url, token, gzip, &tls)?;
            let (tx, rx) = mpsc::channel(2);
            let h = tokio::spawn(target.deliver(rx, shutdown.clone()));
            Ok((tx, Sink::Http(h)))
        }
    }
}

/// Writes batches through a 1 MiB buffer; flushes after each batch when paced.
fn write_all(
    mut rx: mpsc::Receiver<Bytes>,
    w: impl Write,
    flush_each: bool,
    label: &str,
    quiet_on_broken_pipe: bool,
) -> Result<(), SimError> {
    let mut w = BufWriter::with_capacity(1 << 20, w);
    let io_err = |source: std::io::Error| {
        if quiet_on_broken_pipe && source.kind() == std::io::ErrorKind::BrokenPipe {
            debug!("{label} was closed by its reader; stopping");
            return Ok(());
        }
        Err(SimError::Io {
            action: "writing to",
            target: label.to_owned(),
            source,
        })
    };
    while let Some(batch) = rx.blocking_recv() {
        if let Err(e) = w.write_all(&batch) {
            return io_err(e);
        }
        if flush_each && let Err(e) = w.flush() {
            return io_err(e);
        }
    }
    w.flush().or_else(io_err)
}

/// Why a batch ended.
enum BatchEnd {
    Full,
    /// Paced: the next line is in the future.
    CaughtUp,
    Count,
    Until,
    Exhausted,
}

struct Progress {
    bar: ProgressBar,
    start_us: i64,
    by_time: bool,
}

impl Progress {
    fn new(opts: &RunOptions, start_us: i64) -> Self {
        if !opts.progress {
            return Self {
                bar: ProgressBar::hidden(),
                start_us,
                by_time: false,
            };
        }
        let bar_style = |template: &str| {
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
        };
        let (bar, by_time) = if let Some(n) = opts.count {
            let bar = ProgressBar::new(n).with_style(bar_style(
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} lines ({per_sec}, eta {eta})",
            ));
            (bar, false)
        } else if let Some(until) = opts.until_us.filter(|&u| u > start_us) {
            let secs = ((until - start_us) / 1_000_000).max(1) as u64;
            let bar = ProgressBar::new(secs).with_style(bar_style(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} simulated s (eta {eta}) {msg}",
            ));
            (bar, true)
        } else {
            let bar = ProgressBar::new_spinner()
                .with_style(bar_style("{spinner} [{elapsed_precise}] {msg}"));
            (bar, false)
        };
        Self {
            bar,
            start_us,
            by_time,
        }
    }

    fn update(&self, lines: u64, last_us: Option<i64>) {
        if self.by_time {
            if let Some(t) = last_us {
                self.bar
                    .set_position(((t - self.start_us).max(0) / 1_000_000) as u64);
            }
            self.bar.set_message(format!("{lines} lines"));
        } else if self.bar.length().is_some() {
            self.bar.set_position(lines);
        } else {
            self.bar.set_message(format!("{lines} lines"));
            self.bar.tick();
        }
    }
}

/// Runs `sim` into `output` until `opts.count` lines, `opts.until_us`, or `shutdown` turns
/// true (then what was generated is flushed before returning).
///
/// `sim` is a [`Simulator`] or a [`SimHandle`]: pass a handle (and keep a clone) to steer
/// the simulator while it runs. Generation happens on the calling task in batches of
/// `opts.batch_max_lines`, yielding between batches; stdout and files are written by a
/// blocking thread through a 1 MiB buffer, HTTP batches by a delivery task. Batches wait
/// for the output (backpressure), so a slow consumer slows generation rather than
/// growing memory.
///
/// Errors: the output cannot be opened, written, or (HTTP) the URL is not `http://`; a
/// [`Output::Channel`] whose receiver is dropped gives [`SimError::OutputClosed`].
pub async fn run(
    sim: impl Into<SimHandle>,
    opts: RunOptions,
    output: Output,
    mut shutdown: watch::Receiver<bool>,
) -> Result<RunSummary, SimError> {
    let handle: SimHandle = sim.into();
    let started = Instant::now();
    let batch_max = opts.batch_max_lines.max(1);
    let (tx, sink) = start_sink(output, opts.paced, &shutdown)?;
    let (start_us, stats0) = {
        let s = handle.lock();
        (s.now_us(), s.stats())
    };
    let progress = Progress::new(&opts, start_us);

    let mut lines = 0u64;
    let mut bytes = 0u64;
    let mut batches = 0u64;
    let mut first_us = None;
    let mut last_us = None;
    let mut buf: Vec<u8> = Vec::with_capacity(batch_max.min(65_536) * 256);
    let mut closed = false;

    let stop = loop {
        if *shutdown.borrow() {
            break StopReason::Shutdown;
        }
        let wall = opts.paced.then(wall_now_us);
        let (n, end) = {
            let mut s = handle.lock();
            let mut n = 0usize;
            let end = loop {
                if opts.count.is_some_and(|c| lines + n as u64 >= c) {
                    break BatchEnd::Count;
                }
                if n >= batch_max {
                    break BatchEnd::Full;
                }
                let next = s.next_us();
                if next == i64::MAX {
                    break BatchEnd::Exhausted;
                }
                if opts.until_us.is_some_and(|u| next >= u) {
                    break BatchEnd::Until;
                }
                if wall.is_some_and(|w| next > w) {
                    break BatchEnd::CaughtUp;
                }
                let ts = s.next_line(&mut buf);
                first_us.get_or_insert(ts);
                last_us = Some(ts);
                n += 1;
            };
            (n, end)
        };
        if n > 0 {
            lines += n as u64;
            bytes += buf.len() as u64;
            batches += 1;
            let cap = buf.capacity();
            let batch = Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(cap)));
            if tx.send(batch).await.is_err() {
                closed = true;
                break StopReason::OutputClosed;
            }
            progress.update(lines, last_us);
        }
        match end {
            BatchEnd::Full => {
                if !opts.paced {
                    tokio::task::yield_now().await;
                }
            }
            BatchEnd::Count => break StopReason::Count,
            BatchEnd::Until => break StopReason::Until,
            BatchEnd::Exhausted if !opts.paced => break StopReason::Exhausted,
            BatchEnd::Exhausted | BatchEnd::CaughtUp => {
                // Wake for the next 100 ms batch, or sooner than 1 s to pick up control
                // changes while the next line is far off.
                let next = handle.lock().next_us();
                let until_next = u64::try_from(next.saturating_sub(wall_now_us())).unwrap_or(0);
                let wait = Duration::from_micros(until_next)
                    .clamp(Duration::from_millis(100), Duration::from_secs(1));
                let stopped = tokio::select! {
                    () = tokio::time::sleep(wait) => false,
                    () = wait_shutdown(&mut shutdown) => true,
                };
                if stopped {
                    break StopReason::Shutdown;
                }
            }
        }
    };
    drop(tx);
    progress.bar.finish_and_clear();

    let mut http = HttpStats::default();
    match sink {
        Sink::External if closed => return Err(SimError::OutputClosed { lines }),
        Sink::External => {}
        Sink::Writer(h) => h.await.map_err(|e| SimError::Task {
            task: "output writer",
            message: e.to_string(),
        })??,
        Sink::Http(h) => {
            http = h.await.map_err(|e| SimError::Task {
                task: "HTTP delivery",
                message: e.to_string(),
            })?;
        }
    }
    let probes = handle.lock().stats().probe_lines - stats0.probe_lines;
    Ok(RunSummary {
        lines,
        bytes,
        probes,
        batches,
        http_retries: http.retries,
        http_dropped_batches: http.dropped_batches,
        http_dropped_lines: http.dropped_lines,
        http_accepted: http.accepted,
        http_rejected: http.rejected,
        http_fatal: http.fatal,
        first_us,
        last_us,
        elapsed_secs: started.elapsed().as_secs_f64(),
        stop,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Bytes as Body;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use telltale_core::{Limits, Record, ServiceCatalog, parse_line};
    use tokio::net::TcpListener;

    use super::*;
    use crate::sim::{SEEDED_START_US, SimConfig};

    fn catalog() -> ServiceCatalog {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/services.toml");
        ServiceCatalog::from_toml_str(&std::fs::read_to_string(path).unwrap(), "services.toml")
            .unwrap()
    }

    fn sim(seed: u64, start_us: i64, rate: f64) -> Simulator {
        Simulator::new(
            &catalog(),
            SimConfig {
                seed,
                start_us,
                rate,
                probe_target: Some("example.com".into()),
                ..SimConfig::default()
            },
        )
    }

    fn no_shutdown() -> watch::Receiver<bool> {
        // A receiver whose sender is gone never signals shutdown.
        watch::channel(false).1
    }

    fn check_lines(text: &[u8]) -> usize {
        let mut n = 0;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            parse_line(line, 1, i64::MAX / 2, &Limits::default())
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
            n += 1;
        }
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unpaced_file_output_is_fast_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let count = 300_000;
        let opts = RunOptions {
            count: Some(count),
            ..RunOptions::default()
        };
        let s = run(
            sim(1, SEEDED_START_US, 1000.0),
            opts,
            Output::File(path.clone()),
            no_shutdown(),
        )
        .await
        .unwrap();
        eprintln!(
            "unpaced file output: {} lines, {} bytes in {:.3}s = {:.0} lines/s (debug build)",
            s.lines,
            s.bytes,
            s.elapsed_secs,
            s.lines as f64 / s.elapsed_secs
        );
        assert_eq!((s.lines, s.stop), (count, StopReason::Count));
        let text = std::fs::read(&path).unwrap();
        assert_eq!(text.len() as u64, s.bytes);
        assert_eq!(text.iter().filter(|&&b| b == b'\n').count() as u64, count);
        let tenth = text
            .split_inclusive(|&b| b == b'\n')
            .take(count as usize / 10)
            .flatten()
            .copied()
            .collect::<Vec<u8>>();
        assert_eq!(check_lines(&tenth) as u64, count / 10);
        assert!(s.probes > 0);
        assert_eq!(
            text.split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"{\"kind\":\"probe\""))
                .count() as u64,
            s.probes
        );
        // The same run again gives the same bytes.
        let path2 = dir.path().join("again.ndjson");
        run(
            sim(1, SEEDED_START_US, 1000.0),
            RunOptions {
                count: Some(count),
                batch_max_lines: 777,
                ..RunOptions::default()
            },
            Output::File(path2.clone()),
            no_shutdown(),
        )
        .await
        .unwrap();
        assert!(std::fs::read(&path2).unwrap() == text);
    }

    #[tokio::test]
    async fn until_stops_at_a_simulated_time() {
        let (tx, mut rx) = mpsc::channel(1024);
        let until = SEEDED_START_US + 60_000_000;
        let opts = RunOptions {
            until_us: Some(until),
            batch_max_lines: 100,
            ..RunOptions::default()
        };
        let task = tokio::spawn(run(
            sim(2, SEEDED_START_US, 50.0),
            opts,
            Output::Channel(tx),
            no_shutdown(),
        ));
        let mut text = Vec::new();
        let mut batches = 0;
        while let Some(b) = rx.recv().await {
            assert!(b.ends_with(b"\n"));
            text.extend_from_slice(&b);
            batches += 1;
        }
        let s = task.await.unwrap().unwrap();
        assert_eq!(s.stop, StopReason::Until);
        assert_eq!(s.batches, batches);
        assert_eq!(s.lines as usize, check_lines(&text));
        assert_eq!(s.probes, 6);
        assert!(s.last_us.unwrap() < until && s.first_us == Some(SEEDED_START_US));
        // 50/s at 00:00 UTC, where the diurnal factor is 0.5: about 1500 lines.
        assert!((1200..1800).contains(&s.lines), "{}", s.lines);
    }

    #[tokio::test]
    async fn paced_lines_arrive_once_the_wall_clock_reaches_them() {
        let (tx, mut rx) = mpsc::channel(64);
        let start = wall_now_us() - 50_000;
        let opts = RunOptions {
            paced: true,
            count: Some(120),
            ..RunOptions::default()
        };
        let task = tokio::spawn(run(
            sim(3, start, 400.0),
            opts,
            Output::Channel(tx),
            no_shutdown(),
        ));
        let mut lines = 0;
        let mut batches = 0;
        while let Some(b) = rx.recv().await {
            let received = wall_now_us();
            batches += 1;
            for line in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let ts = match parse_line(line, 1, i64::MAX / 2, &Limits::default()).unwrap() {
                    Record::Service(e) => e.timestamp_us,
                    Record::Probe(p) => p.timestamp_us,
                    Record::HttpCheck(c) => c.timestamp_us,
                };
                assert!(
                    ts <= received,
                    "line stamped {ts} arrived early at {received}"
                );
                lines += 1;
            }
        }
        let s = task.await.unwrap().unwrap();
        assert_eq!((s.lines, lines, s.stop), (120, 120, StopReason::Count));
        // The backlog comes at once, the rest in ~100 ms batches.
        assert!(batches >= 2, "{batches}");
        assert!(s.last_us.unwrap() > start + 50_000);
    }

    #[tokio::test]
    async fn shutdown_flushes_what_was_generated_and_returns() {
        let (tx, mut rx) = mpsc::channel(64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let opts = RunOptions {
            paced: true,
            ..RunOptions::default()
        };
        let task = tokio::spawn(run(
            sim(4, wall_now_us() - 1_000_000, 100.0),
            opts,
            Output::Channel(tx),
            stop_rx,
        ));
        let mut lines = 0u64;
        while let Some(b) = rx.recv().await {
            lines += b.iter().filter(|&&c| c == b'\n').count() as u64;
            stop_tx.send(true).unwrap();
        }
        let s = task.await.unwrap().unwrap();
        assert_eq!(s.stop, StopReason::Shutdown);
        assert!(lines > 0);
        assert_eq!(s.lines, lines);
    }

    #[tokio::test]
    async fn a_dropped_channel_receiver_is_an_error() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let err = run(
            sim(5, SEEDED_START_US, 10.0),
            RunOptions::default(),
            Output::Channel(tx),
            no_shutdown(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SimError::OutputClosed { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_created_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("x.ndjson");
        let err = run(
            sim(5, SEEDED_START_US, 10.0),
            RunOptions::default(),
            Output::File(path.clone()),
            no_shutdown(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(&format!("creating {}: ", path.display())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_handle_lets_a_controller_steer_a_running_simulator() {
        let handle = SimHandle::new(sim(6, SEEDED_START_US, 10.0));
        let (tx, mut rx) = mpsc::channel(4);
        let opts = RunOptions {
            until_us: Some(SEEDED_START_US + 600_000_000),
            batch_max_lines: 50,
            ..RunOptions::default()
        };
        let task = tokio::spawn(run(
            handle.clone(),
            opts,
            Output::Channel(tx),
            no_shutdown(),
        ));
        let first = rx.recv().await.unwrap();
        let incident = handle
            .lock()
            .start_incident(
                "auth-service",
                crate::IncidentKind::Outage,
                Duration::from_secs(3600),
            )
            .unwrap();
        assert_eq!(handle.plan().active_incidents, vec![incident.clone()]);
        let mut rest = Vec::new();
        while let Some(b) = rx.recv().await {
            rest.extend_from_slice(&b);
        }
        task.await.unwrap().unwrap();
        // Batches generated before the incident may still have been queued: look at the
        // lines stamped after its start.
        let mut auth = 0;
        for line in rest.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Record::Service(e) =
                parse_line(line, 1, i64::MAX / 2, &Limits::default()).unwrap()
                && e.service == "auth-service"
                && e.timestamp_us > incident.start_us
            {
                assert_eq!(e.status_code, 503);
                auth += 1;
            }
        }
        assert!(auth > 10 && !first.is_empty());
    }

    /// A real ingest server for the HTTP tests: answers each request with the next status
    /// of `script` (then 200), and records what it accepted.
    #[derive(Default)]
    struct Ingest {
        script: Vec<(StatusCode, Option<&'static str>, &'static str)>,
        requests: AtomicUsize,
        delivered: Mutex<Vec<Vec<u8>>>,
        headers: Mutex<Vec<HeaderMap>>,
    }

    async fn ingest(
        State(st): State<Arc<Ingest>>,
        headers: HeaderMap,
        body: Body,
    ) -> impl IntoResponse {
        let i = st.requests.fetch_add(1, Ordering::SeqCst);
        st.headers.lock().unwrap().push(headers.clone());
        if let Some(&(status, retry_after, message)) = st.script.get(i) {
            let mut h = HeaderMap::new();
            if let Some(ra) = retry_after {
                h.insert(header::RETRY_AFTER, ra.parse().unwrap());
            }
            return (status, h, message.to_owned());
        }
        let mut data = body.to_vec();
        if headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v == "gzip")
        {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&data[..])
                .read_to_end(&mut plain)
                .unwrap();
            data = plain;
        }
        let n = check_lines(&data);
        st.delivered.lock().unwrap().push(data);
        (
            StatusCode::OK,
            HeaderMap::new(),
            format!(r#"{{"accepted":{n},"rejected":0,"errors":[]}}"#),
        )
    }

    async fn serve(state: Arc<Ingest>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/v1/events", post(ingest))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn http_retries_a_503_then_delivers_the_batch_exactly_once() {
        let state = Arc::new(Ingest {
            script: vec![(StatusCode::SERVICE_UNAVAILABLE, Some("0"), "busy")],
            ..Ingest::default()
        });
        let url = serve(state.clone()).await;
        let opts = RunOptions {
            count: Some(500),
            batch_max_lines: 1000,
            ..RunOptions::default()
        };
        let output = Output::Http {
            url,
            token: Some("s3cret".into()),
            gzip: true,
            tls: Default::default(),
        };
        let s = run(sim(7, SEEDED_START_US, 100.0), opts, output, no_shutdown())
            .await
            .unwrap();
        assert_eq!(state.requests.load(Ordering::SeqCst), 2);
        assert_eq!((s.lines, s.batches, s.http_retries), (500, 1, 1));
        assert_eq!((s.http_accepted, s.http_dropped_batches), (500, 0));
        let delivered = state.delivered.lock().unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(check_lines(&delivered[0]), 500);
        // The delivered batch is exactly what the simulator produces.
        let mut expected = Vec::new();
        let mut again = sim(7, SEEDED_START_US, 100.0);
        for _ in 0..500 {
            again.next_line(&mut expected);
        }
        assert!(delivered[0] == expected);
        for h in state.headers.lock().unwrap().iter() {
            assert_eq!(h[header::AUTHORIZATION], "Bearer s3cret");
            assert_eq!(h[header::CONTENT_TYPE], "application/x-ndjson");
            assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        }
    }

    #[tokio::test]
    async fn http_drops_a_batch_the_server_refuses_and_goes_on() {
        let state = Arc::new(Ingest {
            script: vec![(StatusCode::BAD_REQUEST, None, r#"{"error":"no"}"#)],
            ..Ingest::default()
        });
        let url = serve(state.clone()).await;
        let opts = RunOptions {
            count: Some(300),
            batch_max_lines: 100,
            ..RunOptions::default()
        };
        let output = Output::Http {
            url: format!("{url}/v1/events"),
            token: None,
            gzip: false,
            tls: Default::default(),
        };
        let s = run(sim(8, SEEDED_START_US, 100.0), opts, output, no_shutdown())
            .await
            .unwrap();
        assert_eq!(
            (s.batches, s.http_dropped_batches, s.http_dropped_lines),
            (3, 1, 100)
        );
        assert_eq!((s.http_accepted, s.http_retries), (200, 0));
        assert_eq!(state.delivered.lock().unwrap().len(), 2);
        assert!(
            state
                .headers
                .lock()
                .unwrap()
                .iter()
                .all(|h| !h.contains_key(header::AUTHORIZATION)
                    && !h.contains_key(header::CONTENT_ENCODING))
        );
    }

    /// A listener that drops its first connection unanswered, like a server restarting.
    struct DropFirst(TcpListener, bool);

    impl axum::serve::Listener for DropFirst {
        type Io = tokio::net::TcpStream;
        type Addr = std::net::SocketAddr;
        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok(conn) = self.0.accept().await else {
                    continue;
                };
                if std::mem::replace(&mut self.1, false) {
                    drop(conn);
                    continue;
                }
                return conn;
            }
        }
        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            self.0.local_addr()
        }
    }

    #[tokio::test]
    async fn http_retries_after_a_connection_error() {
        let state = Arc::new(Ingest::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/v1/events", post(ingest))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(DropFirst(listener, true), app).await });
        let opts = RunOptions {
            count: Some(50),
            ..RunOptions::default()
        };
        let output = Output::Http {
            url,
            token: None,
            gzip: false,
            tls: Default::default(),
        };
        let s = run(sim(9, SEEDED_START_US, 100.0), opts, output, no_shutdown())
            .await
            .unwrap();
        assert_eq!((s.http_retries, s.http_accepted), (1, 50));
        let delivered = state.delivered.lock().unwrap();
        assert_eq!(delivered.len(), 1);
        let mut per_line: BTreeMap<&[u8], usize> = BTreeMap::new();
        for l in delivered[0]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            *per_line.entry(l).or_default() += 1;
        }
        assert!(per_line.values().all(|&n| n == 1) && per_line.len() == 50);
    }

    #[tokio::test]
    async fn http_undeliverable_batches_are_dropped_at_shutdown() {
        // A port with nothing listening: every attempt is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (stop_tx, stop_rx) = watch::channel(false);
        let opts = RunOptions {
            count: Some(20),
            batch_max_lines: 5,
            ..RunOptions::default()
        };
        let output = Output::Http {
            url: format!("http://127.0.0.1:{port}"),
            token: None,
            gzip: false,
            tls: Default::default(),
        };
        let handle = SimHandle::new(sim(10, SEEDED_START_US, 100.0));
        let task = tokio::spawn(run(handle.clone(), opts, output, stop_rx));
        // Wait until everything is generated; delivery keeps retrying until shutdown.
        while {
            let st = handle.lock().stats();
            st.service_lines + st.probe_lines < 20
        } {
            tokio::task::yield_now().await;
        }
        stop_tx.send(true).unwrap();
        let s = task.await.unwrap().unwrap();
        assert_eq!((s.lines, s.stop), (20, StopReason::Count));
        assert_eq!(s.http_accepted, 0);
        assert_eq!(
            (s.batches, s.http_dropped_batches, s.http_dropped_lines),
            (4, 4, 20)
        );
    }
}
