//! Crash test of the write-ahead log: offer load to a real `telltale process`, `kill -9` it
//! at pseudo-random moments many times, restart it each time, then stop it with SIGTERM and
//! check from the lake that every acknowledged event is there exactly once and every
//! rejected line of an acknowledged batch is in the dead letter exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::http::{self, expect_healthy};
use crate::support::{query, start_processor};

/// kill -9 cycles; each offers load for 0.3–1.5 s before the kill.
const KILLS: u64 = 20;
const EVENTS_PER_BATCH: u64 = 40;
const SERVICE: &str = "crash-test";

/// What a POST of one batch came to, as the client sees it.
enum Posted {
    /// 200 with the ingest summary: acknowledged, durable.
    Acked,
    /// 429 or 503 with `Retry-After`: the documented overload answers; post it again.
    RetryLater,
    /// No whole answer: the connection failed or was cut by the kill, so the outcome is
    /// unknown to the client.
    Unknown,
}

/// POSTs batch `n`. Every complete answer that is not an acknowledgement or a documented
/// overload answer fails the test: a processor that refuses ingest after a restart must
/// not pass as "killed mid-request".
fn post(addr: SocketAddr, n: u64, body: &str) -> Posted {
    let Some(out) = http::exchange(
        addr,
        "POST",
        "/v1/events",
        body.as_bytes(),
        Duration::from_secs(20),
    )
    .and_then(http::Exchange::complete) else {
        return Posted::Unknown;
    };
    let header = |name: &str| {
        out.raw.lines().take_while(|l| !l.is_empty()).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    if out.status.is_none() {
        // Closed before a status line: killed before it answered.
        return Posted::Unknown;
    }
    let body_len = out.body.as_deref().map_or(0, str::len);
    if header("content-length").and_then(|v| v.parse::<usize>().ok()) > Some(body_len) {
        // The kill cut the answer after its head.
        return Posted::Unknown;
    }
    let retry_after = header("retry-after").is_some();
    match out.status {
        Some(200)
            if out
                .body
                .as_deref()
                .is_some_and(|b| b.contains("\"accepted\"")) =>
        {
            Posted::Acked
        }
        Some(429 | 503) if retry_after => Posted::RetryLater,
        _ => panic!(
            "batch {n}: answer that is neither an ack nor an overload answer: {}",
            out.raw
        ),
    }
}

/// Batch `n`: events with unique µs timestamps, plus one bad line that names the batch.
fn batch(n: u64, base_us: i64) -> String {
    let mut body = String::new();
    for i in 0..EVENTS_PER_BATCH {
        let seq = n * EVENTS_PER_BATCH + i;
        let ts = base_us + seq as i64;
        let secs = ts.div_euclid(1_000_000);
        let micros = ts.rem_euclid(1_000_000);
        let t = chrono::DateTime::from_timestamp(secs, (micros * 1000) as u32).unwrap();
        body.push_str(&format!(
            "{{\"service\":\"{SERVICE}\",\"timestamp\":\"{}\",\"status_code\":200,\"latency_ms\":{}.5}}\n",
            t.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            seq % 300
        ));
    }
    body.push_str(&format!("{{\"crash_batch\":{n}}}\n"));
    body
}

#[derive(Default)]
struct Ledger {
    acked: BTreeSet<u64>,
    unknown: BTreeSet<u64>,
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("telltale.toml");
    std::fs::write(
        &config,
        "[lake]\nflush_age = \"500ms\"\nflush_rows = 150\n[wal]\nsync = \"always\"\nsegment_bytes = 1048576\n",
    )
    .unwrap();
    let base_us = chrono::Utc::now().timestamp_micros() - 600_000_000;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut next_batch = 0u64;
    // A small LCG: the same kill moments every run, different ones within a run.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let (mut survived, mut replays) = (0, 0u64);
    for _ in 0..KILLS {
        let processor = start_processor(&data, &config);
        let addr = processor.addr;
        expect_healthy(addr);
        let replayed = crate::support::metric(addr, "telltale_wal_replayed_records_total");
        replays += u64::from(replayed > 0.0);
        let acked_before = ledger.lock().unwrap().acked.len();
        let stop = Arc::new(AtomicBool::new(false));
        let first = next_batch;
        let senders: Vec<_> = (0..2)
            .map(|lane| {
                let (stop, ledger) = (Arc::clone(&stop), Arc::clone(&ledger));
                std::thread::spawn(move || {
                    let mut n = first + lane;
                    while !stop.load(Ordering::Acquire) {
                        match post(addr, n, &batch(n, base_us)) {
                            Posted::Acked => {
                                ledger.lock().unwrap().acked.insert(n);
                                n += 2;
                            }
                            // The same batch again, as a client honouring Retry-After would
                            // (sooner: the test only needs it resent).
                            Posted::RetryLater => std::thread::sleep(Duration::from_millis(50)),
                            Posted::Unknown => {
                                // Killed mid-request: the outcome is unknown; stop this lane.
                                ledger.lock().unwrap().unknown.insert(n);
                                break;
                            }
                        }
                    }
                    n
                })
            })
            .collect();
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis(300 + (rng >> 33) % 1200));
        processor.kill_and_wait(); // SIGKILL
        stop.store(true, Ordering::Release);
        next_batch = senders
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
            + 2;
        let acked = ledger.lock().unwrap().acked.len() - acked_before;
        assert!(
            acked > 0,
            "cycle {survived}: no batch acknowledged before the kill"
        );
        survived += 1;
    }
    // The restarts found acknowledged records past the last checkpoint and replayed them.
    assert!(replays > 0, "no restart replayed the write-ahead log");
    // A last start replays, then SIGTERM drains, flushes and exits 0.
    let processor = start_processor(&data, &config);
    expect_healthy(processor.addr);
    processor.sigterm_and_expect_success();

    let ledger = ledger.lock().unwrap();
    let acked_events = ledger.acked.len() as u64 * EVENTS_PER_BATCH;
    assert!(acked_events > 0, "no batch was acknowledged");
    // Every stored event, by timestamp offset (= its sequence number).
    let csv = query(
        &data,
        "csv",
        &format!(
            "SELECT CAST(timestamp AS BIGINT) AS t, count(*) AS n FROM events \
             WHERE service = '{SERVICE}' GROUP BY 1"
        ),
    );
    let mut stored: BTreeMap<u64, u64> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let (t, n) = line.split_once(',').unwrap();
        let seq = (t.parse::<i64>().unwrap() - base_us) as u64;
        stored.insert(seq, n.parse().unwrap());
    }
    let duplicated: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "events stored twice: {duplicated:?}");
    let mut missing = Vec::new();
    for b in &ledger.acked {
        for i in 0..EVENTS_PER_BATCH {
            if !stored.contains_key(&(b * EVENTS_PER_BATCH + i)) {
                missing.push(b * EVENTS_PER_BATCH + i);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // Nothing stored that was never sent; batches whose answer was lost may be either.
    for seq in stored.keys() {
        let b = seq / EVENTS_PER_BATCH;
        assert!(
            ledger.acked.contains(&b) || ledger.unknown.contains(&b),
            "event {seq} of batch {b} stored but never acknowledged or in flight"
        );
    }
    // Dead letters: the bad line of every acknowledged batch, exactly once.
    let mut dead: BTreeMap<u64, u64> = BTreeMap::new();
    for entry in walk(&data.join("deadletter")) {
        for line in std::fs::read_to_string(entry).unwrap().lines() {
            if let Some(i) = line.find("crash_batch\\\":") {
                let digits: String = line[i + 14..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                *dead.entry(digits.parse().unwrap()).or_default() += 1;
            }
        }
    }
    for b in &ledger.acked {
        assert_eq!(dead.get(b), Some(&1), "dead letter of batch {b}");
    }
    assert!(dead.values().all(|n| *n == 1), "a dead letter twice");
    eprintln!(
        "crash test: {survived} kill -9 survived, {replays} restarts replayed the log; {} batches ({acked_events} events) acknowledged, \
         {} in flight at a kill, {} events stored, 0 missing, 0 duplicated",
        ledger.acked.len(),
        ledger.unknown.len(),
        stored.len()
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "ndjson") {
            out.push(p);
        }
    }
    out
}
