//! The delivery task: results in memory, then (while the server is unreachable) in the
//! spool, written in the order they came, in batches, by one Tokio task.
//!
//! The head of the log is always written first: the oldest spool file, else up to
//! `batch_max_rows` results from memory. A batch that fails for the connection is kept
//! (memory moves to the end of the spool, so nothing waits only in memory while the
//! server is down) and retried after a reconnect with a doubling pause; a batch the
//! server refuses for its data (which validation should make impossible) goes to
//! `<data_dir>/deadletter/postgres/` with the server's message. Because a result is
//! identified by its monitor and start time, a batch written twice (a retry after a lost
//! commit answer, a replay of the write-ahead log) inserts nothing the second time:
//! exactly once in the table.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use telltale_core::config::PostgresConfig;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::connect::ConnectSettings;
use crate::error::PgError;
use crate::row::CheckRow;
use crate::spool::Spool;

/// Where spool files go, under the data directory.
pub const SPOOL_SUBDIR: &str = "spool/postgres";
/// Where refused batches go, under the data directory.
pub const DEADLETTER_SUBDIR: &str = "deadletter/postgres";

/// Longest a batch may take before the connection is given up as hung.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// First pause after a failed connection; it doubles up to `retry_max_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// What the sink has done (counters) and holds (gauges), for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgStats {
    /// Results handed to [`PostgresSink::send`].
    pub received: u64,
    /// Results inserted.
    pub inserted: u64,
    /// Results written again that were already there (retries, replays).
    pub duplicates: u64,
    /// Results the server refused, kept in the dead letter.
    pub refused: u64,
    /// Results dropped because the spool was full (logged).
    pub dropped: u64,
    /// Failed connection attempts and batches lost to the connection.
    pub failures: u64,
    /// Results waiting in the spool now.
    pub spooled: u64,
    /// Results waiting in memory now.
    pub queued: u64,
    /// Connected now.
    pub connected: bool,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    inserted: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    failures: AtomicU64,
    spooled: AtomicU64,
    connected: AtomicBool,
}

#[derive(Debug)]
struct Shared {
    memory: Mutex<VecDeque<CheckRow>>,
    wake: Notify,
    counters: Counters,
    stopping: AtomicBool,
    done: watch::Sender<bool>,
}

impl Shared {
    fn memory(&self) -> std::sync::MutexGuard<'_, VecDeque<CheckRow>> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stats(&self) -> PgStats {
        let c = &self.counters;
        PgStats {
            received: c.received.load(Relaxed),
            inserted: c.inserted.load(Relaxed),
            duplicates: c.duplicates.load(Relaxed),
            refused: c.refused.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            failures: c.failures.load(Relaxed),
            spooled: c.spooled.load(Relaxed),
            queued: self.memory().len() as u64,
            connected: c.connected.load(Relaxed),
        }
    }
}

/// The settings of the delivery task.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Where and how to connect.
    pub connect: ConnectSettings,
    /// Most results in one INSERT.
    pub batch_max_rows: usize,
    /// Longest a result waits in memory.
    pub flush_interval: Duration,
    /// The spool directory.
    pub spool_dir: PathBuf,
    /// The dead-letter directory.
    pub deadletter_dir: PathBuf,
    /// Most bytes in the spool.
    pub spool_max_bytes: u64,
    /// Longest pause between reconnections.
    pub retry_max_backoff: Duration,
}

impl SinkSettings {
    /// From `[postgres]` (environment applied) and the data directory; `None` when off.
    pub fn from_config(cfg: &PostgresConfig, data_dir: &Path) -> Result<Option<Self>, PgError> {
        let Some(connect) = ConnectSettings::from_config(cfg)? else {
            return Ok(None);
        };
        Ok(Some(Self {
            connect,
            batch_max_rows: cfg.batch_max_rows.max(1),
            flush_interval: cfg.flush_interval,
            spool_dir: data_dir.join(SPOOL_SUBDIR),
            deadletter_dir: data_dir.join(DEADLETTER_SUBDIR),
            spool_max_bytes: cfg.spool_max_bytes,
            retry_max_backoff: cfg.retry_max_backoff,
        }))
    }
}

/// The handle producers use: cheap to clone, never blocks on the network.
#[derive(Debug, Clone)]
pub struct PostgresSink {
    shared: Arc<Shared>,
}

impl PostgresSink {
    /// Opens the spool and starts the delivery task on the current Tokio runtime. The
    /// first connection (and the schema migration) happen on that task: a server that is
    /// down at start only delays the writes.
    pub fn start(settings: SinkSettings) -> Result<(Self, JoinHandle<()>), PgError> {
        let spool = Spool::open(&settings.spool_dir)?;
        let (done, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            memory: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            counters: Counters::default(),
            stopping: AtomicBool::new(false),
            done,
        });
        shared.counters.spooled.store(spool.rows(), Relaxed);
        if !spool.is_empty() {
            tracing::info!(
                results = spool.rows(),
                "PostgreSQL: results spooled by an earlier run will be written first"
            );
        }
        let task = tokio::spawn(Task::new(Arc::clone(&shared), settings, spool).run());
        Ok((Self { shared }, task))
    }

    /// Queues results for writing, in order.
    pub fn send(&self, rows: impl IntoIterator<Item = CheckRow>) {
        let mut memory = self.shared.memory();
        let before = memory.len();
        memory.extend(rows);
        let added = memory.len() - before;
        drop(memory);
        if added > 0 {
            self.shared
                .counters
                .received
                .fetch_add(added as u64, Relaxed);
            self.shared.wake.notify_one();
        }
    }

    /// What the sink has done so far.
    pub fn stats(&self) -> PgStats {
        self.shared.stats()
    }

    /// Writes what is queued (or spools it, if the server cannot be reached), then stops
    /// the task; its final stats.
    pub async fn shutdown(&self) -> PgStats {
        let mut done = self.shared.done.subscribe();
        self.shared.stopping.store(true, Relaxed);
        self.shared.wake.notify_one();
        let _ = done.wait_for(|d| *d).await;
        self.shared.stats()
    }
}

struct Task {
    shared: Arc<Shared>,
    settings: SinkSettings,
    spool: Spool,
    client: Option<Client>,
    backoff: Duration,
    /// Whether the current outage was logged (once per outage, not per attempt).
    outage_logged: bool,
}

impl Task {
    fn new(shared: Arc<Shared>, settings: SinkSettings, spool: Spool) -> Self {
        Self {
            shared,
            settings,
            spool,
            client: None,
            backoff: FIRST_BACKOFF,
            outage_logged: false,
        }
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.load(Relaxed)
    }

    async fn run(mut self) {
        loop {
            let idle = self.spool.is_empty() && self.shared.memory().is_empty();
            if idle {
                if self.stopping() {
                    break;
                }
                let _ =
                    tokio::time::timeout(self.settings.flush_interval, self.shared.wake.notified())
                        .await;
                continue;
            }
            if self.client.is_none() && !self.connect().await {
                self.spill();
                if self.stopping() {
                    break;
                }
                self.pause().await;
                continue;
            }
            if !self.write_head().await && self.stopping() {
                break;
            }
        }
        self.spill();
        self.shared.counters.connected.store(false, Relaxed);
        // send_replace: the value changes even while nobody is subscribed yet.
        self.shared.done.send_replace(true);
    }

    /// Connects and migrates; false (logged once per outage) when it failed.
    async fn connect(&mut self) -> bool {
        let attempt = async {
            let mut client = self.settings.connect.connect().await?;
            let applied = crate::schema::migrate(&mut client).await?;
            Ok::<_, PgError>((client, applied))
        };
        match attempt.await {
            Ok((client, applied)) => {
                tracing::info!(
                    target = %self.settings.connect.target(),
                    migrations_applied = ?applied,
                    "PostgreSQL connected, schema current"
                );
                self.client = Some(client);
                self.backoff = FIRST_BACKOFF;
                self.outage_logged = false;
                self.shared.counters.connected.store(true, Relaxed);
                true
            }
            Err(e) => {
                self.shared.counters.failures.fetch_add(1, Relaxed);
                if !self.outage_logged {
                    tracing::warn!(
                        error = %e,
                        "PostgreSQL unreachable: results are spooled to {} and written when it is back",
                        self.settings.spool_dir.display()
                    );
                    self.outage_logged = true;
                }
                false
            }
        }
    }

    async fn pause(&mut self) {
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(self.settings.retry_max_backoff);
        let _ = tokio::time::timeout(pause, self.shared.wake.notified()).await;
    }

    /// Writes the oldest batch; false when the connection failed.
    async fn write_head(&mut self) -> bool {
        let from_spool = !self.spool.is_empty();
        let rows: Vec<CheckRow> = if from_spool {
            match self.spool.oldest() {
                Ok(Some((_, rows))) => rows,
                Ok(None) => return true,
                Err(e) => {
                    // An unreadable spool file cannot be retried into shape: set aside.
                    tracing::error!(error = %e, "PostgreSQL spool file unreadable, moved aside");
                    self.drop_oldest_spool_file();
                    return true;
                }
            }
        } else {
            let memory = self.shared.memory();
            memory
                .iter()
                .take(self.settings.batch_max_rows)
                .cloned()
                .collect()
        };
        let Some(client) = self.client.as_mut() else {
            return false;
        };
        let result =
            match tokio::time::timeout(STATEMENT_TIMEOUT, crate::insert::insert(client, &rows))
                .await
            {
                Ok(r) => r,
                Err(_) => {
                    self.lost_connection("no answer within 30 s");
                    return false;
                }
            };
        match result {
            Ok(inserted) => {
                let c = &self.shared.counters;
                c.inserted.fetch_add(inserted, Relaxed);
                c.duplicates
                    .fetch_add(rows.len() as u64 - inserted.min(rows.len() as u64), Relaxed);
                self.done_with_head(from_spool, rows.len());
                true
            }
            Err(e) if !e.is_data() => {
                self.lost_connection(&e.to_string());
                false
            }
            Err(e) => {
                tracing::error!(error = %e, results = rows.len(), "PostgreSQL refused a batch: kept in {}", self.settings.deadletter_dir.display());
                self.dead_letter(&rows, &e.to_string());
                self.shared
                    .counters
                    .refused
                    .fetch_add(rows.len() as u64, Relaxed);
                self.done_with_head(from_spool, rows.len());
                true
            }
        }
    }

    fn done_with_head(&mut self, from_spool: bool, n: usize) {
        if from_spool {
            match self.spool.remove_oldest() {
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "removing a written PostgreSQL spool file"),
            }
            self.shared
                .counters
                .spooled
                .store(self.spool.rows(), Relaxed);
        } else {
            let mut memory = self.shared.memory();
            let n = n.min(memory.len());
            memory.drain(..n);
        }
    }

    fn lost_connection(&mut self, why: &str) {
        tracing::warn!(
            reason = why,
            "PostgreSQL connection lost: results are spooled until it is back"
        );
        self.outage_logged = true;
        self.client = None;
        self.shared.counters.failures.fetch_add(1, Relaxed);
        self.shared.counters.connected.store(false, Relaxed);
        self.spill();
    }

    /// Moves every result in memory to the end of the spool (in batches), then keeps the
    /// spool within its size, dropping (and counting) the oldest files past it.
    fn spill(&mut self) {
        loop {
            let batch: Vec<CheckRow> = {
                let memory = self.shared.memory();
                memory
                    .iter()
                    .take(self.settings.batch_max_rows)
                    .cloned()
                    .collect()
            };
            if batch.is_empty() {
                break;
            }
            if let Err(e) = self.spool.append(&batch) {
                // The rows stay in memory; the next round tries again.
                tracing::error!(error = %e, "spooling PostgreSQL results");
                break;
            }
            let mut memory = self.shared.memory();
            let n = batch.len().min(memory.len());
            memory.drain(..n);
        }
        match self.spool.evict_over(self.settings.spool_max_bytes) {
            Ok(evicted) if !evicted.is_empty() => {
                let rows: u64 = evicted.iter().map(|f| f.rows()).sum();
                self.shared.counters.dropped.fetch_add(rows, Relaxed);
                tracing::error!(
                    results = rows,
                    limit = self.settings.spool_max_bytes,
                    "PostgreSQL spool full (postgres.spool_max_bytes): the oldest results were dropped"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "trimming the PostgreSQL spool"),
        }
        self.shared
            .counters
            .spooled
            .store(self.spool.rows(), Relaxed);
    }

    fn drop_oldest_spool_file(&mut self) {
        if let Ok(Some(f)) = self.spool.remove_oldest() {
            self.shared.counters.dropped.fetch_add(f.rows(), Relaxed);
        }
        self.shared
            .counters
            .spooled
            .store(self.spool.rows(), Relaxed);
    }

    fn dead_letter(&self, rows: &[CheckRow], reason: &str) {
        let dir = &self.settings.deadletter_dir;
        let mut text = Vec::new();
        for r in rows {
            let line = serde_json::json!({ "reason": reason, "result": r });
            serde_json::to_writer(&mut text, &line).expect("JSON values serialize");
            text.push(b'\n');
        }
        let name = format!(
            "{}-{}.ndjson",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            rows.first().map_or(0, |r| r.start_us)
        );
        let written = (|| {
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(".tmp-{name}"));
            std::fs::write(&tmp, &text)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, dir.join(&name))?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if let Err(e) = written {
            tracing::error!(error = %e, "writing the PostgreSQL dead letter: {} results lost", rows.len());
        }
    }
}
