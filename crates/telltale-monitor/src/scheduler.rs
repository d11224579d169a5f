//! Monitors on their schedules: each monitor is a tokio task that ticks every period and
//! hands a check to a bounded pool, never more than one check of a monitor at a time.
//!
//! ```text
//! add(monitor) ─▶ monitor task: check now (or at its offset), then at offset + k·period
//!                   │ tick while the last check still runs: skipped, counted (missed)
//!                   ▼
//!                 check task ─ waits for a pool slot (Semaphore, max_concurrent) ─▶
//!                   Check::check(url) under the timeout ─▶ CheckResult (monitor_id,
//!                   every_s set) ─▶ the sink channel
//! ```
//!
//! The offset (jitter) is fixed per monitor, derived from the seed and its id: up to
//! `jitter` of the period, at most `max_jitter`, so hundreds of monitors of one frequency
//! spread over seconds instead of firing together, and a test with a given seed knows
//! when each check comes. All waiting is on tokio's clock: tests run it paused.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::{Instant, MissedTickBehavior};

use crate::check::Checker;
use crate::result::{CheckError, CheckResult};
use crate::spec::Monitor;

/// One check of a URL; [`Checker`] in production, a fake in tests.
pub trait Check: Send + Sync + 'static {
    /// Checks `url` once; never fails (a failure is a result).
    fn check<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>>;
}

impl Check for Checker {
    fn check<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>> {
        Box::pin(Checker::check(self, url))
    }
}

/// How the scheduler runs checks.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// A check still running after this is cut off with a `timeout` result.
    pub timeout: Duration,
    /// Checks running at the same time at most.
    pub max_concurrent: usize,
    /// A monitor's offset is up to this fraction of its period...
    pub jitter: f64,
    /// ...and at most this long.
    pub max_jitter: Duration,
    /// Seed of the offsets: the same seed and id give the same offset.
    pub seed: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_concurrent: 32,
            jitter: 0.1,
            max_jitter: Duration::from_secs(30),
            seed: 0,
        }
    }
}

/// When a newly scheduled monitor is first checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstCheck {
    /// At once (a monitor just added by a user).
    Now,
    /// At its offset (monitors loaded at start, so they do not all fire together).
    AtOffset,
}

/// What the scheduler did, read at each `/metrics` scrape.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    results: Mutex<BTreeMap<&'static str, u64>>,
    missed_ticks: AtomicU64,
    in_flight: AtomicI64,
    scheduled: AtomicI64,
}

impl SchedulerStats {
    /// Checks finished, by result: `up`, `down` (an answer outside 2xx/3xx) or the error
    /// class (`timeout`, `dns`, …).
    pub fn results(&self) -> BTreeMap<&'static str, u64> {
        self.results.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Ticks skipped because the monitor's previous check was still running.
    pub fn missed_ticks(&self) -> u64 {
        self.missed_ticks.load(Ordering::Relaxed)
    }

    /// Checks running now (holding a pool slot).
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Monitors scheduled now.
    pub fn scheduled(&self) -> i64 {
        self.scheduled.load(Ordering::Relaxed)
    }

    fn count(&self, result: &CheckResult) {
        let key = result_label(result);
        if let Ok(mut r) = self.results.lock() {
            *r.entry(key).or_default() += 1;
        }
    }
}

/// The `result` label of a check.
pub fn result_label(result: &CheckResult) -> &'static str {
    match result.error {
        _ if result.is_up() => "up",
        None => "down",
        Some(e) => e.as_str(),
    }
}

/// A scheduled monitor's tasks.
#[derive(Debug)]
struct Scheduled {
    ticker: JoinHandle<()>,
    check: Arc<Mutex<Option<AbortHandle>>>,
}

struct Inner {
    check: Arc<dyn Check>,
    settings: SchedulerSettings,
    pool: Arc<Semaphore>,
    sink: mpsc::Sender<CheckResult>,
    stats: Arc<SchedulerStats>,
    monitors: Mutex<HashMap<String, Scheduled>>,
}

/// The running schedule; cheap to clone. Its methods must be called inside a tokio
/// runtime. Dropping the last clone does not stop the tasks: call [`Scheduler::stop`].
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler that checks with `check` and sends every result to `sink`; `stats`
    /// is where it counts (shared with `/metrics`).
    pub fn new(
        check: Arc<dyn Check>,
        settings: SchedulerSettings,
        sink: mpsc::Sender<CheckResult>,
        stats: Arc<SchedulerStats>,
    ) -> Self {
        let pool = Arc::new(Semaphore::new(settings.max_concurrent.max(1)));
        Self {
            inner: Arc::new(Inner {
                check,
                settings,
                pool,
                sink,
                stats,
                monitors: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<SchedulerStats> {
        &self.inner.stats
    }

    /// The fixed offset of `monitor`'s checks from its period's start: below
    /// `min(jitter × period, max_jitter)`, the same for the same seed and id.
    pub fn offset(&self, monitor: &Monitor) -> Duration {
        let s = &self.inner.settings;
        let period = Duration::from_secs(monitor.every.seconds());
        let bound = period.mul_f64(s.jitter.clamp(0.0, 1.0)).min(s.max_jitter);
        let bound_ms = bound.as_millis() as u64;
        if bound_ms == 0 {
            return Duration::ZERO;
        }
        let mut h = s.seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in monitor.id.bytes() {
            h = splitmix(h ^ u64::from(b));
        }
        Duration::from_millis(splitmix(h) % bound_ms)
    }

    /// Schedules `monitor`; `false` (and nothing changes) when it is scheduled already.
    pub fn add(&self, monitor: &Monitor, first: FirstCheck) -> bool {
        let Ok(mut monitors) = self.inner.monitors.lock() else {
            return false;
        };
        if monitors.contains_key(&monitor.id) {
            return false;
        }
        let check = Arc::new(Mutex::new(None));
        let ticker = tokio::spawn(ticks(
            Arc::clone(&self.inner),
            monitor.clone(),
            first,
            self.offset(monitor),
            Arc::clone(&check),
        ));
        monitors.insert(monitor.id.clone(), Scheduled { ticker, check });
        self.inner.stats.scheduled.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(id = %monitor.id, url = %monitor.url, every = %monitor.every, "monitor scheduled");
        true
    }

    /// Stops checking the monitor `id` (a check in flight is cut off); `false` when it
    /// was not scheduled.
    pub fn remove(&self, id: &str) -> bool {
        let removed = self
            .inner
            .monitors
            .lock()
            .ok()
            .and_then(|mut m| m.remove(id));
        match removed {
            Some(s) => {
                abort(&s);
                self.inner.stats.scheduled.fetch_sub(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// How many monitors are scheduled.
    pub fn len(&self) -> usize {
        self.inner.monitors.lock().map_or(0, |m| m.len())
    }

    /// Whether no monitor is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every monitor (at shutdown).
    pub fn stop(&self) {
        let all: Vec<Scheduled> = self
            .inner
            .monitors
            .lock()
            .map(|mut m| m.drain().map(|(_, s)| s).collect())
            .unwrap_or_default();
        for s in &all {
            abort(s);
        }
        self.inner.stats.scheduled.store(0, Ordering::Relaxed);
    }
}

fn abort(s: &Scheduled) {
    s.ticker.abort();
    if let Some(check) = s.check.lock().ok().and_then(|mut c| c.take()) {
        check.abort();
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One monitor's ticks, until aborted.
async fn ticks(
    inner: Arc<Inner>,
    monitor: Monitor,
    first: FirstCheck,
    offset: Duration,
    slot: Arc<Mutex<Option<AbortHandle>>>,
) {
    let period = Duration::from_secs(monitor.every.seconds());
    let start = Instant::now();
    let running = Arc::new(AtomicBool::new(false));
    let monitor = Arc::new(monitor);
    let first_tick = match first {
        FirstCheck::Now => {
            running.store(true, Ordering::Release);
            spawn_check(&inner, &monitor, &running, &slot);
            start + offset + period
        }
        FirstCheck::AtOffset => start + offset,
    };
    let mut interval = tokio::time::interval_at(first_tick, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        if running.swap(true, Ordering::AcqRel) {
            inner.stats.missed_ticks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                id = %monitor.id,
                url = %monitor.url,
                "monitor's previous check still running at its next tick: tick skipped"
            );
            continue;
        }
        spawn_check(&inner, &monitor, &running, &slot);
    }
}

fn spawn_check(
    inner: &Arc<Inner>,
    monitor: &Arc<Monitor>,
    running: &Arc<AtomicBool>,
    slot: &Arc<Mutex<Option<AbortHandle>>>,
) {
    let task = tokio::spawn(one_check(
        Arc::clone(inner),
        Arc::clone(monitor),
        Arc::clone(running),
    ));
    if let Ok(mut s) = slot.lock() {
        *s = Some(task.abort_handle());
    }
}

/// Clears the monitor's running flag and the in-flight count however the check ends
/// (also when it is aborted).
struct Running {
    flag: Arc<AtomicBool>,
    stats: Arc<SchedulerStats>,
    counted: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.counted {
            self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        self.flag.store(false, Ordering::Release);
    }
}

async fn one_check(inner: Arc<Inner>, monitor: Arc<Monitor>, running: Arc<AtomicBool>) {
    let mut guard = Running {
        flag: running,
        stats: Arc::clone(&inner.stats),
        counted: false,
    };
    let Ok(permit) = Arc::clone(&inner.pool).acquire_owned().await else {
        return;
    };
    inner.stats.in_flight.fetch_add(1, Ordering::Relaxed);
    guard.counted = true;
    let started = SystemTime::now();
    let clock = Instant::now();
    let timeout = inner.settings.timeout;
    let mut result = match tokio::time::timeout(timeout, inner.check.check(&monitor.url)).await {
        Ok(r) => r,
        Err(_) => {
            let us = started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            CheckResult::failed(
                &monitor.url,
                telltale_core::event::rfc3339(us),
                clock.elapsed().as_secs_f64() * 1000.0,
                CheckError::Timeout,
                format!("no complete answer within {timeout:?}"),
            )
        }
    };
    drop(permit);
    result.monitor_id = Some(monitor.id.clone());
    result.every_s = Some(monitor.every.seconds());
    inner.stats.count(&result);
    drop(guard);
    if inner.sink.send(result).await.is_err() {
        tracing::debug!(id = %monitor.id, "monitor result dropped: the sink is closed");
    }
}

#[cfg(test)]
mod tests;
