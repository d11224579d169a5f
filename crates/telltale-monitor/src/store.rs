//! Where monitors live between restarts: the [`MonitorStore`] trait (load all, add,
//! remove), and its implementation without PostgreSQL, [`FileStore`]:
//! `<data_dir>/monitors/monitors.json`, rewritten atomically (a temp file, fsync, rename,
//! fsync of the folder) on every change. A PostgreSQL store implements the same trait.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::spec::Monitor;

/// Why the monitor file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing it failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A store other than the file (PostgreSQL) failed.
    #[error("{store}: {message}")]
    Backend {
        /// Which store, e.g. `PostgreSQL (urltargets)`.
        store: &'static str,
        /// What failed.
        message: String,
    },
    /// It is not a list of monitors.
    #[error("{} is not a valid monitor list ({message}); fix or move it away", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// serde's message, with the line.
        message: String,
    },
}

/// Where monitors are kept. Calls are made one at a time (the registry holds a lock), from
/// blocking code: an implementation may block on its I/O.
pub trait MonitorStore: Send + Sync + std::fmt::Debug {
    /// Every stored monitor, in the order they were added.
    fn load_all(&self) -> Result<Vec<Monitor>, StoreError>;
    /// Keeps `monitor` (its id is not stored yet: the caller checked).
    fn add(&self, monitor: &Monitor) -> Result<(), StoreError>;
    /// Forgets the monitor with `id`; `false` when there was none.
    fn remove(&self, id: &str) -> Result<bool, StoreError>;
}

impl MonitorStore for FileStore {
    fn load_all(&self) -> Result<Vec<Monitor>, StoreError> {
        self.load()
    }

    fn add(&self, monitor: &Monitor) -> Result<(), StoreError> {
        let mut all = self.load()?;
        all.retain(|m| m.id != monitor.id);
        all.push(monitor.clone());
        self.save(&all)
    }

    fn remove(&self, id: &str) -> Result<bool, StoreError> {
        let mut all = self.load()?;
        let before = all.len();
        all.retain(|m| m.id != id);
        if all.len() == before {
            return Ok(false);
        }
        self.save(&all)?;
        Ok(true)
    }
}

/// The monitors of a file.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// The store at `path` (created at the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored monitor (none before the first save).
    pub fn load(&self) -> Result<Vec<Monitor>, StoreError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Io {
                    op: "reading",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        serde_json::from_str(&text).map_err(|e| StoreError::Invalid {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Replaces the stored monitors with `monitors`, atomically.
    pub fn save(&self, monitors: &[Monitor]) -> Result<(), StoreError> {
        let io = |op| {
            let path = self.path.clone();
            move |source| StoreError::Io { op, path, source }
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io("creating the folder of"))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut text = serde_json::to_vec_pretty(monitors).unwrap_or_default();
        text.push(b'\n');
        let mut f = fs::File::create(&tmp).map_err(io("writing"))?;
        f.write_all(&text).map_err(io("writing"))?;
        f.sync_all().map_err(io("syncing"))?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(io("renaming into"))?;
        #[cfg(unix)]
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the folder of"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_replace_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("monitors.json"));
        assert!(store.load().unwrap().is_empty());
        let a = Monitor::new("https://a.example/", "1m").unwrap();
        let b = Monitor::new("https://b.example/", "30m").unwrap();
        store.save(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(store.load().unwrap(), vec![a.clone(), b]);
        store.save(std::slice::from_ref(&a)).unwrap();
        assert_eq!(store.load().unwrap(), vec![a]);
        assert!(!dir.path().join("monitors.json.tmp").exists());
    }

    #[test]
    fn the_trait_adds_and_removes_one_monitor() {
        let dir = tempfile::tempdir().unwrap();
        let store: &dyn MonitorStore = &FileStore::new(dir.path().join("m").join("monitors.json"));
        let a = Monitor::new("https://a.example/", "1m").unwrap();
        let b = Monitor::new("https://b.example/", "5m").unwrap();
        store.add(&a).unwrap();
        store.add(&b).unwrap();
        assert_eq!(store.load_all().unwrap(), vec![a.clone(), b.clone()]);
        assert!(store.remove(&a.id).unwrap());
        assert!(!store.remove(&a.id).unwrap());
        assert_eq!(store.load_all().unwrap(), vec![b]);
    }

    #[test]
    fn a_broken_file_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("monitors.json");
        fs::write(&path, "[{\"id\":1}]").unwrap();
        let e = FileStore::new(&path).load().unwrap_err().to_string();
        assert!(
            e.contains("monitors.json") && e.contains("move it away"),
            "{e}"
        );
    }
}
