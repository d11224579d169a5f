//! Per-service rollups over fixed event-time windows: count, errors, slow, latency
//! avg/p50/p95/p99/max.
//!
//! Windows are keyed by event time, not arrival time. A window is emitted once the
//! watermark (the newest event time seen, minus the allowed lateness) passes its end;
//! until then late events still update it. An event whose window was already emitted is
//! counted as too late for the rollup (it is still written to the events lake, so SQL over
//! `events` sees it).
//!
//! Percentiles come from an HDR histogram of microseconds with 2 significant digits
//! (relative error below 1%); avg and max are exact.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::event::FlaggedEvent;

/// Highest latency the histogram resolves (24 h in µs); larger values count as this.
const HIST_MAX_US: u64 = 86_400_000_000;

/// One service's aggregate over one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollupRow {
    /// Service name.
    pub service: String,
    /// Owning team.
    pub team: String,
    /// Window start, µs since the epoch (UTC), aligned to the window width.
    pub window_start_us: i64,
    /// Window width in seconds.
    pub window_seconds: i64,
    /// Events in the window.
    pub count: u64,
    /// Events flagged `is_error`.
    pub errors: u64,
    /// Events flagged `is_slow`.
    pub slow: u64,
    /// Mean latency, ms.
    pub latency_avg_ms: f64,
    /// Median latency, ms (HDR, <1% error).
    pub latency_p50_ms: f64,
    /// 95th percentile latency, ms.
    pub latency_p95_ms: f64,
    /// 99th percentile latency, ms.
    pub latency_p99_ms: f64,
    /// Largest latency, ms (exact).
    pub latency_max_ms: f64,
}

impl RollupRow {
    /// A row with counts only (latency fields 0): what the SLO engine needs, e.g. the
    /// per-minute history read back from the lake at start-up.
    pub fn counts_only(
        service: impl Into<String>,
        team: impl Into<String>,
        window_start_us: i64,
        window_seconds: i64,
        [count, errors, slow]: [u64; 3],
    ) -> Self {
        Self {
            service: service.into(),
            team: team.into(),
            window_start_us,
            window_seconds,
            count,
            errors,
            slow,
            latency_avg_ms: 0.0,
            latency_p50_ms: 0.0,
            latency_p95_ms: 0.0,
            latency_p99_ms: 0.0,
            latency_max_ms: 0.0,
        }
    }

    /// Fraction of events that were errors.
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors, self.count)
    }

    /// Fraction of events that were slow.
    pub fn slow_rate(&self) -> f64 {
        ratio(self.slow, self.count)
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// Running aggregate of one window.
#[derive(Debug, Clone)]
pub struct WindowAgg {
    team: Arc<str>,
    count: u64,
    errors: u64,
    slow: u64,
    /// Events without a latency (NaN: a probe's lost echo); in the counts, not the
    /// latency statistics.
    unmeasured: u64,
    latency_sum_ms: f64,
    latency_max_ms: f64,
    hist: Histogram<u32>,
}

impl WindowAgg {
    fn new(team: Arc<str>) -> Self {
        Self {
            team,
            count: 0,
            errors: 0,
            slow: 0,
            unmeasured: 0,
            latency_sum_ms: 0.0,
            latency_max_ms: 0.0,
            // Bounds are constants that hdrhistogram accepts; a failure is a programming error.
            hist: Histogram::new_with_bounds(1, HIST_MAX_US, 2).expect("valid histogram bounds"),
        }
    }

    fn record(&mut self, ms: f64, is_error: bool, is_slow: bool) {
        self.count += 1;
        self.errors += u64::from(is_error);
        self.slow += u64::from(is_slow);
        if ms.is_nan() {
            self.unmeasured += 1;
            return;
        }
        self.latency_sum_ms += ms;
        self.latency_max_ms = self.latency_max_ms.max(ms);
        let us = (ms * 1000.0).round().clamp(0.0, HIST_MAX_US as f64) as u64;
        self.hist.saturating_record(us);
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        let v = self.hist.value_at_quantile(q) as f64 / 1000.0;
        // The histogram reports a bucket's upper edge; never above the exact max.
        v.min(self.latency_max_ms)
    }

    fn into_row(self, service: &str, window_start_us: i64, window_us: i64) -> RollupRow {
        RollupRow {
            service: service.to_owned(),
            team: self.team.to_string(),
            window_start_us,
            window_seconds: window_us / 1_000_000,
            count: self.count,
            errors: self.errors,
            slow: self.slow,
            latency_avg_ms: match self.count - self.unmeasured {
                0 => 0.0,
                measured => self.latency_sum_ms / measured as f64,
            },
            latency_p50_ms: self.quantile_ms(0.50),
            latency_p95_ms: self.quantile_ms(0.95),
            latency_p99_ms: self.quantile_ms(0.99),
            latency_max_ms: self.latency_max_ms,
        }
    }
}

/// A window's running aggregate, exactly, for a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSnapshot {
    /// Service name.
    pub service: String,
    /// Window start, µs since the epoch.
    pub start_us: i64,
    /// Owning team.
    pub team: String,
    /// Events counted.
    pub count: u64,
    /// Error events.
    pub errors: u64,
    /// Slow events.
    pub slow: u64,
    /// Events without a latency (absent in checkpoints written before it existed: 0).
    #[serde(default)]
    pub unmeasured: u64,
    /// Sum of latencies, ms.
    pub latency_sum_ms: f64,
    /// Largest latency, ms.
    pub latency_max_ms: f64,
    /// Histogram buckets as (a value in the bucket, count): re-recording them gives the
    /// same buckets, hence the same percentiles.
    pub buckets: Vec<(u64, u32)>,
}

/// The whole state of [`Rollups`], exactly: restoring it and recording the same events
/// gives the same rows as never having stopped. Used by the processor's checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupsSnapshot {
    /// Window width, µs (a restore checks it matches the configuration).
    pub window_us: i64,
    /// Newest event time seen (`i64::MIN`: none).
    pub max_event_us: i64,
    /// Every window ending at or before this has been emitted.
    pub emitted_upto_us: i64,
    /// Events not counted because their window was already emitted.
    pub too_late: u64,
    /// Open windows, sorted by service then start.
    pub windows: Vec<WindowSnapshot>,
}

/// A snapshot taken with another window width than the running configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the checkpoint's rollup windows are {snapshot_us} µs wide but rollup.window is {configured_us} µs; \
     restore the old rollup.window until the write-ahead log is replayed, or delete the checkpoint"
)]
pub struct SnapshotMismatch {
    /// Width in the snapshot.
    pub snapshot_us: i64,
    /// Width configured now.
    pub configured_us: i64,
}

/// What happened to an event offered to [`Rollups::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Counted in its window.
    Counted,
    /// Its window was already emitted; not counted.
    TooLate,
}

/// Open windows of every service.
#[derive(Debug)]
pub struct Rollups {
    window_us: i64,
    lateness_us: i64,
    open: HashMap<String, BTreeMap<i64, WindowAgg>>,
    /// Newest event time seen.
    max_event_us: i64,
    /// Every window ending at or before this has been emitted.
    emitted_upto_us: i64,
    too_late: u64,
}

impl Rollups {
    /// Windows of `window` width (whole seconds, at least 1 s); events up to
    /// `allowed_lateness` behind the newest one still count.
    pub fn new(window: Duration, allowed_lateness: Duration) -> Self {
        Self {
            window_us: (window.as_secs().max(1) * 1_000_000) as i64,
            lateness_us: allowed_lateness.as_micros() as i64,
            open: HashMap::new(),
            max_event_us: i64::MIN,
            emitted_upto_us: i64::MIN,
            too_late: 0,
        }
    }

    /// Start of the window holding `timestamp_us`.
    pub fn window_start(&self, timestamp_us: i64) -> i64 {
        timestamp_us - timestamp_us.rem_euclid(self.window_us)
    }

    /// Window width in µs.
    pub fn window_us(&self) -> i64 {
        self.window_us
    }

    /// Adds an event to its window.
    pub fn record(&mut self, ev: &FlaggedEvent) -> Recorded {
        let e = &ev.event;
        self.record_parts(
            &e.service,
            &ev.team,
            e.timestamp_us,
            e.latency_ms,
            ev.is_error,
            ev.is_slow,
        )
    }

    /// [`Rollups::record`] from the columns of an event (the columnar path).
    pub fn record_parts(
        &mut self,
        service: &str,
        team: &Arc<str>,
        timestamp_us: i64,
        latency_ms: f64,
        is_error: bool,
        is_slow: bool,
    ) -> Recorded {
        let event = [(timestamp_us, latency_ms, is_error, is_slow)];
        match self.record_service_events(service, team, event) {
            0 => Recorded::Counted,
            _ => Recorded::TooLate,
        }
    }

    /// [`Rollups::record_parts`] for many events of one service, as (timestamp µs,
    /// latency ms, is_error, is_slow): the columnar path records a whole chunk with one
    /// service look-up. A NaN latency is an event without one (a lost probe echo): it
    /// counts, and is left out of the latency statistics. Returns how many were too late.
    pub fn record_service_events(
        &mut self,
        service: &str,
        team: &Arc<str>,
        events: impl IntoIterator<Item = (i64, f64, bool, bool)>,
    ) -> u64 {
        let (window_us, emitted_upto_us) = (self.window_us, self.emitted_upto_us);
        let windows = match self.open.get_mut(service) {
            Some(w) => w,
            None => self.open.entry(service.to_owned()).or_default(),
        };
        let (mut too_late, mut max_event_us) = (0, self.max_event_us);
        for (timestamp_us, latency_ms, is_error, is_slow) in events {
            let start = timestamp_us - timestamp_us.rem_euclid(window_us);
            if start + window_us <= emitted_upto_us {
                too_late += 1;
                continue;
            }
            max_event_us = max_event_us.max(timestamp_us);
            windows
                .entry(start)
                .or_insert_with(|| WindowAgg::new(Arc::clone(team)))
                .record(latency_ms, is_error, is_slow);
        }
        if windows.is_empty() {
            // Every event was too late: leave no empty entry behind.
            self.open.remove(service);
        }
        self.max_event_us = max_event_us;
        self.too_late += too_late;
        too_late
    }

    /// Event time before which windows are complete: newest event minus lateness.
    pub fn watermark(&self) -> i64 {
        self.max_event_us.saturating_sub(self.lateness_us)
    }

    /// Newest event time seen, if any.
    pub fn max_event_us(&self) -> Option<i64> {
        (self.max_event_us != i64::MIN).then_some(self.max_event_us)
    }

    /// Emits the windows the watermark has passed.
    pub fn drain_closed(&mut self) -> Vec<RollupRow> {
        self.drain_until(self.watermark())
    }

    /// Emits every window ending at or before `upto_us` (e.g. when input has gone idle).
    pub fn drain_until(&mut self, upto_us: i64) -> Vec<RollupRow> {
        let mut rows = Vec::new();
        let w = self.window_us;
        for (service, windows) in &mut self.open {
            // Windows ending at or before `upto_us` start at or before `upto_us - w`.
            let keep = windows.split_off(&(upto_us.saturating_sub(w).saturating_add(1)));
            for (start, agg) in std::mem::replace(windows, keep) {
                rows.push(agg.into_row(service, start, w));
            }
        }
        self.open.retain(|_, w| !w.is_empty());
        // Saturating: before the first event the watermark is i64::MIN, and a plain
        // subtraction overflowed (a panic in debug builds, a wrap in release builds that
        // then marked every later event as too late).
        self.emitted_upto_us = self
            .emitted_upto_us
            .max(upto_us.saturating_sub(upto_us.rem_euclid(w)));
        rows.sort_by(|a, b| (a.window_start_us, &a.service).cmp(&(b.window_start_us, &b.service)));
        rows
    }

    /// Emits every open window (end of input, shutdown).
    pub fn drain_all(&mut self) -> Vec<RollupRow> {
        let Some(max) = self.max_event_us() else {
            return Vec::new();
        };
        self.drain_until(self.window_start(max) + self.window_us)
    }

    /// Events not counted because their window was already emitted.
    pub fn too_late(&self) -> u64 {
        self.too_late
    }

    /// Windows currently open.
    pub fn open_windows(&self) -> usize {
        self.open.values().map(BTreeMap::len).sum()
    }

    /// The exact state, for a checkpoint.
    pub fn snapshot(&self) -> RollupsSnapshot {
        let mut windows: Vec<WindowSnapshot> = self
            .open
            .iter()
            .flat_map(|(service, ws)| {
                ws.iter().map(move |(start, agg)| WindowSnapshot {
                    service: service.clone(),
                    start_us: *start,
                    team: agg.team.to_string(),
                    count: agg.count,
                    errors: agg.errors,
                    slow: agg.slow,
                    unmeasured: agg.unmeasured,
                    latency_sum_ms: agg.latency_sum_ms,
                    latency_max_ms: agg.latency_max_ms,
                    buckets: agg
                        .hist
                        .iter_recorded()
                        .map(|v| (v.value_iterated_to(), v.count_at_value()))
                        .collect(),
                })
            })
            .collect();
        windows.sort_by(|a, b| (&a.service, a.start_us).cmp(&(&b.service, b.start_us)));
        RollupsSnapshot {
            window_us: self.window_us,
            max_event_us: self.max_event_us,
            emitted_upto_us: self.emitted_upto_us,
            too_late: self.too_late,
            windows,
        }
    }

    /// Replaces the state with a snapshot taken by [`Rollups::snapshot`].
    pub fn restore(&mut self, snap: &RollupsSnapshot) -> Result<(), SnapshotMismatch> {
        if snap.window_us != self.window_us {
            return Err(SnapshotMismatch {
                snapshot_us: snap.window_us,
                configured_us: self.window_us,
            });
        }
        self.open.clear();
        for w in &snap.windows {
            let mut agg = WindowAgg::new(Arc::from(w.team.as_str()));
            agg.count = w.count;
            agg.errors = w.errors;
            agg.slow = w.slow;
            agg.unmeasured = w.unmeasured;
            agg.latency_sum_ms = w.latency_sum_ms;
            agg.latency_max_ms = w.latency_max_ms;
            for &(value, count) in &w.buckets {
                agg.hist.saturating_record_n(value, count);
            }
            self.open
                .entry(w.service.clone())
                .or_default()
                .insert(w.start_us, agg);
        }
        self.max_event_us = snap.max_event_us;
        self.emitted_upto_us = snap.emitted_upto_us;
        self.too_late = snap.too_late;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_snapshot_emits_the_same_rows_as_never_stopping() {
        let events: Vec<FlaggedEvent> = (0..500)
            .map(|i| {
                ev(
                    if i % 3 == 0 { "a" } else { "b" },
                    i as f64 * 0.07,
                    1.0 + (i * 37 % 1000) as f64 / 7.0,
                    i % 11 == 0,
                )
            })
            .collect();
        let (head, tail) = events.split_at(260);
        let mut straight = Rollups::new(Duration::from_secs(10), Duration::from_secs(5));
        let mut first = Rollups::new(Duration::from_secs(10), Duration::from_secs(5));
        let mut rows_straight = Vec::new();
        let mut rows_split = Vec::new();
        for e in head {
            straight.record(e);
            first.record(e);
        }
        rows_straight.extend(straight.drain_closed());
        rows_split.extend(first.drain_closed());
        let snap = first.snapshot();
        let json = serde_json::to_string(&snap).unwrap();
        let mut second = Rollups::new(Duration::from_secs(10), Duration::from_secs(5));
        second
            .restore(&serde_json::from_str(&json).unwrap())
            .unwrap();
        assert_eq!(second.snapshot(), snap);
        for e in tail {
            straight.record(e);
            second.record(e);
        }
        rows_straight.extend(straight.drain_all());
        rows_split.extend(second.drain_all());
        assert_eq!(rows_split, rows_straight);
        let mut other = Rollups::new(Duration::from_secs(60), Duration::from_secs(5));
        assert!(other.restore(&snap).is_err());
    }
    use crate::event::ServiceEvent;
    use proptest::prelude::*;

    const S: i64 = 1_000_000;

    /// Lost probe echoes (NaN latency) count as events and errors but do not pull the
    /// latency statistics towards 0, and survive a checkpoint.
    #[test]
    fn events_without_a_latency_count_but_leave_the_latency_statistics_alone() {
        let team: Arc<str> = Arc::from("network");
        let mut r = Rollups::new(Duration::from_secs(60), Duration::ZERO);
        let echoes = [
            (0, 10.0, false, false),
            (0, 30.0, false, false),
            (0, f64::NAN, true, true),
        ];
        assert_eq!(r.record_service_events("db.example.com", &team, echoes), 0);
        let mut restored = Rollups::new(Duration::from_secs(60), Duration::ZERO);
        restored.restore(&r.snapshot()).unwrap();
        for rows in [r.drain_all(), restored.drain_all()] {
            let row = &rows[0];
            assert_eq!((row.count, row.errors, row.slow), (3, 1, 1));
            assert_eq!(row.latency_avg_ms, 20.0);
            assert_eq!(row.latency_max_ms, 30.0);
            assert!(row.latency_p50_ms >= 10.0, "{row:?}");
        }
    }

    fn ev(service: &str, ts_s: f64, latency: f64, is_error: bool) -> FlaggedEvent {
        FlaggedEvent {
            event: ServiceEvent {
                service: service.into(),
                timestamp_us: (ts_s * S as f64) as i64,
                status_code: if is_error { 500 } else { 200 },
                latency_ms: latency,
                error: None,
                endpoint: None,
                method: None,
                region: None,
                instance: None,
                trace_id: None,
                attributes: None,
            },
            team: Arc::from("t"),
            is_error,
            is_slow: latency > 100.0,
        }
    }

    fn rollups() -> Rollups {
        Rollups::new(Duration::from_secs(10), Duration::from_secs(5))
    }

    #[test]
    fn windows_close_when_the_watermark_passes_their_end() {
        let mut r = rollups();
        r.record(&ev("a", 1.0, 10.0, false));
        r.record(&ev("a", 9.0, 200.0, true));
        r.record(&ev("b", 3.0, 5.0, false));
        assert!(r.drain_closed().is_empty(), "watermark 4s < window end 10s");
        r.record(&ev("a", 14.9, 1.0, false)); // watermark 9.9s
        assert!(r.drain_closed().is_empty());
        r.record(&ev("a", 15.0, 1.0, false)); // watermark 10s: [0,10) closes
        let rows = r.drain_closed();
        assert_eq!(rows.len(), 2);
        let a = &rows[0];
        assert_eq!(
            (
                a.service.as_str(),
                a.window_start_us,
                a.count,
                a.errors,
                a.slow
            ),
            ("a", 0, 2, 1, 1)
        );
        assert_eq!(a.latency_avg_ms, 105.0);
        assert_eq!(a.latency_max_ms, 200.0);
        assert_eq!(rows[1].service, "b");
        assert_eq!(r.open_windows(), 1);
    }

    #[test]
    fn late_event_within_lateness_updates_its_window() {
        let mut r = rollups();
        r.record(&ev("a", 12.0, 1.0, false));
        assert_eq!(
            r.record(&ev("a", 8.0, 1.0, false)),
            Recorded::Counted,
            "4s late, lateness 5s"
        );
        r.record(&ev("a", 30.0, 1.0, false));
        let rows = r.drain_closed();
        assert_eq!(
            rows.iter()
                .map(|r| (r.window_start_us / S, r.count))
                .collect::<Vec<_>>(),
            vec![(0, 1), (10, 1)]
        );
        assert_eq!(r.record(&ev("a", 9.0, 1.0, false)), Recorded::TooLate);
        assert_eq!(r.too_late(), 1);
    }

    #[test]
    fn drain_all_emits_everything_in_order() {
        let mut r = rollups();
        for t in [25.0, 5.0, 15.0] {
            r.record(&ev("z", t, 1.0, false));
            r.record(&ev("a", t, 1.0, false));
        }
        let rows = r.drain_all();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.window_start_us / S, r.service.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "a"),
                (0, "z"),
                (10, "a"),
                (10, "z"),
                (20, "a"),
                (20, "z")
            ]
        );
        assert_eq!(r.open_windows(), 0);
    }

    #[test]
    fn draining_before_the_first_event_is_harmless() {
        let mut r = rollups();
        assert!(r.drain_closed().is_empty());
        assert_eq!(r.record(&ev("a", 1.0, 1.0, false)), Recorded::Counted);
    }

    #[test]
    fn negative_timestamps_align_down() {
        let r = rollups();
        assert_eq!(r.window_start(-1), -10 * S);
        assert_eq!(r.window_start(0), 0);
        assert_eq!(r.window_start(10 * S - 1), 0);
    }

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        // Nearest rank, as HDR histograms define it.
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    proptest! {
        #[test]
        fn percentiles_are_within_one_percent_of_exact(
            latencies in proptest::collection::vec(0.05f64..60_000.0, 1..2_000)
        ) {
            let mut r = rollups();
            for l in &latencies {
                r.record(&ev("a", 1.0, *l, false));
            }
            let row = r.drain_all().pop().unwrap();
            let mut sorted = latencies.clone();
            sorted.sort_by(f64::total_cmp);
            for (q, got) in [(0.5, row.latency_p50_ms), (0.95, row.latency_p95_ms), (0.99, row.latency_p99_ms)] {
                let want = exact_quantile(&sorted, q);
                // Histogram values are whole microseconds: allow 1 µs of rounding too.
                prop_assert!((got - want).abs() <= want * 0.01 + 0.001, "q={q} got={got} want={want}");
            }
            prop_assert_eq!(row.latency_max_ms, *sorted.last().unwrap());
            prop_assert_eq!(row.count, latencies.len() as u64);
        }

        #[test]
        fn every_counted_event_is_in_exactly_one_emitted_row(
            times in proptest::collection::vec(0u32..600, 1..300),
            drain_every in 1usize..50,
        ) {
            let mut r = rollups();
            let mut counted = 0u64;
            let mut emitted = 0u64;
            for (i, t) in times.iter().enumerate() {
                if r.record(&ev("a", f64::from(*t), 1.0, false)) == Recorded::Counted {
                    counted += 1;
                }
                if i % drain_every == 0 {
                    emitted += r.drain_closed().iter().map(|row| row.count).sum::<u64>();
                }
            }
            emitted += r.drain_all().iter().map(|row| row.count).sum::<u64>();
            prop_assert_eq!(emitted, counted);
            prop_assert_eq!(counted + r.too_late(), times.len() as u64);
        }

        /// Recording a chunk at once is recording its events one by one: same rows, same
        /// late counts, whatever the order, lateness and services.
        #[test]
        fn recording_a_chunk_equals_recording_each_event(
            chunks in proptest::collection::vec(
                (0usize..3, proptest::collection::vec((0u32..900, 0.0f64..900.0, any::<bool>(), any::<bool>()), 0..40)),
                1..20,
            ),
        ) {
            let team: Arc<str> = Arc::from("t");
            let (mut one, mut many) = (rollups(), rollups());
            let (mut rows_one, mut rows_many) = (Vec::new(), Vec::new());
            for (service, events) in &chunks {
                let service = ["a", "b", "c"][*service];
                let events: Vec<_> = events
                    .iter()
                    .map(|&(t, l, e, s)| (i64::from(t) * S / 10, l, e, s))
                    .collect();
                let mut late_one = 0;
                for &(ts, l, e, s) in &events {
                    late_one += u64::from(one.record_parts(service, &team, ts, l, e, s) == Recorded::TooLate);
                }
                let late_many = many.record_service_events(service, &team, events.iter().copied());
                prop_assert_eq!(late_one, late_many);
                rows_one.extend(one.drain_closed());
                rows_many.extend(many.drain_closed());
                prop_assert_eq!(one.max_event_us(), many.max_event_us());
            }
            rows_one.extend(one.drain_all());
            rows_many.extend(many.drain_all());
            prop_assert_eq!(rows_one, rows_many);
            prop_assert_eq!(one.too_late(), many.too_late());
        }
    }
}
