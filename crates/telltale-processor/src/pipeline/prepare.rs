//! The CPU half of ingest: a logged batch parsed, validated and flagged into columnar
//! chunks, probes, URL check results and dead letters. Runs on the callers' threads, many at once; nothing
//! here touches shared state but the metrics (and reads the tracked-services view).

use std::collections::HashMap;
use std::sync::Arc;

use telltale_core::check_sli::check_event;
use telltale_core::flag::Flags;
use telltale_core::parse::{
    Limits, ParsedLine, RejectReason, Rejection, ServiceLine, lines, parse_line_borrowed,
};
use telltale_core::probe_sli::{SliEvent, echo_events};
use telltale_core::{HttpCheckEvent, ProbeEvent, Record, ServiceCatalog};
use telltale_lake::chunk::{EventChunk, EventChunks, EventRow};
use telltale_lake::deadletter::DeadLetter;

use super::tracked::TrackedView;
use crate::batch::{BatchOutcome, MAX_REPORTED_ERRORS};
use crate::metrics::Metrics;
use crate::wal::LoggedBatch;

/// The valid events of a service that was new to the tracked-services view when the view
/// had no room left for it in this batch: kept as lines (not columns) until the writer
/// decides, in log order, whether the service is tracked (see `service_limit`).
#[derive(Debug)]
pub(super) struct PendingService {
    /// The service.
    pub(super) service: Arc<str>,
    /// Its lines: (line number, the line as received).
    pub(super) lines: Vec<(u64, Vec<u8>)>,
}

/// A service of the batch, at its first event: the order the writer admits them in.
#[derive(Debug)]
pub(super) enum FirstSeen {
    /// Its events are in the batch's chunks.
    Chunked(Arc<str>),
    /// Its events are [`ParsedBatch::pending`]`[i]`.
    Pending(usize),
}

/// One probe's echoes as the events of its target's SLOs
/// ([`telltale_core::probe_sli`]), recorded in the rollups under the target's name; or a
/// URL monitor's check results as the events of its SLOs
/// ([`telltale_core::check_sli`]), under its URL.
#[derive(Debug)]
pub(super) struct ProbeSli {
    pub(super) target: String,
    pub(super) team: Arc<str>,
    pub(super) events: Vec<SliEvent>,
    /// The latency threshold the events were flagged with, ms.
    pub(super) threshold_ms: f64,
}

/// The URL check results of a batch.
#[derive(Debug, Default)]
pub(super) struct CheckBatch {
    /// The results, in line order.
    pub(super) results: Vec<HttpCheckEvent>,
    /// Their SLI events, one entry per monitor URL of the batch (every monitor has SLOs:
    /// `[monitors."<url>"]` or `[monitor_defaults]`).
    pub(super) slis: Vec<ProbeSli>,
}

impl ParsedBatch {
    /// Number of check results.
    pub(super) fn check_count(&self) -> usize {
        self.checks.as_ref().map_or(0, |c| c.results.len())
    }
}

/// A batch after parsing: what the writer applies.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    /// Service events, columnar, one chunk per partition.
    pub(super) events: Vec<EventChunk>,
    /// Events of services the writer has yet to admit or refuse (empty unless the
    /// tracked-services view ran out of room in this batch).
    pub(super) pending: Vec<PendingService>,
    /// The batch's services in order of first event, when `pending` is not empty.
    pub(super) first_seen: Vec<FirstSeen>,
    /// Number of events in `events` and `pending`.
    pub(super) event_count: usize,
    /// Probe measurements.
    pub(super) probes: Vec<ProbeEvent>,
    /// The SLI events of the probes whose target has SLOs (`[probes.NAME]`).
    pub(super) probe_slis: Vec<ProbeSli>,
    /// URL check results (`"kind":"http"`), boxed: most batches have none, and every
    /// batch crosses two channels.
    pub(super) checks: Option<Box<CheckBatch>>,
    /// Rejected lines with their reasons.
    pub(super) dead: Vec<DeadLetter>,
    /// When the batch arrived (dates what the writer sets aside), µs since the epoch.
    pub(super) received_at_us: i64,
    /// Where the batch came from.
    pub(super) source: String,
}

impl ParsedBatch {
    pub(super) fn is_empty(&self) -> bool {
        self.event_count == 0
            && self.probes.is_empty()
            && self.checks.is_none()
            && self.dead.is_empty()
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
    tracked: &TrackedView,
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
    for r in &batch.rejected {
        reject(r.rejection.clone(), r.raw.clone(), &mut outcome);
    }
    let mut events = EventChunks::new();
    let mut probes = Vec::new();
    let mut checks = Vec::new();
    let mut unknown = 0;
    let mut gate = Gate::new(tracked, &batch.data);
    for (n, raw) in lines(&batch.data) {
        let line_no = batch.first_line + n - 1;
        match parse_line_borrowed(raw, line_no, now_us, limits) {
            // The common case: straight from the line's bytes into Arrow builders.
            Ok(ParsedLine::Service(ev)) => {
                let f = catalog.flags(&ev.service, ev.status_code, ev.latency_ms, ev.error);
                unknown += u64::from(!f.known);
                if gate.holds_back(&ev.service, f.known, line_no, raw) {
                    continue;
                }
                events.push(&service_row(&ev, &f));
            }
            Ok(ParsedLine::Record(record)) => match *record {
                Record::Service(ev) => {
                    let (flagged, known) = catalog.flag(ev);
                    unknown += u64::from(!known);
                    if gate.holds_back(&flagged.event.service, known, line_no, raw) {
                        continue;
                    }
                    events.push(&EventRow::from(&flagged));
                }
                Record::Probe(p) => probes.push(p),
                Record::HttpCheck(c) => checks.push(c),
            },
            Err(rejection) => reject(rejection, raw.to_vec(), &mut outcome),
        }
    }
    if unknown > 0
        && let Some(m) = metrics
    {
        m.unknown_service_events.inc_by(unknown);
    }
    parsed.probe_slis = probes
        .iter()
        .filter_map(|p| {
            let policy = catalog.probe(&p.target)?;
            Some(ProbeSli {
                target: p.target.clone(),
                team: Arc::clone(&policy.team),
                events: echo_events(p, policy.latency_threshold_ms),
                threshold_ms: policy.latency_threshold_ms,
            })
        })
        .collect();
    if !checks.is_empty() {
        parsed.checks = Some(Box::new(CheckBatch {
            slis: check_slis(&checks, catalog),
            results: checks,
        }));
    }
    parsed.event_count = events.len() + gate.held_back;
    // Building a chunk only fails on a schema mismatch, a programming error.
    parsed.events = events
        .finish()
        .expect("event chunks match the events schema");
    if !gate.pending.is_empty() {
        parsed.pending = gate.pending;
        parsed.first_seen = gate.first_seen;
    }
    parsed.probes = probes;
    outcome.errors.sort_by_key(|r| r.line);
    outcome.accepted = (parsed.event_count + parsed.probes.len() + parsed.check_count()) as u64;
    (parsed, outcome)
}

/// The SLI events of a batch's check results, grouped by monitor URL in order of first
/// result, with each monitor's policy.
fn check_slis(checks: &[HttpCheckEvent], catalog: &ServiceCatalog) -> Vec<ProbeSli> {
    let mut out: Vec<ProbeSli> = Vec::new();
    for c in checks {
        let i = match out.iter().position(|s| s.target == c.url) {
            Some(i) => i,
            None => {
                let policy = catalog.monitor(&c.url);
                out.push(ProbeSli {
                    target: c.url.clone(),
                    team: Arc::clone(&policy.team),
                    events: Vec::new(),
                    threshold_ms: policy.latency_threshold_ms,
                });
                out.len() - 1
            }
        };
        let sli = &mut out[i];
        sli.events.push(check_event(c, sli.threshold_ms));
    }
    out
}

/// Which services of a batch get columns now (see `service_limit`): those in the view,
/// catalogued ones, and as many new names as the view has room for; the rest become
/// [`PendingService`]s. Inactive (no look-ups) when the batch has fewer lines than the
/// view has room, which is every batch unless the limit is nearly reached.
struct Gate<'a> {
    view: &'a TrackedView,
    active: bool,
    /// New names given columns so far.
    admitted_new: usize,
    /// Service → `None` (chunked) or `Some(i)` (`pending[i]`).
    decided: HashMap<Arc<str>, Option<usize>, foldhash::fast::RandomState>,
    first_seen: Vec<FirstSeen>,
    pending: Vec<PendingService>,
    held_back: usize,
}

impl<'a> Gate<'a> {
    fn new(view: &'a TrackedView, data: &[u8]) -> Self {
        let lines = memchr::memchr_iter(b'\n', data).count() + 1;
        Self {
            view,
            active: lines > view.room(),
            admitted_new: 0,
            decided: HashMap::default(),
            first_seen: Vec::new(),
            pending: Vec::new(),
            held_back: 0,
        }
    }

    /// Whether the event (of `service`, catalogued if `known`) is held back as a line
    /// instead of going into the chunks; if so, it is kept in `pending`.
    fn holds_back(&mut self, service: &str, known: bool, line_no: u64, raw: &[u8]) -> bool {
        if !self.active {
            return false;
        }
        let slot = match self.decided.get(service) {
            Some(slot) => *slot,
            None => {
                let name: Arc<str> = Arc::from(service);
                let slot = if known || self.view.contains(service) {
                    None
                } else if self.admitted_new < self.view.room() {
                    self.admitted_new += 1;
                    None
                } else {
                    self.pending.push(PendingService {
                        service: Arc::clone(&name),
                        lines: Vec::new(),
                    });
                    Some(self.pending.len() - 1)
                };
                self.first_seen.push(match slot {
                    None => FirstSeen::Chunked(Arc::clone(&name)),
                    Some(i) => FirstSeen::Pending(i),
                });
                self.decided.insert(name, slot);
                slot
            }
        };
        let Some(i) = slot else {
            return false;
        };
        self.pending[i].lines.push((line_no, raw.to_vec()));
        self.held_back += 1;
        true
    }
}

/// The columns of lines held back by [`Gate`] whose service the writer then admitted:
/// parsed and flagged again, as the first time (they parsed then, with the same "now",
/// so they parse now). Should one not, it is a dead letter with the parser's reason,
/// never dropped.
pub(super) fn chunk_lines(
    lines: Vec<(u64, Vec<u8>)>,
    received_at_us: i64,
    source: &str,
    catalog: &ServiceCatalog,
    limits: &Limits,
) -> (Vec<EventChunk>, Vec<DeadLetter>) {
    let mut events = EventChunks::new();
    let mut dead = Vec::new();
    for (line_no, raw) in lines {
        match parse_line_borrowed(&raw, line_no, received_at_us, limits) {
            Ok(ParsedLine::Service(ev)) => {
                let f = catalog.flags(&ev.service, ev.status_code, ev.latency_ms, ev.error);
                events.push(&service_row(&ev, &f));
            }
            Ok(ParsedLine::Record(record)) => match *record {
                Record::Service(ev) => {
                    let (flagged, _) = catalog.flag(ev);
                    events.push(&EventRow::from(&flagged));
                }
                Record::Probe(_) | Record::HttpCheck(_) => dead.push(DeadLetter {
                    received_at_us,
                    source: source.to_owned(),
                    rejection: Rejection {
                        line: line_no,
                        field: None,
                        reason: RejectReason::UnknownKind,
                        message:
                            "a held-back service line parsed as a probe or check the second time"
                                .into(),
                    },
                    raw: raw.clone(),
                }),
            },
            Err(rejection) => dead.push(DeadLetter {
                received_at_us,
                source: source.to_owned(),
                rejection,
                raw: raw.clone(),
            }),
        }
    }
    let chunks = events
        .finish()
        .expect("event chunks match the events schema");
    (chunks, dead)
}

/// The row of a service line parsed in place, with its flags.
fn service_row<'a>(ev: &'a ServiceLine<'_>, f: &Flags<'a>) -> EventRow<'a> {
    EventRow {
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
        attributes: ev.attributes.as_deref(),
    }
}
