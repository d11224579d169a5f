//! The events a load test sends, and the ledger of what happened to each.
//!
//! The event schema has no id field, so a run makes its own: every run writes to its
//! own service (`loadtest-<run id>`) and every event gets a unique microsecond timestamp
//! `base_us + seq`. The other fields are a pure function of `seq`, so reading the lake
//! back tells exactly which events are missing, altered or present twice.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How far before "now" the first event is stamped: far enough that the run never
/// reaches the present (the processor rejects events from the future), near enough to
/// stay in today's partition most of the time.
const BASE_OFFSET_US: i64 = 10 * 60 * 1_000_000;

/// Status codes the events carry, picked by a hash of `seq`. No 5xx and no `error: true`,
/// and latencies under the default 300 ms threshold: the run's events are healthy, so a
/// load test never fires an SLO alert and pages someone.
const STATUS_CODES: [u16; 12] = [200, 200, 200, 200, 200, 200, 200, 201, 204, 304, 404, 409];

/// The fields of one event as the lake must hold them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    /// HTTP status of the simulated request.
    pub status_code: u16,
    /// Latency in ms, under 250; a multiple of 1/8, so its decimal text converts to f64
    /// exactly.
    pub latency_ms: f64,
    /// The optional `error` flag: absent for half of the events, `false` for the rest.
    pub error: Option<bool>,
}

/// The run's events: service name, time base and the next unused sequence number.
#[derive(Debug)]
pub struct EventSpace {
    /// The run's own service name, `loadtest-<8 hex digits>`.
    pub service: String,
    /// Timestamp of `seq` 0, µs since the epoch.
    pub base_us: i64,
    next_seq: AtomicU64,
    /// The events go as OTLP spans, which have no `"error": false`.
    otlp: bool,
}

impl EventSpace {
    /// A fresh space for a run with `run_id`, stamped relative to `now_us`; `otlp` when
    /// the events go as OTLP spans.
    pub fn new(run_id: &str, now_us: i64, otlp: bool) -> Self {
        Self {
            service: format!("loadtest-{run_id}"),
            base_us: now_us - BASE_OFFSET_US,
            next_seq: AtomicU64::new(0),
            otlp,
        }
    }

    /// The row the lake must hold for `seq`: [`expected`], with the error column null
    /// for OTLP spans (a span's status is an error or nothing).
    pub fn expected(&self, seq: u64) -> Expected {
        let e = expected(seq);
        if self.otlp {
            Expected { error: None, ..e }
        } else {
            e
        }
    }

    /// Reserves `n` sequence numbers no other batch will use.
    pub fn allocate(&self, n: u64) -> Range<u64> {
        let start = self.next_seq.fetch_add(n, Ordering::Relaxed);
        start..start + n
    }

    /// How many sequence numbers have been handed out.
    pub fn allocated(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }

    /// The timestamp, µs, that identifies `seq`.
    pub fn timestamp_us(&self, seq: u64) -> i64 {
        self.base_us + seq as i64
    }

    /// The `seq` a lake row's timestamp stands for, if it is one of ours.
    pub fn seq_of(&self, timestamp_us: i64) -> Option<u64> {
        let seq = u64::try_from(timestamp_us - self.base_us).ok()?;
        (seq < self.allocated()).then_some(seq)
    }

    /// One valid NDJSON line (no newline) for `seq`.
    pub fn line(&self, seq: u64) -> String {
        let e = expected(seq);
        let error = match e.error {
            None => String::new(),
            Some(b) => format!(",\"error\":{b}"),
        };
        format!(
            "{{\"service\":\"{}\",\"timestamp\":\"{}\",\"status_code\":{},\"latency_ms\":{}{error}}}",
            self.service,
            telltale_core::event::rfc3339(self.timestamp_us(seq)),
            e.status_code,
            e.latency_ms,
        )
    }

    /// A line for `seq` that is valid JSON but lacks the required `latency_ms`.
    pub fn line_missing_field(&self, seq: u64) -> String {
        format!(
            "{{\"service\":\"{}\",\"timestamp\":\"{}\",\"status_code\":200}}",
            self.service,
            telltale_core::event::rfc3339(self.timestamp_us(seq)),
        )
    }

    /// A line for `seq` with a status code no HTTP response has.
    pub fn line_bad_status(&self, seq: u64) -> String {
        format!(
            "{{\"service\":\"{}\",\"timestamp\":\"{}\",\"status_code\":700,\"latency_ms\":1.5}}",
            self.service,
            telltale_core::event::rfc3339(self.timestamp_us(seq)),
        )
    }

    /// A line for `seq` cut off in the middle: not JSON at all.
    pub fn line_truncated(&self, seq: u64) -> String {
        let full = self.line(seq);
        let cut = full.find("status_code").unwrap_or(full.len() / 2);
        full[..cut].to_owned()
    }

    /// The NDJSON body of a batch of valid lines.
    pub fn batch(&self, seqs: Range<u64>) -> Vec<u8> {
        let mut body = Vec::with_capacity((seqs.end - seqs.start) as usize * 128);
        for seq in seqs {
            body.extend_from_slice(self.line(seq).as_bytes());
            body.push(b'\n');
        }
        body
    }

    /// A batch of valid lines as large as possible without going over `max_bytes`
    /// (`over` = false), or the smallest one over it (`over` = true). Returns the
    /// sequence numbers sent; the rest of the reserved range is never sent.
    pub fn batch_near(&self, max_bytes: usize, over: bool) -> (Range<u64>, Vec<u8>) {
        // No line is shorter than the service name plus this much JSON, so this many
        // sequence numbers always suffice.
        let shortest_line = self.service.len() + 80;
        let reserved = self.allocate((max_bytes / shortest_line) as u64 + 2);
        let mut body = Vec::with_capacity(max_bytes + 256);
        let mut end = reserved.start;
        for seq in reserved.clone() {
            let line = self.line(seq);
            if !over && body.len() + line.len() + 1 > max_bytes {
                break;
            }
            body.extend_from_slice(line.as_bytes());
            body.push(b'\n');
            end = seq + 1;
            if over && body.len() > max_bytes {
                break;
            }
        }
        (reserved.start..end, body)
    }
}

/// The fields `seq` carries.
pub fn expected(seq: u64) -> Expected {
    let h = splitmix64(seq);
    Expected {
        status_code: STATUS_CODES[(h % STATUS_CODES.len() as u64) as usize],
        latency_ms: ((h >> 8) % 2_000) as f64 / 8.0,
        error: ((h >> 40) % 2 == 1).then_some(false),
    }
}

/// A small, well-mixing hash (Vigna's SplitMix64 finaliser).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the server's answer means for the events of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fate {
    /// Allocated but never sent (e.g. trimmed off a huge batch): must not be in the lake.
    Unsent = 0,
    /// 2xx and counted as accepted: must be in the lake exactly once.
    Acknowledged,
    /// Refused (4xx, 429, 5xx, connection refused, body cut off): must not be in the lake.
    Refused,
    /// A line the server rejected as invalid: in the dead letter, not in the lake.
    RejectedLine,
    /// No usable answer (timeout, reset after sending): may or may not be in the lake.
    Ambiguous,
}

/// What happened to every sequence number, recorded by the phases as they go.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: Mutex<Vec<(Range<u64>, Fate)>>,
}

impl Ledger {
    /// Records the fate of a range of events.
    pub fn record(&self, seqs: Range<u64>, fate: Fate) {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((seqs, fate));
    }

    /// The fate of each of the first `allocated` sequence numbers.
    pub fn fates(&self, allocated: u64) -> Vec<Fate> {
        let mut fates = vec![Fate::Unsent; allocated as usize];
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (seqs, fate) in entries.iter() {
            for seq in seqs.clone() {
                if let Some(slot) = fates.get_mut(seq as usize) {
                    *slot = *fate;
                }
            }
        }
        fates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telltale_core::parse::{Limits, parse_line};
    use telltale_core::{Record, event::MICROS_PER_SEC};

    #[test]
    fn lines_parse_back_to_the_expected_fields() {
        let now = 1_746_000_000 * MICROS_PER_SEC;
        let space = EventSpace::new("0123abcd", now, false);
        let seqs = space.allocate(500);
        for seq in seqs {
            let line = space.line(seq);
            let Ok(Record::Service(e)) = parse_line(line.as_bytes(), 1, now, &Limits::default())
            else {
                panic!("{line} should parse");
            };
            let want = expected(seq);
            assert_eq!(e.service, "loadtest-0123abcd");
            assert_eq!(space.seq_of(e.timestamp_us), Some(seq));
            assert_eq!(e.status_code, want.status_code);
            assert_eq!(e.latency_ms.to_bits(), want.latency_ms.to_bits(), "{line}");
            assert_eq!(e.error, want.error);
        }
        for bad in [
            space.line_truncated(3),
            space.line_missing_field(4),
            space.line_bad_status(5),
        ] {
            assert!(parse_line(bad.as_bytes(), 1, now, &Limits::default()).is_err());
        }
    }

    #[test]
    fn batches_near_a_limit_straddle_it() {
        let space = EventSpace::new("0123abcd", 1_746_000_000 * MICROS_PER_SEC, false);
        let (under, body) = space.batch_near(100_000, false);
        assert!(body.len() <= 100_000);
        assert!(body.len() > 100_000 - 200, "{}", body.len());
        assert_eq!(
            body.iter().filter(|&&b| b == b'\n').count() as u64,
            under.end - under.start
        );
        let (over, body) = space.batch_near(100_000, true);
        assert!(body.len() > 100_000);
        assert_eq!(
            body.iter().filter(|&&b| b == b'\n').count() as u64,
            over.end - over.start
        );
        assert!(over.start >= under.end);
    }
}
