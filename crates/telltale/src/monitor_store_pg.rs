//! The monitor list in PostgreSQL (`urltargets`), when `[postgres]` is on: the
//! [`MonitorStore`] the registry uses instead of `<data_dir>/monitors/monitors.json`. The
//! registry calls it from blocking code, one call at a time; each call runs on the
//! runtime (`Handle::block_on`) over one connection, made (and the schema migrated) on
//! first use and again after an error. At the first start over an empty table, the
//! monitors of an existing `monitors.json` are copied in, so switching stores keeps them.

use telltale_monitor::{FileStore, Monitor, MonitorStore, StoreError};
use telltale_postgres::ConnectSettings;
use telltale_postgres::monitors::{self, StoredMonitor};
use tokio::runtime::Handle;

const STORE: &str = "PostgreSQL (urltargets)";

/// `urltargets` as a [`MonitorStore`].
#[derive(Debug)]
pub struct PgMonitorStore {
    handle: Handle,
    connect: ConnectSettings,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// Monitors to copy in when the table has none (the file store of earlier runs).
    import: Option<FileStore>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        store: STORE,
        message: e.to_string(),
    }
}

fn stored(m: &Monitor) -> StoredMonitor {
    StoredMonitor {
        monitor_id: m.id.clone(),
        url: m.url.clone(),
        frequency_min: i16::try_from(m.every.minutes()).unwrap_or(i16::MAX),
    }
}

impl PgMonitorStore {
    /// A store over `connect`, on the runtime of `handle`; `import`: the file store whose
    /// monitors are copied in when the table is empty.
    pub fn new(handle: Handle, connect: ConnectSettings, import: Option<FileStore>) -> Self {
        Self {
            handle,
            connect,
            client: tokio::sync::Mutex::new(None),
            import,
        }
    }

    /// Runs `op` with a connected client; a failed call drops the connection so the next
    /// one reconnects.
    fn with_client<T>(
        &self,
        op: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, telltale_postgres::PgError>,
    ) -> Result<T, StoreError> {
        self.handle.block_on(async {
            let mut guard = self.client.lock().await;
            if guard.is_none() {
                let mut client = self.connect.connect().await.map_err(backend)?;
                telltale_postgres::migrate(&mut client)
                    .await
                    .map_err(backend)?;
                *guard = Some(client);
            }
            let client = guard.as_ref().expect("connected above");
            let result = op(client).await;
            if result.is_err() {
                *guard = None;
            }
            result.map_err(backend)
        })
    }
}

impl MonitorStore for PgMonitorStore {
    fn load_all(&self) -> Result<Vec<Monitor>, StoreError> {
        let mut rows = self.with_client(async |c| monitors::list(c).await)?;
        if rows.is_empty()
            && let Some(file) = &self.import
            && file.path().exists()
        {
            let old = file.load()?;
            for m in &old {
                self.add(m)?;
            }
            if !old.is_empty() {
                tracing::info!(
                    monitors = old.len(),
                    from = %file.path().display(),
                    "URL monitors copied into PostgreSQL (urltargets), which keeps them from now on"
                );
            }
            rows = self.with_client(async |c| monitors::list(c).await)?;
        }
        rows.iter()
            .map(|r| {
                Monitor::new(&r.url, &format!("{}m", r.frequency_min))
                    .map_err(|e| backend(format!("urltargets row {}: {e}", r.monitor_id)))
            })
            .collect()
    }

    fn add(&self, monitor: &Monitor) -> Result<(), StoreError> {
        let row = stored(monitor);
        self.with_client(async move |c| monitors::add(c, &row).await.map(|_| ()))
    }

    fn remove(&self, id: &str) -> Result<bool, StoreError> {
        self.with_client(async move |c| monitors::remove(c, id).await)
    }
}
