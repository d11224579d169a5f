//! The phases of a load test: the steady closed loop and the edge cases.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::events::{EventSpace, Fate, Ledger};

/// Longest wait for one request, connect to last byte of the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `Retry-After` honoured before a connection's next request.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Latencies above this (µs) are clamped into the histogram's top bucket.
const MAX_LATENCY_US: u64 = 120_000_000;
/// Pause after a 429/503 without `Retry-After`, and after a transport error.
const OVERLOAD_PAUSE: Duration = Duration::from_millis(100);

/// Request latencies in µs, 3 significant digits.
fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("creating the latency histogram")
}

/// Where the load goes: the ingest URL and its (loopback) socket address.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port/v1/events`.
    pub url: reqwest::Url,
    /// The resolved address, for the raw-socket phases.
    pub addr: SocketAddr,
    /// Bearer token, when the processor needs one.
    pub token: Option<String>,
}

impl Target {
    /// The request line and headers of a hand-written `POST` with a body of `len` bytes.
    fn raw_head(&self, len: usize) -> String {
        let auth = match &self.token {
            Some(t) => format!("Authorization: Bearer {t}\r\n"),
            None => String::new(),
        };
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-ndjson\r\n\
             Content-Length: {len}\r\n{auth}Connection: close\r\n\r\n",
            self.url.path(),
            self.addr,
        )
    }
}

/// What the phases share: where to send, what to send, and the ledger of outcomes.
#[derive(Debug)]
pub struct Run {
    /// The processor's ingest endpoint.
    pub target: Target,
    /// The run's events.
    pub space: EventSpace,
    /// What happened to each event.
    pub ledger: Ledger,
    /// What the steady phase sends.
    pub protocol: super::Protocol,
}

/// One request's result as the phases see it.
#[derive(Debug)]
struct Answer {
    status: Option<StatusCode>,
    accepted: Option<u64>,
    rejected: Option<u64>,
    retry_after: Option<Duration>,
    transport_error: Option<String>,
    /// Nothing reached the server (connect failed), so nothing can have been stored.
    never_sent: bool,
    /// Overload answers (429, 503) that came before this one, oldest first.
    overload_retries: Vec<String>,
    latency: Duration,
}

impl Answer {
    fn describe(&self) -> String {
        let retried = if self.overload_retries.is_empty() {
            String::new()
        } else {
            format!("{}, then ", self.overload_retries.join(", "))
        };
        retried + &self.describe_last()
    }

    fn describe_last(&self) -> String {
        match (self.status, &self.transport_error) {
            (Some(s), _) => match (self.accepted, self.rejected) {
                (Some(a), Some(r)) => format!("{} ({a} accepted, {r} rejected)", s.as_u16()),
                _ => s.as_u16().to_string(),
            },
            (None, Some(e)) => format!("transport error: {e}"),
            (None, None) => "no answer".to_owned(),
        }
    }

    /// The fate of a batch of `lines` valid lines given this answer.
    fn fate(&self, lines: u64) -> Fate {
        match self.status {
            Some(s) if s.is_success() && self.accepted == Some(lines) => Fate::Acknowledged,
            // 2xx but a different count: which lines were kept is unknown.
            Some(s) if s.is_success() => Fate::Ambiguous,
            Some(_) => Fate::Refused,
            None if self.never_sent => Fate::Refused,
            None => Fate::Ambiguous,
        }
    }
}

#[derive(serde::Deserialize)]
struct IngestBody {
    accepted: u64,
    rejected: u64,
}

async fn post(client: &reqwest::Client, target: &Target, body: bytes::Bytes) -> Answer {
    post_as(client, target, body, None).await
}

/// [`post`], or with `otlp_spans` = the spans in it, an OTLP/HTTP protobuf export.
async fn post_as(
    client: &reqwest::Client,
    target: &Target,
    body: bytes::Bytes,
    otlp_spans: Option<u64>,
) -> Answer {
    let started = Instant::now();
    let content_type = match otlp_spans {
        None => "application/x-ndjson",
        Some(_) => "application/x-protobuf",
    };
    let mut request = client
        .post(target.url.clone())
        .header(CONTENT_TYPE, content_type)
        .body(body);
    if let Some(token) = &target.token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let failed = |e: reqwest::Error, started: Instant| Answer {
        status: None,
        accepted: None,
        rejected: None,
        retry_after: None,
        never_sent: e.is_connect(),
        overload_retries: Vec::new(),
        transport_error: Some(format!("{e:#}")),
        latency: started.elapsed(),
    };
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return failed(e, started),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = match response.bytes().await {
        Ok(b) => b,
        // The status arrived, so the server decided; a 2xx whose body broke is still a 2xx
        // without a count, which `fate` treats as ambiguous.
        Err(e) => {
            return Answer {
                status: Some(status),
                transport_error: Some(format!("reading the answer: {e:#}")),
                ..failed(e, started)
            };
        }
    };
    let parsed: Option<IngestBody> = match otlp_spans {
        None => serde_json::from_slice(&bytes).ok(),
        Some(spans) => super::otlp::rejected(&bytes)
            .filter(|_| status.is_success())
            .map(|rejected| IngestBody {
                accepted: spans.saturating_sub(rejected),
                rejected,
            }),
    };
    Answer {
        status: Some(status),
        accepted: parsed.as_ref().map(|p| p.accepted),
        rejected: parsed.as_ref().map(|p| p.rejected),
        retry_after,
        transport_error: None,
        never_sent: false,
        overload_retries: Vec::new(),
        latency: started.elapsed(),
    }
}

/// Tries of an edge-case request refused for overload before giving up.
const EDGE_TRIES: u32 = 5;

/// [`post`] for the edge cases, which test something other than overload: a 429 or 503
/// (the server catching up after the steady phase) is retried with the same body, as a
/// real client would; the overload answers are noted in the result's description.
async fn post_edge(client: &reqwest::Client, target: &Target, body: bytes::Bytes) -> Answer {
    let mut overloaded = Vec::new();
    loop {
        let mut answer = post(client, target, body.clone()).await;
        match answer.status {
            Some(s @ (StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE))
                if overloaded.len() + 1 < EDGE_TRIES as usize =>
            {
                overloaded.push(s.as_u16().to_string());
                let wait = answer.retry_after.unwrap_or(Duration::from_secs(1));
                tokio::time::sleep(wait.min(MAX_RETRY_AFTER)).await;
            }
            _ => {
                answer.overload_retries = overloaded;
                return answer;
            }
        }
    }
}

/// An HTTP client for the load test: no proxy (traffic stays on loopback), bounded waits.
pub fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    telltale_tls::client_builder()
        .user_agent(concat!("telltale-loadtest/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(connections)
        .build()
        .context("building the HTTP client")
}

/// Request counts by outcome.
#[derive(Debug, Default, Clone, Serialize)]
pub struct StatusCounts {
    /// Requests answered 2xx.
    pub status_2xx: u64,
    /// Requests answered 4xx other than 429.
    pub status_4xx: u64,
    /// Requests answered 429 Too Many Requests.
    pub status_429: u64,
    /// Requests answered 5xx (503 included).
    pub status_5xx: u64,
    /// Requests without an HTTP answer (connect failure, reset, timeout).
    pub transport_errors: u64,
}

/// Latency percentiles of the steady phase, milliseconds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest request.
    pub max: f64,
}

/// Results of the steady phase.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyReport {
    /// Concurrent connections, each a closed loop.
    pub connections: usize,
    /// Lines per batch.
    pub batch_lines: usize,
    /// Wall time from the first request to the last answer, seconds.
    pub elapsed_s: f64,
    /// Requests sent.
    pub requests: u64,
    /// Requests by outcome.
    #[serde(flatten)]
    pub statuses: StatusCounts,
    /// Events sent in all requests.
    pub events_sent: u64,
    /// Events the server acknowledged (2xx with the full count accepted).
    pub events_acknowledged: u64,
    /// Acknowledged events over the elapsed time.
    pub sustained_events_per_s: f64,
    /// Acknowledged events in the best whole second.
    pub peak_events_per_s: u64,
    /// Acknowledged events in each second of the phase.
    pub events_per_second: Vec<u64>,
    /// Request latency (send to last byte of the answer).
    pub latency_ms: LatencyMs,
}

/// Live counters of the steady phase, for the progress lines and the final sums.
#[derive(Debug, Default)]
struct SteadyCounters {
    requests: AtomicU64,
    status_2xx: AtomicU64,
    status_4xx: AtomicU64,
    status_429: AtomicU64,
    status_5xx: AtomicU64,
    transport_errors: AtomicU64,
    events_sent: AtomicU64,
    events_acknowledged: AtomicU64,
}

impl SteadyCounters {
    fn count(&self, answer: &Answer) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let slot = match answer.status {
            None => &self.transport_errors,
            Some(s) if s.is_success() => &self.status_2xx,
            Some(StatusCode::TOO_MANY_REQUESTS) => &self.status_429,
            Some(s) if s.is_client_error() => &self.status_4xx,
            // 1xx/3xx never come from this endpoint; count them with server errors.
            Some(_) => &self.status_5xx,
        };
        slot.fetch_add(1, Ordering::Relaxed);
    }

    fn statuses(&self) -> StatusCounts {
        StatusCounts {
            status_2xx: self.status_2xx.load(Ordering::Relaxed),
            status_4xx: self.status_4xx.load(Ordering::Relaxed),
            status_429: self.status_429.load(Ordering::Relaxed),
            status_5xx: self.status_5xx.load(Ordering::Relaxed),
            transport_errors: self.transport_errors.load(Ordering::Relaxed),
        }
    }
}

/// N closed-loop connections posting batches until `duration` has passed.
pub async fn steady(
    run: Arc<Run>,
    connections: usize,
    duration: Duration,
    batch_lines: usize,
) -> anyhow::Result<SteadyReport> {
    let counters = Arc::new(SteadyCounters::default());
    // One slot per second, plus room for answers that arrive after the deadline.
    let seconds = duration.as_secs() as usize + REQUEST_TIMEOUT.as_secs() as usize + 2;
    let per_second: Arc<Vec<AtomicU64>> =
        Arc::new((0..seconds).map(|_| AtomicU64::new(0)).collect());
    let started = Instant::now();
    let deadline = started + duration;
    let done = Arc::new(AtomicBool::new(false));
    let progress = tokio::spawn(progress_lines(
        Arc::clone(&counters),
        started,
        duration,
        Arc::clone(&done),
    ));
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        // A client per worker: each worker is one connection, reused for its whole loop.
        let client = client(1)?;
        let (run, counters, per_second) = (
            Arc::clone(&run),
            Arc::clone(&counters),
            Arc::clone(&per_second),
        );
        workers.push(tokio::spawn(async move {
            let mut histogram = latency_histogram()?;
            while Instant::now() < deadline {
                let seqs = run.space.allocate(batch_lines as u64);
                let (body, otlp_spans) = match run.protocol {
                    super::Protocol::Ndjson => (run.space.batch(seqs.clone()), None),
                    super::Protocol::Otlp => (
                        super::otlp::batch(&run.space, seqs.clone()),
                        Some(batch_lines as u64),
                    ),
                };
                counters
                    .events_sent
                    .fetch_add(batch_lines as u64, Ordering::Relaxed);
                let answer = post_as(&client, &run.target, body.into(), otlp_spans).await;
                counters.count(&answer);
                histogram.saturating_record(answer.latency.as_micros() as u64);
                let fate = answer.fate(batch_lines as u64);
                run.ledger.record(seqs, fate);
                if fate == Fate::Acknowledged {
                    counters
                        .events_acknowledged
                        .fetch_add(batch_lines as u64, Ordering::Relaxed);
                    let second = (started.elapsed().as_secs() as usize).min(per_second.len() - 1);
                    per_second[second].fetch_add(batch_lines as u64, Ordering::Relaxed);
                }
                let pause = match answer.status {
                    // Overloaded: counted as refused above; wait as told (or a little when
                    // not told, rather than hammer), never past the end.
                    Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) => answer
                        .retry_after
                        .unwrap_or(OVERLOAD_PAUSE)
                        .min(MAX_RETRY_AFTER),
                    // Nothing listening: do not spin.
                    None => OVERLOAD_PAUSE,
                    _ => Duration::ZERO,
                };
                let pause = pause.min(deadline.saturating_duration_since(Instant::now()));
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            anyhow::Ok(histogram)
        }));
    }
    let mut histogram = latency_histogram()?;
    for worker in workers {
        let h = worker.await.context("a load worker panicked")??;
        histogram.add(h).context("merging latency histograms")?;
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = progress.await;
    let used_seconds = (elapsed.as_secs_f64().ceil() as usize).clamp(1, per_second.len());
    let events_per_second: Vec<u64> = per_second[..used_seconds]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let acknowledged = counters.events_acknowledged.load(Ordering::Relaxed);
    let ms = |us: u64| us as f64 / 1000.0;
    let latency_ms = if histogram.is_empty() {
        LatencyMs::default()
    } else {
        LatencyMs {
            p50: ms(histogram.value_at_quantile(0.50)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
        }
    };
    Ok(SteadyReport {
        connections,
        batch_lines,
        elapsed_s: elapsed.as_secs_f64(),
        requests: counters.requests.load(Ordering::Relaxed),
        statuses: counters.statuses(),
        events_sent: counters.events_sent.load(Ordering::Relaxed),
        events_acknowledged: acknowledged,
        sustained_events_per_s: acknowledged as f64 / elapsed.as_secs_f64().max(1e-9),
        peak_events_per_s: events_per_second.iter().copied().max().unwrap_or(0),
        events_per_second,
        latency_ms,
    })
}

/// One line per second on stderr while the steady phase runs.
async fn progress_lines(
    counters: Arc<SteadyCounters>,
    started: Instant,
    duration: Duration,
    done: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(started) + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut last_acknowledged = 0;
    while !done.load(Ordering::Relaxed) {
        tick.tick().await;
        if done.load(Ordering::Relaxed) {
            break;
        }
        let acknowledged = counters.events_acknowledged.load(Ordering::Relaxed);
        let s = counters.statuses();
        eprintln!(
            "steady {:>3}s/{}s: {:>8} events/s, {} requests: {} 2xx, {} 4xx, {} 429, {} 5xx, {} transport errors",
            started.elapsed().as_secs(),
            duration.as_secs(),
            acknowledged - last_acknowledged,
            counters.requests.load(Ordering::Relaxed),
            s.status_2xx,
            s.status_4xx,
            s.status_429,
            s.status_5xx,
            s.transport_errors,
        );
        last_acknowledged = acknowledged;
    }
}

/// What an edge-case phase expected and what it got.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Phase name.
    pub name: String,
    /// What was sent.
    pub sent: String,
    /// What a correct server answers.
    pub expected: String,
    /// What this server answered.
    pub got: String,
    /// Whether the answer was the expected one (the lake is checked separately).
    pub ok: bool,
    /// Timestamps of the phase's first and last event (RFC 3339), to look them up in
    /// the lake: `WHERE service = '<service>' AND timestamp BETWEEN first AND last`.
    pub events: Option<[String; 2]>,
}

/// The first and last timestamp of a range of events, for [`PhaseReport::events`].
fn span(space: &EventSpace, seqs: &Range<u64>) -> Option<[String; 2]> {
    (seqs.end > seqs.start).then(|| {
        [seqs.start, seqs.end - 1].map(|seq| telltale_core::event::rfc3339(space.timestamp_us(seq)))
    })
}

/// One batch just under the body limit (expect 2xx, all accepted), one just over it
/// (expect 413, nothing stored).
pub async fn huge(run: &Run, client: &reqwest::Client, max_body_bytes: usize) -> Vec<PhaseReport> {
    let mut reports = Vec::new();
    for over in [false, true] {
        let (seqs, body) = run.space.batch_near(max_body_bytes, over);
        let (lines, bytes) = (seqs.end - seqs.start, body.len());
        let events = span(&run.space, &seqs);
        let answer = post_edge(client, &run.target, body.into()).await;
        let fate = answer.fate(lines);
        // An oversized batch the server could not have accepted: a reset while it was
        // still being sent means refused, unless the server said otherwise.
        let fate = if over && fate == Fate::Ambiguous && answer.status.is_none() {
            Fate::Refused
        } else {
            fate
        };
        run.ledger.record(seqs, fate);
        let (expected, ok) = if over {
            (
                "413, nothing stored".to_owned(),
                answer.status == Some(StatusCode::PAYLOAD_TOO_LARGE),
            )
        } else {
            (format!("2xx, {lines} accepted"), fate == Fate::Acknowledged)
        };
        reports.push(PhaseReport {
            name: if over {
                "huge (over limit)"
            } else {
                "huge (under limit)"
            }
            .to_owned(),
            sent: format!("{lines} lines, {bytes} bytes (limit {max_body_bytes})"),
            expected,
            got: answer.describe(),
            ok,
            events,
        });
    }
    reports
}

/// An empty body: 2xx with nothing accepted, or 400, and nothing stored either way.
pub async fn empty(run: &Run, client: &reqwest::Client) -> PhaseReport {
    let answer = post_edge(client, &run.target, bytes::Bytes::new()).await;
    let ok = match answer.status {
        Some(s) if s.is_success() => answer.accepted == Some(0) && answer.rejected == Some(0),
        Some(s) => s == StatusCode::BAD_REQUEST,
        None => false,
    };
    PhaseReport {
        name: "empty".to_owned(),
        sent: "0 bytes".to_owned(),
        expected: "2xx with 0 accepted, or 400".to_owned(),
        got: answer.describe(),
        ok,
        events: None,
    }
}

/// Good lines mixed with bad ones. Returns the report and the bad lines that must turn up
/// in the dead letter (none when the server refused the whole batch).
pub async fn malformed(run: &Run, client: &reqwest::Client) -> (PhaseReport, Vec<String>) {
    const GOOD: u64 = 5;
    let seqs = run.space.allocate(GOOD + 3);
    let good: Vec<u64> = seqs.clone().take(GOOD as usize).collect();
    let [truncated, missing, bad_status] = [seqs.end - 3, seqs.end - 2, seqs.end - 1];
    let bad_lines = vec![
        run.space.line_truncated(truncated),
        run.space.line_missing_field(missing),
        run.space.line_bad_status(bad_status),
    ];
    let good_lines: Vec<String> = good.iter().map(|&s| run.space.line(s)).collect();
    // Bad lines between good ones, so a parser that stops at the first error shows.
    let order = [
        &good_lines[0],
        &bad_lines[0],
        &good_lines[1],
        &bad_lines[1],
        &good_lines[2],
        &bad_lines[2],
        &good_lines[3],
        &good_lines[4],
    ];
    let mut body = Vec::new();
    for line in order {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    let answer = post_edge(client, &run.target, body.into()).await;
    let ok = answer.status == Some(StatusCode::OK)
        && answer.accepted == Some(GOOD)
        && answer.rejected == Some(3);
    let good_fate = match answer.status {
        Some(s) if s.is_success() && answer.accepted == Some(GOOD) => Fate::Acknowledged,
        Some(s) if s.is_success() => Fate::Ambiguous,
        Some(_) => Fate::Refused,
        None => Fate::Ambiguous,
    };
    run.ledger.record(seqs.start..seqs.start + GOOD, good_fate);
    run.ledger
        .record(seqs.end - 3..seqs.end, Fate::RejectedLine);
    // Only a server that took the batch in has dead letters to show.
    let expect_dead_letters = answer.status.is_some_and(|s| s.is_success());
    let report = PhaseReport {
        name: "malformed".to_owned(),
        sent: "5 good lines, 1 cut-off JSON, 1 missing latency_ms, 1 status 700".to_owned(),
        expected: "200 (5 accepted, 3 rejected); bad lines in the dead letter".to_owned(),
        got: answer.describe(),
        ok,
        events: span(&run.space, &seqs),
    };
    (
        report,
        if expect_dead_letters {
            bad_lines
        } else {
            Vec::new()
        },
    )
}

/// A hand-written request whose body trickles in, in `chunks` pieces spread over
/// `spread`. Expect 2xx and every event stored.
pub async fn slow_client(run: &Run, spread: Duration) -> PhaseReport {
    const LINES: u64 = 50;
    const CHUNKS: u32 = 10;
    let seqs = run.space.allocate(LINES);
    let body = run.space.batch(seqs.clone());
    let sent = format!(
        "{LINES} lines, {} bytes in {CHUNKS} chunks over {}",
        body.len(),
        humantime::format_duration(spread)
    );
    let result = async {
        let mut stream = TcpStream::connect(run.target.addr).await?;
        stream
            .write_all(run.target.raw_head(body.len()).as_bytes())
            .await?;
        let chunk = body.len().div_ceil(CHUNKS as usize);
        for (i, piece) in body.chunks(chunk).enumerate() {
            if i > 0 {
                tokio::time::sleep(spread / CHUNKS).await;
            }
            stream.write_all(piece).await?;
            stream.flush().await?;
        }
        read_raw_answer(&mut stream).await
    };
    let answer = tokio::time::timeout(spread + REQUEST_TIMEOUT, result).await;
    let (got, fate) = match answer {
        Ok(Ok(raw)) => {
            let fate = match (raw.status, raw.accepted) {
                (Some(s), Some(a)) if (200..300).contains(&s) && a == LINES => Fate::Acknowledged,
                (Some(s), _) if (200..300).contains(&s) => Fate::Ambiguous,
                (Some(_), _) => Fate::Refused,
                (None, _) => Fate::Ambiguous,
            };
            (raw.describe(), fate)
        }
        Ok(Err(e)) => (format!("transport error: {e}"), Fate::Ambiguous),
        Err(_) => ("no answer in time".to_owned(), Fate::Ambiguous),
    };
    let events = span(&run.space, &seqs);
    run.ledger.record(seqs, fate);
    PhaseReport {
        name: "slow client".to_owned(),
        sent,
        expected: format!("2xx, {LINES} accepted"),
        got,
        ok: fate == Fate::Acknowledged,
        events,
    }
}

/// Headers announcing the whole body, half of it, then the connection closed. Nothing
/// of it may be stored; the server may answer an error or nothing.
pub async fn drop_mid_body(run: &Run) -> PhaseReport {
    const LINES: u64 = 200;
    let seqs = run.space.allocate(LINES);
    let body = run.space.batch(seqs.clone());
    let half = body.len() / 2;
    let sent = format!(
        "Content-Length {} with {half} bytes ({LINES} lines announced), then closed",
        body.len()
    );
    let result = async {
        let mut stream = TcpStream::connect(run.target.addr).await?;
        stream
            .write_all(run.target.raw_head(body.len()).as_bytes())
            .await?;
        stream.write_all(&body[..half]).await?;
        stream.flush().await?;
        // Closing our side is what a client that died mid-body looks like to the server.
        stream.shutdown().await?;
        read_raw_answer(&mut stream).await
    };
    let (got, ok) = match tokio::time::timeout(Duration::from_secs(10), result).await {
        Ok(Ok(raw)) => match raw.status {
            Some(s) if (200..300).contains(&s) => (raw.describe(), false),
            Some(_) => (raw.describe(), true),
            None => ("no answer, connection closed".to_owned(), true),
        },
        Ok(Err(e)) => (format!("connection closed ({e})"), true),
        Err(_) => ("no answer within 10s".to_owned(), true),
    };
    // Sent in part only: whatever the server did, none of it may be stored.
    let events = span(&run.space, &seqs);
    run.ledger.record(seqs, Fate::Refused);
    PhaseReport {
        name: "drop mid-body".to_owned(),
        sent,
        expected: "no 2xx (an error or no answer), nothing stored".to_owned(),
        got,
        ok,
        events,
    }
}

/// The parts of a hand-read HTTP/1.1 answer the phases look at.
#[derive(Debug)]
struct RawAnswer {
    status: Option<u16>,
    accepted: Option<u64>,
    rejected: Option<u64>,
}

impl RawAnswer {
    fn describe(&self) -> String {
        match (self.status, self.accepted, self.rejected) {
            (Some(s), Some(a), Some(r)) => format!("{s} ({a} accepted, {r} rejected)"),
            (Some(s), _, _) => s.to_string(),
            (None, _, _) => "no answer".to_owned(),
        }
    }
}

/// Reads an answer to its end (we sent `Connection: close`).
async fn read_raw_answer(stream: &mut TcpStream) -> std::io::Result<RawAnswer> {
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    let parsed: Option<IngestBody> = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body.trim()).ok());
    Ok(RawAnswer {
        status,
        accepted: parsed.as_ref().map(|p| p.accepted),
        rejected: parsed.as_ref().map(|p| p.rejected),
    })
}
