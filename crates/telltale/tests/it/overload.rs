//! Overload: a real `telltale process` whose in-flight budget is taken refuses with 429 +
//! `Retry-After` before reading the body, and recovers; under a blast from 24 clients its
//! memory stays under the ceiling its config sets. (Exactly-once storage is `crash.rs` and
//! `telltale loadtest`; the speed it sustains is in `bench/`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::http;
use crate::support::start_processor;

const EVENTS_PER_BATCH: u64 = 2_000;
/// Request bodies in flight, all requests together (`server.max_inflight_bytes`).
const INFLIGHT_BYTES: u64 = 8 * 1024 * 1024;
/// Peak RSS allowed: the body budget plus the queues, the lake buffers (`flush_rows`), and
/// the process itself (a debug build with DataFusion linked in).
const RSS_CEILING_BYTES: u64 = 400 * 1024 * 1024;

/// POSTs a body; the status and whether a `Retry-After` header came with it.
fn post(addr: SocketAddr, body: &[u8]) -> Option<(u16, bool)> {
    // The server may answer 429 before reading the body and close; that is fine.
    let out = http::exchange(addr, "POST", "/v1/events", body, Duration::from_secs(30))?;
    let out = out.response();
    let status = out.status?;
    let retry_after = out
        .raw
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("retry-after:"));
    Some((status, retry_after))
}

fn body(lane: u64, n: u64, base_us: i64) -> Vec<u8> {
    let mut b = String::new();
    for i in 0..EVENTS_PER_BATCH {
        let ts = base_us + ((lane << 32) + n * EVENTS_PER_BATCH + i) as i64 % 500_000_000;
        let t = chrono::DateTime::from_timestamp_micros(ts).unwrap();
        b.push_str(&format!(
            "{{\"service\":\"overload\",\"timestamp\":\"{}\",\"status_code\":200,\"latency_ms\":3.5}}\n",
            t.format("%Y-%m-%dT%H:%M:%S%.6fZ")
        ));
    }
    b.into_bytes()
}

fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// Sends from `lanes` closed loops for `for_`; returns (requests, accepted events, 429s,
/// 429s without Retry-After).
fn offer(addr: SocketAddr, lanes: u64, for_: Duration, base_us: i64) -> (u64, u64, u64, u64) {
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let deadline = Instant::now() + for_;
    let threads: Vec<_> = (0..lanes)
        .map(|lane| {
            let counts = Arc::clone(&counts);
            std::thread::spawn(move || {
                let mut n = 0;
                let payload = body(lane, 0, base_us);
                while Instant::now() < deadline {
                    let r = post(addr, &payload);
                    counts[0].fetch_add(1, Ordering::Relaxed);
                    match r {
                        Some((200, _)) => {
                            counts[1].fetch_add(EVENTS_PER_BATCH, Ordering::Relaxed);
                        }
                        Some((429, retry)) => {
                            counts[2].fetch_add(1, Ordering::Relaxed);
                            if !retry {
                                counts[3].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        other => panic!("unexpected answer {other:?}"),
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = |i: usize| counts[i].load(Ordering::Relaxed);
    (c(0), c(1), c(2), c(3))
}

/// A request that holds its share of the in-flight budget: its head declares `len`
/// bytes, and the body never comes.
fn stalled(addr: SocketAddr, len: u64) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    s
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("telltale.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nmax_body_bytes = 1048576\nmax_inflight_bytes = {INFLIGHT_BYTES}\nqueue_batches = 4\n\
             [lake]\nflush_rows = 50000\nflush_age = \"1s\"\n[autoscale]\nmax_workers = 2\n"
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_full_in_flight_budget_refuses_with_429_before_reading_and_recovers() {
    // Deterministic: eight requests that each declare 1 MiB and send nothing hold the whole
    // 8 MiB budget, whatever the machine's speed.
    let dir = tempfile::tempdir().unwrap();
    let processor = start_processor(&dir.path().join("data"), &config(dir.path()));
    let addr = processor.addr;
    let holders: Vec<_> = (0..INFLIGHT_BYTES / 1_048_576)
        .map(|_| stalled(addr, 1_048_576))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while crate::support::metric(addr, "telltale_http_inflight_bytes") < INFLIGHT_BYTES as f64 {
        assert!(
            Instant::now() < deadline,
            "the stalled requests never held the budget"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let payload = body(0, 0, chrono::Utc::now().timestamp_micros() - 60_000_000);
    let refused = http::exchange(
        addr,
        "POST",
        "/v1/events",
        &payload,
        Duration::from_secs(30),
    )
    .expect("an answer")
    .response();
    assert_eq!(refused.status, Some(429), "{}", refused.raw);
    assert!(
        refused.raw.to_ascii_lowercase().contains("retry-after: 1"),
        "{}",
        refused.raw
    );
    assert!(
        refused.raw.contains("overloaded (memory)"),
        "{}",
        refused.raw
    );
    // The budget comes back when the holders go away; the same batch is then accepted.
    drop(holders);
    while crate::support::metric(addr, "telltale_http_inflight_bytes") > 0.0 {
        assert!(Instant::now() < deadline, "the budget was never given back");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(post(addr, &payload), Some((200, false)));
    processor.sigterm_and_expect_success();
}

#[test]
fn a_blast_from_24_clients_keeps_memory_under_the_ceiling() {
    // No claim on how much is refused (that depends on the machine's speed); the ceiling
    // holds whatever it is, and every answer is an ack or a 429 with Retry-After.
    let dir = tempfile::tempdir().unwrap();
    let processor = start_processor(&dir.path().join("data"), &config(dir.path()));
    let addr = processor.addr;
    let base_us = chrono::Utc::now().timestamp_micros() - 900_000_000;
    let blast = Duration::from_secs(4);
    let (requests, accepted, refused, no_retry_after) = offer(addr, 24, blast, base_us);
    let peak = peak_rss_bytes(processor.pid());
    processor.sigterm_and_expect_success();
    eprintln!(
        "overload: {requests} requests from 24 clients in {blast:?}, {refused} refused with 429, \
         {accepted} events accepted; peak RSS {} MiB (ceiling {} MiB)",
        peak >> 20,
        RSS_CEILING_BYTES >> 20
    );
    assert_eq!(no_retry_after, 0, "a 429 came without Retry-After");
    assert!(accepted > 0, "nothing was accepted under overload");
    assert!(
        peak < RSS_CEILING_BYTES,
        "peak RSS {} MiB over the ceiling",
        peak >> 20
    );
}
