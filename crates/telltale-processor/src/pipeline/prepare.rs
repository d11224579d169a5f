//! The CPU half of ingest: a logged batch parsed, validated and flagged into columnar
//! chunks, probes and dead letters. Runs on the callers' threads, many at once; nothing
//! here touches shared state but the metrics.

use telltale_core::parse::{
    Limits, ParsedLine, RejectReason, Rejection, lines, parse_line_borrowed,
};
use telltale_core::{ProbeEvent, Record, ServiceCatalog};
use telltale_lake::chunk::{EventChunk, EventChunks, EventRow};
use telltale_lake::deadletter::DeadLetter;

use crate::batch::{BatchOutcome, MAX_REPORTED_ERRORS};
use crate::metrics::Metrics;
use crate::wal::LoggedBatch;

/// A batch after parsing: what the writer applies.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    /// Service events, columnar, one chunk per partition.
    pub(super) events: Vec<EventChunk>,
    /// Number of events in `events`.
    pub(super) event_count: usize,
    /// Probe measurements.
    pub(super) probes: Vec<ProbeEvent>,
    /// Rejected lines with their reasons.
    pub(super) dead: Vec<DeadLetter>,
    /// When the batch arrived (dates what the writer sets aside), µs since the epoch.
    pub(super) received_at_us: i64,
    /// Where the batch came from.
    pub(super) source: String,
}

impl ParsedBatch {
    pub(super) fn is_empty(&self) -> bool {
        self.event_count == 0 && self.probes.is_empty() && self.dead.is_empty()
    }
}

/// A batch validated and flagged by [`Pipeline::prepare`], waiting to be
/// [submitted](Pipeline::submit).
#[derive(Debug)]
pub struct PreparedBatch {
    pub(super) logged: LoggedBatch,
    pub(super) parsed: ParsedBatch,
    pub(super) outcome: BatchOutcome,
}

/// Parses and flags a logged batch. Deterministic: validation's "now" is the arrival time
/// stored with the batch, so a replay gives exactly what the first run gave.
pub(super) fn parse_batch(
    batch: &LoggedBatch,
    catalog: &ServiceCatalog,
    limits: &Limits,
    metrics: Option<&Metrics>,
) -> (ParsedBatch, BatchOutcome) {
    let now_us = batch.received_at_us;
    let mut outcome = BatchOutcome::default();
    let mut parsed = ParsedBatch {
        received_at_us: now_us,
        source: batch.source.clone(),
        ..ParsedBatch::default()
    };
    let mut reject = |rejection: Rejection, raw: Vec<u8>, outcome: &mut BatchOutcome| {
        if let Some(m) = metrics {
            m.reject(rejection.reason);
        }
        outcome.rejected += 1;
        if outcome.errors.len() < MAX_REPORTED_ERRORS {
            outcome.errors.push(rejection.clone());
        }
        parsed.dead.push(DeadLetter {
            received_at_us: now_us,
            source: batch.source.clone(),
            rejection,
            raw,
        });
    };
    for o in &batch.oversize {
        let rejection = Rejection {
            line: o.line,
            field: None,
            reason: RejectReason::LineTooLong,
            message: format!(
                "line is {} bytes, over the limit of {} bytes",
                o.len, limits.max_line_bytes
            ),
        };
        reject(rejection, o.prefix.clone(), &mut outcome);
    }
    let mut events = EventChunks::new();
    let mut probes = Vec::new();
    let mut unknown = 0;
    for (n, raw) in lines(&batch.data) {
        let line_no = batch.first_line + n - 1;
        match parse_line_borrowed(raw, line_no, now_us, limits) {
            // The common case: straight from the line's bytes into Arrow builders.
            Ok(ParsedLine::Service(ev)) => {
                let f = catalog.flags(&ev.service, ev.status_code, ev.latency_ms, ev.error);
                unknown += u64::from(!f.known);
                events.push(&EventRow {
                    service: &ev.service,
                    team: f.team,
                    timestamp_us: ev.timestamp_us,
                    status_code: ev.status_code,
                    latency_ms: ev.latency_ms,
                    error: ev.error,
                    is_error: f.is_error,
                    is_slow: f.is_slow,
                    endpoint: ev.endpoint.as_deref(),
                    method: ev.method.as_deref(),
                    region: ev.region.as_deref(),
                    instance: ev.instance.as_deref(),
                    trace_id: ev.trace_id.as_deref(),
                    attributes: None,
                });
            }
            Ok(ParsedLine::Record(Record::Service(ev))) => {
                let (flagged, known) = catalog.flag(ev);
                unknown += u64::from(!known);
                events.push(&EventRow::from(&flagged));
            }
            Ok(ParsedLine::Record(Record::Probe(p))) => probes.push(p),
            Err(rejection) => reject(rejection, raw.to_vec(), &mut outcome),
        }
    }
    if unknown > 0
        && let Some(m) = metrics
    {
        m.unknown_service_events.inc_by(unknown);
    }
    parsed.event_count = events.len();
    // Building a chunk only fails on a schema mismatch, a programming error.
    parsed.events = events
        .finish()
        .expect("event chunks match the events schema");
    parsed.probes = probes;
    outcome.errors.sort_by_key(|r| r.line);
    outcome.accepted = (parsed.event_count + parsed.probes.len()) as u64;
    (parsed, outcome)
}
