//! The delivery engine: a non-blocking handle for producers and one Tokio task that
//! writes batches to the server, in order.
//!
//! Points are kept as one log, oldest first: the spool files on disk, then the lines in
//! memory. The task always sends from the head (the oldest spool file, else up to one
//! batch of memory lines), so the server sees points in the order they were sent — which
//! matters when a corrected rollup for the same window follows the first one. When memory
//! holds more than `buffer_max_bytes`, the oldest memory lines move to the end of the
//! spool, which keeps the order. A batch is retried until it is written, refused (then it
//! goes to a dead-letter file) or shutdown's deadline passes (then it is spooled).
//!
//! [`InfluxSink::send`] only encodes and appends under a short lock; during an outage
//! it also writes the spill file itself (one `batch_max_bytes` file with fsync per
//! `buffer_max_bytes / 2` of new data), which is the backpressure it exerts.

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use telltale_core::config::{InfluxConfig, Secret};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{Attempt, Target, backoff};
use crate::error::InfluxError;
use crate::points::ToLineProtocol;
use crate::spool::{SpoolFile, SpoolIndex, write_atomic, write_dead_letter};

/// Where spool files go, under the data directory.
pub const SPOOL_SUBDIR: &str = "spool/influx";
/// Where dead letters go, under the data directory.
pub const DEADLETTER_SUBDIR: &str = "deadletter/influx";

/// A `Retry-After` is honoured up to this many times `retry_max_backoff`, so a confused
/// server cannot park delivery for a day.
const RETRY_AFTER_CAP_FACTOR: u32 = 10;

/// What the sink has done since it started (counters), and holds now (gauges). A plain
/// struct, for the processor to export as Prometheus metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InfluxStats {
    /// Points handed to [`InfluxSink::send`] (one point = one line).
    pub points_received: u64,
    /// Points the server acknowledged.
    pub points_sent: u64,
    /// Successful write requests.
    pub requests_sent: u64,
    /// Request bytes the server acknowledged (after gzip).
    pub bytes_sent: u64,
    /// Attempts that failed and were retried (429, 5xx, connection errors).
    pub retries: u64,
    /// Points moved from memory to the spool.
    pub points_spilled: u64,
    /// Points lost: evicted from a full spool, or not spillable (disk error).
    pub points_dropped: u64,
    /// Points in batches the server refused, now in dead-letter files.
    pub points_dead_lettered: u64,
    /// Points in memory now, waiting to be sent (the batch being sent is not included).
    pub queued_points: u64,
    /// Points in the spool now.
    pub spooled_points: u64,
    /// Bytes in the spool now.
    pub spooled_bytes: u64,
}

#[derive(Default)]
struct Counters {
    points_received: AtomicU64,
    points_sent: AtomicU64,
    requests_sent: AtomicU64,
    bytes_sent: AtomicU64,
    retries: AtomicU64,
    points_spilled: AtomicU64,
    points_dropped: AtomicU64,
    points_dead_lettered: AtomicU64,
}

/// One encoded line waiting in memory.
struct QueuedLine {
    seq: u64,
    at: Instant,
    text: Box<str>,
}

/// Everything behind the lock.
struct State {
    mem: VecDeque<QueuedLine>,
    mem_bytes: usize,
    next_seq: u64,
    spool: SpoolIndex,
    /// Spills that took lines out of `mem` but have not put them in `spool` yet; while
    /// any runs, the task must not send from memory (it would overtake them).
    spills_in_progress: usize,
    /// The task has ended: new points go straight to the spool.
    task_done: bool,
}

/// The batching, buffering and retry settings, from [`InfluxConfig`].
#[derive(Debug, Clone)]
struct Settings {
    batch_max_lines: usize,
    batch_max_bytes: usize,
    flush_interval: Duration,
    buffer_max_bytes: usize,
    spool_max_bytes: u64,
    shutdown_timeout: Duration,
    retry_initial_backoff: Duration,
    retry_max_backoff: Duration,
}

struct Shared {
    settings: Settings,
    target_desc: String,
    state: Mutex<State>,
    /// Serializes spills, so the spool bound is exact and files land in order.
    spill_lock: Mutex<()>,
    /// Wakes the task: new lines, a finished spill, shutdown.
    wake: Notify,
    /// The shutdown deadline, once shutdown is requested.
    shutdown: watch::Sender<Option<Instant>>,
    /// True once the task has ended.
    done: watch::Sender<bool>,
    counters: Counters,
    deadletter_dir: PathBuf,
}

/// The producers' handle to the InfluxDB sink. Cheap to clone; every method is
/// non-blocking except [`shutdown`](Self::shutdown), which waits for the final flush.
/// Dropping the last handle starts the same shutdown without waiting for it.
#[derive(Clone)]
pub struct InfluxSink {
    guard: Arc<ShutdownOnDrop>,
}

struct ShutdownOnDrop(Arc<Shared>);

/// Reads a sink's stats (see [`InfluxSink::stats_reader`]).
#[derive(Clone)]
pub struct InfluxStatsReader(Arc<Shared>);

impl InfluxStatsReader {
    /// The sink's counters and gauges now.
    pub fn stats(&self) -> InfluxStats {
        self.0.stats()
    }
}

impl fmt::Debug for InfluxStatsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InfluxStatsReader")
            .field(&self.0.target_desc)
            .finish()
    }
}

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.request_shutdown();
    }
}

impl fmt::Debug for InfluxSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfluxSink")
            .field("target", &self.shared().target_desc)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl InfluxSink {
    /// Starts the sink: reads the token file if one is named, indexes what an earlier run
    /// left in `<data_dir>/spool/influx/` (sent first), and spawns the delivery task on
    /// the current Tokio runtime. The `JoinHandle` ends after [`shutdown`](Self::shutdown)
    /// (or after the last handle is dropped); await it to notice a panic.
    pub fn start(
        config: &InfluxConfig,
        data_dir: impl AsRef<Path>,
    ) -> Result<(InfluxSink, JoinHandle<()>), InfluxError> {
        if !config.is_enabled() {
            return Err(InfluxError::Disabled);
        }
        config.validate("[influx] settings")?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| InfluxError::NoRuntime)?;
        let token = resolve_token(config)?;
        let target = Target::new(config, token)?;

        let data_dir = data_dir.as_ref();
        let spool_dir = data_dir.join(SPOOL_SUBDIR);
        let spool = SpoolIndex::open(&spool_dir).map_err(|source| InfluxError::Io {
            op: "open spool",
            path: spool_dir.clone(),
            source,
        })?;
        if !spool.is_empty() {
            tracing::info!(
                points = spool.lines(),
                bytes = spool.bytes(),
                dir = %spool_dir.display(),
                "InfluxDB sink: replaying points spooled by an earlier run before new ones"
            );
        }
        let settings = Settings {
            batch_max_lines: config.batch_max_lines,
            batch_max_bytes: config.batch_max_bytes,
            flush_interval: config.flush_interval,
            buffer_max_bytes: config.buffer_max_bytes,
            spool_max_bytes: config.spool_max_bytes,
            shutdown_timeout: config.shutdown_timeout,
            retry_initial_backoff: config.retry_initial_backoff,
            retry_max_backoff: config.retry_max_backoff,
        };
        let shared = Arc::new(Shared {
            settings,
            target_desc: target.describe(),
            state: Mutex::new(State {
                mem: VecDeque::new(),
                mem_bytes: 0,
                next_seq: spool.next_seq(),
                spool,
                spills_in_progress: 0,
                task_done: false,
            }),
            spill_lock: Mutex::new(()),
            wake: Notify::new(),
            shutdown: watch::Sender::new(None),
            done: watch::Sender::new(false),
            counters: Counters::default(),
            deadletter_dir: data_dir.join(DEADLETTER_SUBDIR),
        });
        tracing::info!(endpoint = %shared.target_desc, "InfluxDB sink started");
        let task = runtime.spawn(run(Arc::clone(&shared), target));
        Ok((
            InfluxSink {
                guard: Arc::new(ShutdownOnDrop(shared)),
            },
            task,
        ))
    }

    fn shared(&self) -> &Shared {
        &self.guard.0
    }

    /// Queues `items` for delivery and returns at once (the encoding happens here).
    /// While the server is unreachable and memory is full, this call writes the oldest
    /// points to the spool: a few milliseconds of disk I/O, never a network wait.
    pub fn send<T: ToLineProtocol>(&self, items: &[T]) {
        let mut text = String::new();
        for item in items {
            item.write_lines(&mut text);
        }
        if !text.is_empty() {
            self.shared().enqueue(&text);
        }
    }

    /// Counters and gauges, for `/metrics`.
    pub fn stats(&self) -> InfluxStats {
        self.shared().stats()
    }

    /// A handle that reads [`InfluxSink::stats`] without being a handle to the sink:
    /// holding it (in a metrics registry, say) does not keep the sink from shutting down
    /// when its last handle is dropped.
    pub fn stats_reader(&self) -> InfluxStatsReader {
        InfluxStatsReader(Arc::clone(&self.guard.0))
    }

    /// Stops the sink: keeps delivering for up to `shutdown_timeout`, then spools what is
    /// left (it is sent on the next start), and waits for the task to end. Points sent
    /// after this go straight to the spool. Returns the final stats.
    pub async fn shutdown(&self) -> InfluxStats {
        let shared = self.shared();
        shared.request_shutdown();
        let mut done = shared.done.subscribe();
        // Err only if the sender is gone, which cannot happen while `shared` lives.
        let _ = done.wait_for(|d| *d).await;
        shared.stats()
    }
}

/// The token: from the config (`INFLUX_TOKEN`) or read from `token_file`.
fn resolve_token(config: &InfluxConfig) -> Result<Option<Secret>, InfluxError> {
    if let Some(t) = &config.token {
        return Ok(Some(t.clone()));
    }
    let Some(path) = &config.token_file else {
        return Ok(None);
    };
    let err = |reason: String| InfluxError::TokenFile {
        path: PathBuf::from(path),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(err("is empty".into()));
    }
    Ok(Some(Secret::new(token)))
}

/// The next thing the task should do.
enum Next {
    Spool(SpoolFile),
    Memory(Vec<QueuedLine>),
    /// Nothing ready; wait for a wake-up, or until this instant (the head's flush time).
    Wait(Option<Instant>),
    /// Shutting down and everything is delivered.
    Drained,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update is a few
        // plain assignments), so carry on rather than poison every producer.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> InfluxStats {
        let c = &self.counters;
        let (queued, spooled_points, spooled_bytes) = {
            let st = self.lock();
            (st.mem.len() as u64, st.spool.lines(), st.spool.bytes())
        };
        InfluxStats {
            points_received: c.points_received.load(Relaxed),
            points_sent: c.points_sent.load(Relaxed),
            requests_sent: c.requests_sent.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            retries: c.retries.load(Relaxed),
            points_spilled: c.points_spilled.load(Relaxed),
            points_dropped: c.points_dropped.load(Relaxed),
            points_dead_lettered: c.points_dead_lettered.load(Relaxed),
            queued_points: queued,
            spooled_points,
            spooled_bytes,
        }
    }

    fn request_shutdown(&self) {
        let deadline = Instant::now() + self.settings.shutdown_timeout;
        self.shutdown.send_if_modified(|d| {
            if d.is_none() {
                *d = Some(deadline);
                true
            } else {
                false
            }
        });
        self.wake.notify_one();
    }

    /// Appends encoded lines; spills if memory is over its bound (or the task is gone).
    fn enqueue(&self, text: &str) {
        let now = Instant::now();
        let mut added = 0u64;
        let spill = {
            let mut st = self.lock();
            for line in text.split_inclusive('\n') {
                let seq = st.next_seq;
                st.next_seq += 1;
                st.mem_bytes += line.len();
                st.mem.push_back(QueuedLine {
                    seq,
                    at: now,
                    text: line.into(),
                });
                added += 1;
            }
            let spill = if st.task_done {
                Some(take_front(&mut st, usize::MAX))
            } else if st.mem_bytes > self.settings.buffer_max_bytes {
                // Down to half, so an outage costs one spill per half-buffer of new
                // points rather than one per call.
                let target = self.settings.buffer_max_bytes / 2;
                let excess = st.mem_bytes - target;
                Some(take_front(&mut st, excess))
            } else {
                None
            };
            if spill.is_some() {
                st.spills_in_progress += 1;
            }
            spill
        };
        self.counters.points_received.fetch_add(added, Relaxed);
        self.wake.notify_one();
        if let Some(lines) = spill {
            self.spill(lines);
        }
    }

    /// Moves lines (the oldest in memory, taken by the caller with
    /// `spills_in_progress` raised) to spool files, evicting the oldest spool files if the
    /// spool is full. Blocking file I/O.
    fn spill(&self, lines: Vec<QueuedLine>) {
        let _serial = self.spill_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut rest = lines.as_slice();
        while !rest.is_empty() {
            let n = batch_len(
                rest,
                self.settings.batch_max_lines,
                self.settings.batch_max_bytes,
            );
            let (group, tail) = rest.split_at(n);
            rest = tail;
            self.spill_group(group);
        }
        let mut st = self.lock();
        st.spills_in_progress -= 1;
        drop(st);
        self.wake.notify_one();
    }

    fn spill_group(&self, group: &[QueuedLine]) {
        let (first, last) = (group[0].seq, group[group.len() - 1].seq);
        let bytes: usize = group.iter().map(|l| l.text.len()).sum();
        let evicted = self
            .lock()
            .spool
            .evict_for(bytes as u64, self.settings.spool_max_bytes);
        let Some(evicted) = evicted else {
            self.counters
                .points_dropped
                .fetch_add(group.len() as u64, Relaxed);
            tracing::error!(
                points = group.len(),
                spool_max_bytes = self.settings.spool_max_bytes,
                "InfluxDB sink: DROPPED points: the spool is full of files being sent and \
                 cannot take more; raise influx.spool_max_bytes"
            );
            return;
        };
        if !evicted.is_empty() {
            let points: u64 = evicted.iter().map(SpoolFile::lines).sum();
            for f in &evicted {
                if let Err(e) = std::fs::remove_file(&f.path) {
                    tracing::warn!(file = %f.path.display(), error = %e, "could not delete an evicted spool file");
                }
            }
            self.counters.points_dropped.fetch_add(points, Relaxed);
            tracing::error!(
                points,
                files = evicted.len(),
                spool_max_bytes = self.settings.spool_max_bytes,
                oldest_seq = evicted[0].first_seq,
                "InfluxDB sink: spool full while InfluxDB is unreachable: DROPPED the oldest \
                 spooled points to make room for new ones (raise influx.spool_max_bytes to \
                 ride out longer outages)"
            );
        }
        let parts: Vec<&[u8]> = group.iter().map(|l| l.text.as_bytes()).collect();
        let dir = self.lock().spool.dir().to_owned();
        let name = SpoolIndex::file_name(first, last);
        match write_atomic(&dir, &name, &parts) {
            Ok(path) => {
                self.lock().spool.insert(SpoolFile {
                    first_seq: first,
                    last_seq: last,
                    bytes: bytes as u64,
                    path,
                    in_flight: false,
                });
                self.counters
                    .points_spilled
                    .fetch_add(group.len() as u64, Relaxed);
            }
            Err(e) => {
                self.counters
                    .points_dropped
                    .fetch_add(group.len() as u64, Relaxed);
                tracing::error!(
                    points = group.len(),
                    dir = %dir.display(),
                    error = %e,
                    "InfluxDB sink: DROPPED points: could not write them to the spool"
                );
            }
        }
    }

    fn next(&self, shutting_down: bool) -> Next {
        let mut st = self.lock();
        if let Some(f) = st.spool.take_oldest() {
            return Next::Spool(f);
        }
        if st.spills_in_progress > 0 {
            return Next::Wait(None);
        }
        let Some(head) = st.mem.front() else {
            return if shutting_down {
                Next::Drained
            } else {
                Next::Wait(None)
            };
        };
        let flush_at = head.at + self.settings.flush_interval;
        let s = &self.settings;
        let full = st.mem.len() >= s.batch_max_lines || st.mem_bytes >= s.batch_max_bytes;
        if !(shutting_down || full || Instant::now() >= flush_at) {
            return Next::Wait(Some(flush_at));
        }
        let n = batch_len(
            st.mem.make_contiguous(),
            s.batch_max_lines,
            s.batch_max_bytes,
        );
        Next::Memory(take_front_n(&mut st, n))
    }

    fn deliver_counts(&self, points: u64, bytes: usize) {
        self.counters.points_sent.fetch_add(points, Relaxed);
        self.counters.requests_sent.fetch_add(1, Relaxed);
        self.counters.bytes_sent.fetch_add(bytes as u64, Relaxed);
    }
}

/// How many of `lines` (at least one) fit in one batch.
fn batch_len(lines: &[QueuedLine], max_lines: usize, max_bytes: usize) -> usize {
    let mut bytes = 0;
    let mut n = 0;
    for l in lines.iter().take(max_lines) {
        if n > 0 && bytes + l.text.len() > max_bytes {
            break;
        }
        bytes += l.text.len();
        n += 1;
    }
    n.max(1).min(lines.len())
}

/// Takes lines off the front of memory until at least `bytes` are taken.
fn take_front(st: &mut State, bytes: usize) -> Vec<QueuedLine> {
    let mut out = Vec::new();
    let mut taken = 0;
    while taken < bytes {
        let Some(l) = st.mem.pop_front() else { break };
        taken += l.text.len();
        out.push(l);
    }
    st.mem_bytes -= taken;
    out
}

fn take_front_n(st: &mut State, n: usize) -> Vec<QueuedLine> {
    let out: Vec<QueuedLine> = st.mem.drain(..n).collect();
    st.mem_bytes -= out.iter().map(|l| l.text.len()).sum::<usize>();
    out
}

/// How a batch ended.
enum Outcome {
    Written {
        wire_bytes: usize,
    },
    Refused {
        status: String,
        message: String,
    },
    /// The shutdown deadline passed first.
    Interrupted,
}

/// Resolves when shutdown has been requested and its deadline has passed.
async fn deadline_passed(rx: &mut watch::Receiver<Option<Instant>>) {
    // Copy the value out: the watch guard must not be held across an await.
    let deadline = rx.wait_for(Option::is_some).await.map(|d| *d);
    match deadline {
        Ok(Some(d)) => tokio::time::sleep_until(d).await,
        // The sender lives as long as the sink: never in practice.
        _ => std::future::pending().await,
    }
}

/// The delivery task.
async fn run(shared: Arc<Shared>, target: Target) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        // `borrow_and_update` marks the value seen, so `changed()` below waits for news.
        let deadline = *shutdown.borrow_and_update();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        match shared.next(deadline.is_some()) {
            Next::Drained => break,
            Next::Wait(until) => {
                let sleep = async {
                    match until {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = shared.wake.notified() => {}
                    () = sleep => {}
                    _ = shutdown.changed() => {}
                }
            }
            Next::Spool(file) => {
                let path = file.path.clone();
                let body = match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
                    Ok(Ok(b)) => Bytes::from(b),
                    Ok(Err(e)) => {
                        // Unreadable: move on rather than block everything behind it.
                        let points = file.lines();
                        shared.lock().spool.remove(file.first_seq);
                        shared.counters.points_dropped.fetch_add(points, Relaxed);
                        tracing::error!(file = %file.path.display(), error = %e, points,
                            "InfluxDB sink: DROPPED an unreadable spool file");
                        continue;
                    }
                    Err(join) => {
                        shared.lock().spool.release(file.first_seq);
                        tracing::error!(error = %join, "InfluxDB sink: reading a spool file failed");
                        continue;
                    }
                };
                let outcome =
                    deliver(&shared, &target, body.clone(), file.lines(), &mut shutdown).await;
                match outcome {
                    Outcome::Interrupted => {
                        shared.lock().spool.release(file.first_seq);
                        break;
                    }
                    Outcome::Written { wire_bytes } => {
                        shared.deliver_counts(file.lines(), wire_bytes);
                    }
                    Outcome::Refused { status, message } => {
                        dead_letter(
                            &shared,
                            &target,
                            file.first_seq,
                            file.lines(),
                            &status,
                            &message,
                            body,
                        )
                        .await;
                    }
                }
                shared.lock().spool.remove(file.first_seq);
                let path = file.path.clone();
                let removed = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
                if let Ok(Err(e)) = removed {
                    tracing::warn!(file = %file.path.display(), error = %e, "could not delete a delivered spool file");
                }
            }
            Next::Memory(lines) => {
                let mut text = String::with_capacity(lines.iter().map(|l| l.text.len()).sum());
                for l in &lines {
                    text.push_str(&l.text);
                }
                let body = Bytes::from(text);
                let points = lines.len() as u64;
                match deliver(&shared, &target, body.clone(), points, &mut shutdown).await {
                    Outcome::Written { wire_bytes } => shared.deliver_counts(points, wire_bytes),
                    Outcome::Refused { status, message } => {
                        dead_letter(
                            &shared,
                            &target,
                            lines[0].seq,
                            points,
                            &status,
                            &message,
                            body,
                        )
                        .await;
                    }
                    Outcome::Interrupted => {
                        // These are older than anything in memory, and their sequence
                        // numbers sort them before any later spill.
                        shared.lock().spills_in_progress += 1;
                        spill_blocking(&shared, lines).await;
                        break;
                    }
                }
            }
        }
    }
    // Out of time (or drained): whatever is still in memory goes to the spool.
    let rest = {
        let mut st = shared.lock();
        st.task_done = true;
        let rest = take_front(&mut st, usize::MAX);
        if !rest.is_empty() {
            st.spills_in_progress += 1;
        }
        rest
    };
    if !rest.is_empty() {
        spill_blocking(&shared, rest).await;
    }
    let stats = shared.stats();
    if stats.spooled_points > 0 {
        tracing::warn!(
            points = stats.spooled_points,
            "InfluxDB sink stopped with points in the spool; they are sent on the next start"
        );
    }
    tracing::info!(?stats, "InfluxDB sink stopped");
    shared.done.send_replace(true);
}

async fn spill_blocking(shared: &Arc<Shared>, lines: Vec<QueuedLine>) {
    let s = Arc::clone(shared);
    if let Err(e) = tokio::task::spawn_blocking(move || s.spill(lines)).await {
        tracing::error!(error = %e, "InfluxDB sink: spilling to the spool failed");
    }
}

/// Sends one batch until it is written or refused, or shutdown's deadline passes.
async fn deliver(
    shared: &Shared,
    target: &Target,
    body: Bytes,
    points: u64,
    shutdown: &mut watch::Receiver<Option<Instant>>,
) -> Outcome {
    let payload = if target.gzip() {
        match tokio::task::spawn_blocking(move || gzip(&body)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "gzip task failed; retrying the batch later");
                return Outcome::Interrupted;
            }
        }
    } else {
        body
    };
    let s = &shared.settings;
    let mut attempt: u32 = 0;
    loop {
        let result = tokio::select! {
            r = target.post(payload.clone()) => r,
            () = deadline_passed(shutdown) => return Outcome::Interrupted,
        };
        let delay = match result {
            Attempt::Written => {
                return Outcome::Written {
                    wire_bytes: payload.len(),
                };
            }
            Attempt::Refused { status, message } => {
                return Outcome::Refused {
                    status: status.to_string(),
                    message,
                };
            }
            Attempt::Retry { reason, after } => {
                let delay = match after {
                    Some(a) => a.min(s.retry_max_backoff * RETRY_AFTER_CAP_FACTOR),
                    None => backoff(attempt, s.retry_initial_backoff, s.retry_max_backoff),
                };
                tracing::warn!(
                    endpoint = %shared.target_desc,
                    points,
                    attempt = attempt + 1,
                    retry_in = ?delay,
                    honouring_retry_after = after.is_some(),
                    "InfluxDB write failed, will retry: {reason}"
                );
                delay
            }
        };
        shared.counters.retries.fetch_add(1, Relaxed);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = deadline_passed(shutdown) => return Outcome::Interrupted,
        }
    }
}

fn gzip(body: &[u8]) -> Bytes {
    use std::io::Write as _;
    // Level 1: line protocol compresses ~10× even so, and the CPU is the pipeline's.
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(body);
    Bytes::from(enc.finish().unwrap_or_default())
}

async fn dead_letter(
    shared: &Arc<Shared>,
    target: &Target,
    seq: u64,
    points: u64,
    status: &str,
    message: &str,
    body: Bytes,
) {
    let (root, desc, st, msg) = (
        shared.deadletter_dir.clone(),
        target.describe(),
        status.to_owned(),
        message.to_owned(),
    );
    let now = chrono::Utc::now();
    let written = tokio::task::spawn_blocking(move || {
        write_dead_letter(&root, now, seq, &desc, &st, &msg, &body)
    })
    .await;
    // Kept in a file: dead-lettered; not even that (a full or failing disk): dropped.
    let kept = matches!(written, Ok(Ok(_)));
    let counter = if kept {
        &shared.counters.points_dead_lettered
    } else {
        &shared.counters.points_dropped
    };
    counter.fetch_add(points, Relaxed);
    match written {
        Ok(Ok(path)) => tracing::error!(
            endpoint = %shared.target_desc,
            points,
            status,
            file = %path.display(),
            "InfluxDB refused a batch; kept it as a dead letter. Server said: {}",
            message.trim()
        ),
        Ok(Err(e)) => tracing::error!(
            points,
            status,
            error = %e,
            "InfluxDB refused a batch and writing the dead letter failed: the batch is LOST. Server said: {}",
            message.trim()
        ),
        Err(e) => tracing::error!(error = %e, "dead-letter task failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<QueuedLine> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| QueuedLine {
                seq: i as u64,
                at: Instant::now(),
                text: (*t).into(),
            })
            .collect()
    }

    #[test]
    fn batches_respect_both_caps_but_always_take_one_line() {
        let l = lines(&["aaaa\n", "bbbb\n", "cccc\n"]);
        assert_eq!(batch_len(&l, 5000, 1024), 3);
        assert_eq!(batch_len(&l, 2, 1024), 2);
        assert_eq!(batch_len(&l, 5000, 10), 2);
        assert_eq!(
            batch_len(&l, 5000, 3),
            1,
            "an oversized line still goes alone"
        );
    }

    #[tokio::test]
    async fn start_refuses_a_disabled_config_and_reads_the_token_file() {
        let tmp = tempfile::tempdir().unwrap();
        let off = InfluxConfig::default();
        assert!(matches!(
            InfluxSink::start(&off, tmp.path()),
            Err(InfluxError::Disabled)
        ));

        let token_file = tmp.path().join("token");
        std::fs::write(&token_file, "  file-token-value\n").unwrap();
        let cfg = InfluxConfig {
            url: "http://127.0.0.1:9".into(),
            org: "o".into(),
            bucket: "b".into(),
            token_file: Some(token_file.display().to_string()),
            ..InfluxConfig::default()
        };
        assert_eq!(
            resolve_token(&cfg).unwrap().unwrap().expose(),
            "file-token-value"
        );
        std::fs::write(&token_file, "\n").unwrap();
        let err = resolve_token(&cfg).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
    }

    #[tokio::test]
    async fn debug_of_config_and_sink_never_shows_the_token() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = "tok-3f9a8c1e-never-log-me";
        let cfg = InfluxConfig {
            url: "http://127.0.0.1:9".into(),
            org: "o".into(),
            bucket: "b".into(),
            ..InfluxConfig::default()
        }
        .with_env(|k| (k == "INFLUX_TOKEN").then(|| secret.to_owned()))
        .unwrap();
        let (sink, task) = InfluxSink::start(&cfg, tmp.path()).unwrap();
        let shown = format!("{cfg:?} {cfg:#?} {sink:?} {sink:#?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("127.0.0.1:9"), "{shown}");
        drop(sink);
        task.await.unwrap();
    }
}
