//! The monitors a server runs: those of the store (added through the API) and those of
//! the config file, each with its schedule and the results kept in memory for its
//! availability. The API, the status page and the CLI all go through it.
//!
//! ```text
//! POST /api/v1/monitors ─▶ add: check the URL and frequency ─▶ store ─▶ scheduler (now)
//! DELETE …/{id}         ─▶ remove: store ─▶ scheduler
//! scheduler results     ─▶ record: last result, the last `keep` up/down for availability
//! GET /api/v1/monitors  ─▶ list
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::result::CheckResult;
use crate::scheduler::{FirstCheck, Scheduler};
use crate::spec::{Every, Monitor, SpecError};
use crate::store::{MonitorStore, StoreError};

/// Why a change was refused; each is one status code of the API.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The URL or the frequency is not valid (`field` names which).
    #[error(transparent)]
    Invalid(#[from] SpecError),
    /// The same URL and frequency is a monitor already.
    #[error(
        "{url} is monitored every {every} already (monitor {id}): one monitor per URL and frequency"
    )]
    Duplicate {
        /// The existing monitor's id.
        id: String,
        /// Its URL.
        url: String,
        /// Its frequency.
        every: Every,
    },
    /// No monitor has this id.
    #[error("no monitor has the id {0:?}: list them with GET /api/v1/monitors")]
    NotFound(String),
    /// The monitor is listed in the config file, so the API cannot remove it.
    #[error(
        "monitor {id} ({url}) is listed in the config ([[monitors.targets]]): remove it there and restart"
    )]
    FromConfig {
        /// Its id.
        id: String,
        /// Its URL.
        url: String,
    },
    /// The store failed.
    #[error("the monitor store failed: {0}")]
    Store(#[from] StoreError),
}

/// Where a monitor comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Added through the API (kept in the store).
    Api,
    /// Listed in `[[monitors.targets]]`.
    Config,
}

/// A monitor as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorView {
    /// Stable id.
    pub id: String,
    /// The URL.
    pub url: String,
    /// The frequency, `"5m"`.
    pub every: Every,
    /// `api` or `config`.
    pub source: Source,
    /// Results kept (at most the configured number).
    pub checks: usize,
    /// Of them, up.
    pub up: usize,
    /// `up / checks`, `null` before the first result.
    pub availability: Option<f64>,
    /// The newest result.
    pub last: Option<CheckResult>,
}

#[derive(Debug)]
struct Entry {
    monitor: Monitor,
    source: Source,
    recent: VecDeque<bool>,
    last: Option<CheckResult>,
}

impl Entry {
    fn view(&self) -> MonitorView {
        let up = self.recent.iter().filter(|u| **u).count();
        let checks = self.recent.len();
        MonitorView {
            id: self.monitor.id.clone(),
            url: self.monitor.url.clone(),
            every: self.monitor.every,
            source: self.source,
            checks,
            up,
            availability: (checks > 0).then(|| up as f64 / checks as f64),
            last: self.last.clone(),
        }
    }
}

/// The running monitors; share it in an `Arc`. Changes are made under one lock, store
/// first, so the file and the schedule never disagree.
#[derive(Debug)]
pub struct Registry {
    store: Arc<dyn MonitorStore>,
    scheduler: Scheduler,
    keep: usize,
    entries: Mutex<Vec<Entry>>,
}

impl Registry {
    /// Loads the store, adds the config's `listed` monitors and schedules them all, each
    /// first checked at its offset. Must be called inside a tokio runtime; the store is
    /// read on the calling thread.
    pub fn start(
        store: Arc<dyn MonitorStore>,
        listed: Vec<Monitor>,
        scheduler: Scheduler,
        keep: usize,
    ) -> Result<Self, StoreError> {
        let mut entries: Vec<Entry> = Vec::new();
        let new = |monitor: Monitor, source| Entry {
            monitor,
            source,
            recent: VecDeque::new(),
            last: None,
        };
        for m in listed {
            if !entries.iter().any(|e| e.monitor.id == m.id) {
                entries.push(new(m, Source::Config));
            }
        }
        for m in store.load_all()? {
            if !entries.iter().any(|e| e.monitor.id == m.id) {
                entries.push(new(m, Source::Api));
            }
        }
        for e in &entries {
            scheduler.add(&e.monitor, FirstCheck::AtOffset);
        }
        tracing::info!(
            monitors = entries.len(),
            from_config = entries
                .iter()
                .filter(|e| e.source == Source::Config)
                .count(),
            "URL monitors scheduled"
        );
        Ok(Self {
            store,
            scheduler,
            keep: keep.max(1),
            entries: Mutex::new(entries),
        })
    }

    /// The scheduler (for its counters, and to stop it).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the monitor of `url` and `every` as a user gave them, stores it and checks it
    /// at once. Blocks on the store.
    pub fn add(&self, url: &str, every: &str) -> Result<MonitorView, RegistryError> {
        let monitor = Monitor::new(url, every)?;
        let mut entries = self.lock();
        if let Some(e) = entries.iter().find(|e| e.monitor.id == monitor.id) {
            return Err(RegistryError::Duplicate {
                id: e.monitor.id.clone(),
                url: e.monitor.url.clone(),
                every: e.monitor.every,
            });
        }
        self.store.add(&monitor)?;
        self.scheduler.add(&monitor, FirstCheck::Now);
        tracing::info!(id = %monitor.id, url = %monitor.url, every = %monitor.every, "monitor added");
        let entry = Entry {
            monitor,
            source: Source::Api,
            recent: VecDeque::new(),
            last: None,
        };
        let view = entry.view();
        entries.push(entry);
        Ok(view)
    }

    /// Removes the monitor `id` from the store and the schedule. Blocks on the store.
    pub fn remove(&self, id: &str) -> Result<MonitorView, RegistryError> {
        let mut entries = self.lock();
        let Some(i) = entries.iter().position(|e| e.monitor.id == id) else {
            return Err(RegistryError::NotFound(id.to_owned()));
        };
        if entries[i].source == Source::Config {
            return Err(RegistryError::FromConfig {
                id: id.to_owned(),
                url: entries[i].monitor.url.clone(),
            });
        }
        self.store.remove(id)?;
        self.scheduler.remove(id);
        let entry = entries.remove(i);
        tracing::info!(id, url = %entry.monitor.url, "monitor removed");
        Ok(entry.view())
    }

    /// Every monitor with its last result and availability, in the order they were added.
    pub fn list(&self) -> Vec<MonitorView> {
        self.lock().iter().map(Entry::view).collect()
    }

    /// Keeps `result` for its monitor (ignored when the monitor is gone).
    pub fn record(&self, result: &CheckResult) {
        let Some(id) = result.monitor_id.as_deref() else {
            return;
        };
        let mut entries = self.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.monitor.id == id) {
            if e.recent.len() == self.keep {
                e.recent.pop_front();
            }
            e.recent.push_back(result.is_up());
            e.last = Some(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{Check, SchedulerSettings, SchedulerStats};
    use crate::store::FileStore;
    use std::future::Future;
    use std::pin::Pin;

    struct Up;

    impl Check for Up {
        fn check<'a>(
            &'a self,
            url: &'a str,
        ) -> Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>> {
            Box::pin(async move {
                let mut r = CheckResult::failed(
                    url,
                    String::new(),
                    1.0,
                    crate::CheckError::Http,
                    String::new(),
                );
                r.error = None;
                r.status_code = Some(if url.contains("down") { 503 } else { 200 });
                r
            })
        }
    }

    fn registry(
        dir: &std::path::Path,
        listed: Vec<Monitor>,
    ) -> (Registry, tokio::sync::mpsc::Receiver<CheckResult>) {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let scheduler = Scheduler::new(
            Arc::new(Up),
            SchedulerSettings::default(),
            tx,
            Arc::new(SchedulerStats::default()),
        );
        let store = Arc::new(FileStore::new(dir.join("monitors.json")));
        (Registry::start(store, listed, scheduler, 3).unwrap(), rx)
    }

    #[tokio::test(start_paused = true)]
    async fn adds_refuse_duplicates_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (r, mut rx) = registry(dir.path(), Vec::new());
        let a = r.add("https://a.example/", "5m").unwrap();
        assert!(matches!(
            r.add("https://a.example", "5m"),
            Err(RegistryError::Duplicate { .. })
        ));
        assert!(
            matches!(r.add("ftp://a", "5m"), Err(RegistryError::Invalid(e)) if e.field == "url")
        );
        assert!(
            matches!(r.add("https://a.example/", "7m"), Err(RegistryError::Invalid(e)) if e.field == "every")
        );
        r.add("https://a.example/", "1m").unwrap();
        let first = tokio::time::timeout(std::time::Duration::from_secs(60), rx.recv())
            .await
            .expect("checked at once")
            .unwrap();
        r.record(&first);
        r.scheduler().stop();
        let (again, _rx) = registry(dir.path(), Vec::new());
        let ids: Vec<String> = again.list().into_iter().map(|v| v.id).collect();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0], a.id);
        assert!(matches!(
            again.remove("nope"),
            Err(RegistryError::NotFound(_))
        ));
        again.remove(&a.id).unwrap();
        assert_eq!(again.list().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn availability_is_over_the_results_kept() {
        let dir = tempfile::tempdir().unwrap();
        let listed = vec![Monitor::new("https://down.example/", "1m").unwrap()];
        let (r, _rx) = registry(dir.path(), listed.clone());
        let v = &r.list()[0];
        assert_eq!((v.source, v.availability), (Source::Config, None));
        assert!(matches!(
            r.remove(&v.id),
            Err(RegistryError::FromConfig { .. })
        ));
        let mut result = Up.check("https://up.example/").await;
        result.monitor_id = Some(v.id.clone());
        let mut down = result.clone();
        down.status_code = Some(503);
        for res in [&down, &down, &result, &result, &result] {
            r.record(res);
        }
        let v = &r.list()[0];
        assert_eq!(
            (v.checks, v.up, v.availability),
            (3, 3, Some(1.0)),
            "the last 3 kept"
        );
        r.record(&down);
        assert_eq!(r.list()[0].up, 2);
        assert_eq!(r.list()[0].last.as_ref().unwrap().status_code, Some(503));
    }
}
