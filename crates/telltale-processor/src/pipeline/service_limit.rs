//! `limits.max_services`: the writer tracks at most this many services (the catalogue's
//! always), so that rollups, the SLO engine, lake partitions, InfluxDB series and the
//! status page stay bounded whatever service names arrive (typos, per-customer names, an
//! attack). The events of a service past the limit are not merged into anything: they go
//! to the dead letter whole, with reason `service_limit`, and are counted.
//!
//! Decided on the writer thread, in log order (a batch's services in the order of their
//! first event), and the tracked set is saved with each checkpoint, so a replay after a
//! crash decides exactly as the first run did.
//!
//! The parsing threads see a [`TrackedView`], the tracked set as the writer last
//! published it, and build columns only for services that are in it, catalogued, or
//! within the room it leaves; the events of further new names in a batch stay lines until
//! the writer decides (`prepare`). So a batch of 100,000 new names builds at most
//! `max_services` column chunks, not 100,000. The view only grows while a pipeline runs,
//! so a name in it is still tracked when the writer reaches the batch: the view changes
//! how a batch is carried, never what is decided.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use telltale_core::ServiceCatalog;
use telltale_core::parse::{Limits, RejectReason, Rejection};
use telltale_lake::chunk::EventChunk;
use telltale_lake::deadletter::DeadLetter;

use super::prepare::{FirstSeen, PendingService, chunk_lines};
use super::tracked::{NameSet, SharedView, TrackedView};

/// What [`ServiceLimit::sort_batch`] set aside.
#[derive(Debug, Default)]
pub(super) struct SetAside {
    /// The refused events, one dead letter each (reason `service_limit`).
    pub(super) dead: Vec<DeadLetter>,
    /// How many events that is.
    pub(super) events: u64,
    /// The first refused service, for the log.
    pub(super) first: Option<Arc<str>>,
    /// Held-back lines of admitted services that did not parse again (never expected:
    /// each parsed the first time), as dead letters with the parser's reason.
    pub(super) unparsed: Vec<DeadLetter>,
}

/// The services tracked so far, up to the limit.
#[derive(Debug)]
pub(super) struct ServiceLimit {
    max: usize,
    catalog: Arc<ServiceCatalog>,
    limits: Limits,
    tracked: NameSet,
    view: SharedView,
    changed: bool,
}

impl ServiceLimit {
    pub(super) fn new(max: usize, catalog: Arc<ServiceCatalog>, limits: Limits) -> Self {
        let view = Arc::new(RwLock::new(Arc::new(TrackedView {
            names: NameSet::default(),
            max,
        })));
        Self {
            max,
            catalog,
            limits,
            tracked: NameSet::default(),
            view,
            changed: false,
        }
    }

    /// Whether `service` is tracked, admitting it if it is catalogued or there is room.
    pub(super) fn admit(&mut self, service: &Arc<str>) -> bool {
        if self.tracked.contains(service) {
            return true;
        }
        if self.catalog.get(service).is_some() || self.tracked.len() < self.max {
            self.tracked.insert(Arc::clone(service));
            self.changed = true;
            return true;
        }
        false
    }

    /// Decides a batch: admits its services in order of first event, keeps the chunks
    /// of those tracked, turns the held-back lines of admitted services into chunks, and
    /// sets aside the events of refused ones: a held-back line as received, a chunk's rows
    /// as parsed (canonical JSON, `service` first).
    pub(super) fn sort_batch(
        &mut self,
        events: &mut Vec<EventChunk>,
        pending: Vec<PendingService>,
        first_seen: Vec<FirstSeen>,
        received_at_us: i64,
        source: &str,
    ) -> SetAside {
        let mut out = SetAside::default();
        let letter = |limit: &Self, raw: Vec<u8>, line: u64| DeadLetter {
            received_at_us,
            source: source.to_owned(),
            rejection: Rejection {
                line,
                field: Some("service"),
                reason: RejectReason::ServiceLimit,
                message: format!(
                    "service limit reached: {} services are tracked (limits.max_services = \
                     {}); this valid event is kept here instead of the lake, rollups and \
                     SLOs. Raise limits.max_services or list the service in services.toml",
                    limit.tracked(),
                    limit.max
                ),
            },
            raw,
        };
        // Chunked services are normally all admitted (they were in the view, catalogued,
        // or within its room); without held-back lines, the chunks' order is the order
        // of first events.
        let mut refused_chunks: HashSet<Arc<str>, foldhash::fast::RandomState> = HashSet::default();
        if first_seen.is_empty() {
            for chunk in events.iter() {
                if !self.admit(&chunk.service) {
                    refused_chunks.insert(Arc::clone(&chunk.service));
                }
            }
        } else {
            let mut pending: Vec<Option<PendingService>> = pending.into_iter().map(Some).collect();
            for seen in first_seen {
                match seen {
                    FirstSeen::Chunked(name) => {
                        if !self.admit(&name) {
                            refused_chunks.insert(name);
                        }
                    }
                    FirstSeen::Pending(i) => {
                        let Some(p) = pending.get_mut(i).and_then(Option::take) else {
                            continue;
                        };
                        if self.admit(&p.service) {
                            let (chunks, failed) = chunk_lines(
                                p.lines,
                                received_at_us,
                                source,
                                &self.catalog,
                                &self.limits,
                            );
                            events.extend(chunks);
                            out.unparsed.extend(failed);
                            continue;
                        }
                        out.events += p.lines.len() as u64;
                        out.first.get_or_insert_with(|| Arc::clone(&p.service));
                        for (line, raw) in p.lines {
                            out.dead.push(letter(self, raw, line));
                        }
                    }
                }
            }
        }
        if !refused_chunks.is_empty() {
            events.retain(|chunk| {
                if !refused_chunks.contains(&chunk.service) {
                    return true;
                }
                out.events += chunk.len() as u64;
                out.first.get_or_insert_with(|| Arc::clone(&chunk.service));
                // Building JSON from a chunk that was just built cannot fail but on a
                // bug; then the rows are still counted.
                for raw in chunk.json_lines().unwrap_or_default() {
                    out.dead.push(letter(self, raw, 0));
                }
                false
            });
        }
        out
    }

    /// The view as last published.
    pub(super) fn view(&self) -> Arc<TrackedView> {
        Arc::clone(&self.view.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The handle the parsing threads read the view from.
    pub(super) fn shared_view(&self) -> SharedView {
        Arc::clone(&self.view)
    }

    /// Publishes the tracked set to the parsing threads if it changed since the last time.
    pub(super) fn publish(&mut self) {
        if !self.changed {
            return;
        }
        self.changed = false;
        let view = Arc::new(TrackedView {
            names: self.tracked.clone(),
            max: self.max,
        });
        // A poisoned lock means a reader panicked holding it; the view is a plain value,
        // so replacing it is still right.
        let mut slot = self.view.write().unwrap_or_else(|e| e.into_inner());
        *slot = view;
    }

    /// Services tracked now.
    pub(super) fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// The limit.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// The tracked set, sorted, for a checkpoint.
    pub(super) fn snapshot(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tracked.iter().map(|s| s.to_string()).collect();
        names.sort_unstable();
        names
    }

    /// The tracked set of a checkpoint (all of it, even past a lowered limit: what was
    /// admitted stays admitted).
    pub(super) fn restore(&mut self, names: &[String]) {
        self.tracked = names.iter().map(|n| Arc::from(n.as_str())).collect();
        self.changed = true;
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_always_the_catalogue() {
        let catalog =
            Arc::new(ServiceCatalog::from_toml_str("[services.known]\n", "services.toml").unwrap());
        let mut limit = ServiceLimit::new(2, catalog, Limits::default());
        let name = |s: &str| Arc::<str>::from(s);
        assert!(limit.admit(&name("a")));
        assert!(limit.admit(&name("b")));
        assert!(!limit.admit(&name("c")), "past the limit");
        assert!(limit.admit(&name("a")), "a tracked service stays tracked");
        assert!(limit.admit(&name("known")), "catalogued services always");
        assert_eq!(limit.tracked(), 3);
        let mut again = ServiceLimit::new(
            2,
            Arc::new(ServiceCatalog::from_toml_str("", "s").unwrap()),
            Limits::default(),
        );
        again.restore(&limit.snapshot());
        assert!(again.admit(&name("known")) && again.admit(&name("b")));
        assert!(
            !again.admit(&name("c")),
            "the restored set decides as before"
        );
    }

    #[test]
    fn the_view_shows_what_was_published() {
        let catalog = Arc::new(ServiceCatalog::from_toml_str("", "services.toml").unwrap());
        let mut limit = ServiceLimit::new(3, catalog, Limits::default());
        let view = limit.shared_view();
        let read = || Arc::clone(&view.read().unwrap());
        assert_eq!(read().room(), 3);
        assert!(limit.admit(&Arc::from("a")));
        assert!(!read().contains("a"), "not published yet");
        limit.publish();
        assert!(read().contains("a") && !read().contains("b"));
        assert_eq!(read().room(), 2);
    }

    /// One event per name, in order, as one logged batch.
    fn batch_of(names: &[String]) -> crate::wal::LoggedBatch {
        const NOW: i64 = 1_750_000_000_000_000;
        let data: String = names
            .iter()
            .map(|n| {
                format!(
                    "{{\"service\":\"{n}\",\"timestamp\":\"2025-06-15T15:06:40Z\",\
                     \"status_code\":200,\"latency_ms\":1}}\n"
                )
            })
            .collect();
        crate::wal::LoggedBatch {
            received_at_us: NOW,
            source: "http".into(),
            first_line: 1,
            oversize: Vec::new(),
            rejected: Vec::new(),
            data: data.into(),
        }
    }

    /// What a batch came to: rows kept per service, refused rows per service, and the
    /// tracked set afterwards.
    type Decided = (Vec<(String, usize)>, Vec<(String, usize)>, Vec<String>);

    fn decide(limit: &mut ServiceLimit, view: &TrackedView, names: &[String]) -> Decided {
        let catalog = Arc::clone(&limit.catalog);
        let batch = batch_of(names);
        let (parsed, outcome) =
            super::super::prepare::parse_batch(&batch, &catalog, &Limits::default(), view, None);
        assert_eq!(outcome.rejected, 0, "{:?}", outcome.errors);
        let mut events = parsed.events;
        let aside = limit.sort_batch(
            &mut events,
            parsed.pending,
            parsed.first_seen,
            batch.received_at_us,
            "http",
        );
        assert!(aside.unparsed.is_empty(), "{:?}", aside.unparsed);
        let mut kept: Vec<(String, usize)> = events
            .iter()
            .map(|c| (c.service.to_string(), c.len()))
            .collect();
        kept.sort();
        let mut refused = std::collections::BTreeMap::<String, usize>::new();
        for d in &aside.dead {
            let v: serde_json::Value = serde_json::from_slice(&d.raw).unwrap();
            *refused
                .entry(v["service"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        assert_eq!(aside.events as usize, aside.dead.len());
        (kept, refused.into_iter().collect(), limit.snapshot())
    }

    proptest::proptest! {
        /// The view the parsing threads saw (up to date, stale, or none at all) changes
        /// how a batch is carried, never what is admitted or refused.
        #[test]
        fn the_view_never_changes_a_decision(
            names in proptest::collection::vec(0..7usize, 1..40),
            max in 0..5usize,
            prior in proptest::collection::vec(0..7usize, 0..4),
            stale in proptest::collection::vec(proptest::bool::ANY, 4),
        ) {
            let name = |i: usize| if i == 6 { "known".to_owned() } else { format!("s{i}") };
            let names: Vec<String> = names.into_iter().map(name).collect();
            let catalog =
                Arc::new(ServiceCatalog::from_toml_str("[services.known]\n", "services.toml").unwrap());
            let prior: Vec<String> = prior.into_iter().map(name).collect();
            let fresh = || {
                let mut limit = ServiceLimit::new(max, Arc::clone(&catalog), Limits::default());
                limit.restore(&prior);
                limit
            };
            // No gate at all: a view with unbounded room.
            let open = TrackedView { names: NameSet::default(), max: usize::MAX };
            let want = decide(&mut fresh(), &open, &names);
            // The writer's own view, up to date.
            let mut limit = fresh();
            let current = limit.view();
            proptest::prop_assert_eq!(&decide(&mut limit, &current, &names), &want);
            // A stale view: only some of the tracked names published yet.
            let mut limit = fresh();
            let partial = TrackedView {
                names: prior
                    .iter()
                    .zip(stale.iter().cycle())
                    .filter(|(_, keep)| **keep)
                    .map(|(n, _)| Arc::from(n.as_str()))
                    .collect(),
                max,
            };
            proptest::prop_assert_eq!(&decide(&mut limit, &partial, &names), &want);
        }
    }

    /// A batch of many new names builds columns for at most the view's room of them
    /// (plus catalogued services); the rest stay lines until the writer decides.
    #[test]
    fn new_names_past_the_room_are_not_built_into_columns() {
        let catalog =
            Arc::new(ServiceCatalog::from_toml_str("[services.known]\n", "services.toml").unwrap());
        let mut limit = ServiceLimit::new(3, Arc::clone(&catalog), Limits::default());
        let names: Vec<String> = (0..1000)
            .map(|i| {
                if i == 500 {
                    "known".into()
                } else {
                    format!("n{i}")
                }
            })
            .collect();
        let view = limit.view();
        let (parsed, _) = super::super::prepare::parse_batch(
            &batch_of(&names),
            &catalog,
            &Limits::default(),
            &view,
            None,
        );
        assert_eq!(parsed.events.len(), 4, "n0, n1, n2 and known");
        assert_eq!(parsed.pending.len(), 996);
        assert_eq!(parsed.event_count, 1000);
        let mut events = parsed.events;
        let aside = limit.sort_batch(&mut events, parsed.pending, parsed.first_seen, 0, "http");
        assert_eq!(events.len(), 4);
        assert_eq!(aside.events, 996);
        assert_eq!(aside.first.as_deref(), Some("n3"));
        // Refused held-back events are kept as they were received.
        assert_eq!(
            aside.dead[0].raw,
            batch_of(&names[3..4]).data.trim_ascii_end()
        );
    }
}
