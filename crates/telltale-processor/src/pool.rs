//! The HTTP ingest's processing workers: a bounded queue of batches served by a pool of
//! threads whose size an autoscaler moves between `min_workers` and `max_workers` by the
//! backlog and the CPU the process uses (`telltale_core::autoscale` is the policy).
//!
//! The queue is what makes overload visible and bounded: when it is full, a request is
//! refused at once (429 with `Retry-After`) instead of waiting in memory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use telltale_core::autoscale::{Autoscaler, Decision, Observation};
use telltale_core::config::AutoscaleConfig;

use crate::metrics::{DirectionLabel, Metrics};

type Job = Box<dyn FnOnce() + Send>;

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: the workers are behind.
    QueueFull,
    /// The pool has stopped.
    Stopped,
}

#[derive(Debug)]
struct Shared {
    rx: Mutex<Receiver<Job>>,
    /// Workers that should run; a worker whose index is at or above it exits.
    target: AtomicUsize,
    backlog: AtomicUsize,
    stop: AtomicBool,
    metrics: Arc<Metrics>,
}

/// Handle to the pool; cheap to clone. When the last handle goes, the pool stops.
#[derive(Debug, Clone)]
pub struct IngestPool {
    tx: SyncSender<Job>,
    shared: Arc<Shared>,
    _stop_on_drop: Arc<StopOnDrop>,
}

#[derive(Debug)]
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
    }
}

impl IngestPool {
    /// Starts `cfg.min_workers` workers and the autoscaler.
    pub fn start(queue_batches: usize, cfg: AutoscaleConfig, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = sync_channel(queue_batches.max(1));
        let shared = Arc::new(Shared {
            rx: Mutex::new(rx),
            target: AtomicUsize::new(cfg.min_workers.max(1)),
            backlog: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            metrics,
        });
        for i in 0..cfg.min_workers.max(1) {
            spawn_worker(&shared, i);
        }
        Metrics::gauge_set(&shared.metrics.workers, cfg.min_workers.max(1));
        let s = Arc::clone(&shared);
        let _ = std::thread::Builder::new()
            .name("telltale-autoscaler".into())
            .spawn(move || autoscale(s, cfg));
        Self {
            tx,
            _stop_on_drop: Arc::new(StopOnDrop(Arc::clone(&shared))),
            shared,
        }
    }

    /// Queues a job, or refuses it at once when the queue is full.
    pub fn try_submit(&self, job: impl FnOnce() + Send + 'static) -> Result<(), Refused> {
        if self.shared.stop.load(Ordering::Acquire) {
            return Err(Refused::Stopped);
        }
        self.shared.backlog.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(Box::new(job)) {
            Ok(()) => {
                self.shared.metrics.parse_backlog.inc();
                Ok(())
            }
            Err(e) => {
                self.shared.backlog.fetch_sub(1, Ordering::AcqRel);
                Err(match e {
                    TrySendError::Full(_) => Refused::QueueFull,
                    TrySendError::Disconnected(_) => Refused::Stopped,
                })
            }
        }
    }

    /// Workers that should be running now.
    pub fn workers(&self) -> usize {
        self.shared.target.load(Ordering::Acquire)
    }

    /// Stops the workers once the queue is empty, and the autoscaler.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

fn spawn_worker(shared: &Arc<Shared>, index: usize) {
    let s = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name(format!("telltale-ingest-{index}"))
        .spawn(move || {
            loop {
                if index >= s.target.load(Ordering::Acquire) {
                    return;
                }
                let job = {
                    let rx = s.rx.lock().unwrap_or_else(|p| p.into_inner());
                    rx.recv_timeout(Duration::from_millis(100))
                };
                match job {
                    Ok(job) => {
                        s.backlog.fetch_sub(1, Ordering::AcqRel);
                        s.metrics.parse_backlog.dec();
                        job();
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if s.stop.load(Ordering::Acquire) {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start an ingest worker");
    }
}

/// CPU time the process has used, from `/proc/self/stat` (Linux); `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)`, which may contain spaces: utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux platform Rust targets.
    Some((utime + stime) / 100.0)
}

fn autoscale(shared: Arc<Shared>, cfg: AutoscaleConfig) {
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let interval = cfg.interval;
    let mut policy = Autoscaler::new(cfg);
    let mut last = (Instant::now(), process_cpu_seconds());
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::sleep(interval);
        let now = Instant::now();
        let cpu_now = process_cpu_seconds();
        let cpu = match (last.1, cpu_now) {
            (Some(a), Some(b)) => (b - a) / now.duration_since(last.0).as_secs_f64().max(1e-3),
            _ => f64::NAN,
        };
        last = (now, cpu_now);
        if cpu.is_finite() {
            shared.metrics.cpu_cores_used.set(cpu);
        }
        let workers = shared.target.load(Ordering::Acquire);
        let decision = policy.observe(Observation {
            now_ms: started.elapsed().as_millis() as u64,
            backlog: shared.backlog.load(Ordering::Acquire),
            workers,
            cpu_cores_used: cpu,
            cores_available: cores,
        });
        if let (Some(to), Some(direction)) = (decision.target(), decision.direction()) {
            let reason = match &decision {
                Decision::ScaleUp { reason, .. } | Decision::ScaleDown { reason, .. } => {
                    reason.as_str()
                }
                Decision::Hold => "",
            };
            tracing::info!(from = workers, to, reason, "autoscaler: {direction}");
            shared.target.store(to, Ordering::Release);
            for i in workers..to {
                spawn_worker(&shared, i);
            }
            Metrics::gauge_set(&shared.metrics.workers, to);
            shared
                .metrics
                .autoscale_decisions
                .get_or_create(&DirectionLabel {
                    direction: direction.to_owned(),
                })
                .inc();
        }
    }
}
