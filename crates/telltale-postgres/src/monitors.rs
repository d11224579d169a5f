//! The monitors in `urltargets`: the PostgreSQL store of the monitor list (when
//! `[postgres]` is on, instead of `<data_dir>/monitors/monitors.json`). A removed
//! monitor keeps its row with `removed_at` set, so its results keep their target; adding
//! it again clears `removed_at`.

use tokio_postgres::Client;

use crate::error::PgError;

/// A monitor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMonitor {
    /// telltale's monitor id.
    pub monitor_id: String,
    /// The URL.
    pub url: String,
    /// Minutes between checks.
    pub frequency_min: i16,
}

fn query_err(what: &str) -> impl FnOnce(tokio_postgres::Error) -> PgError + '_ {
    move |source| PgError::Query {
        what: what.to_owned(),
        source,
    }
}

/// The monitors not removed, oldest first.
pub async fn list(client: &Client) -> Result<Vec<StoredMonitor>, PgError> {
    let rows = client
        .query(
            "SELECT monitor_id, urltarget, monitor_frequency FROM urltargets \
             WHERE removed_at IS NULL ORDER BY urltargets_pk",
            &[],
        )
        .await
        .map_err(query_err("listing the monitors"))?;
    Ok(rows
        .iter()
        .map(|r| StoredMonitor {
            monitor_id: r.get(0),
            url: r.get(1),
            frequency_min: r.get(2),
        })
        .collect())
}

/// Adds `m` (or brings a removed one back); false when it was already there.
pub async fn add(client: &Client, m: &StoredMonitor) -> Result<bool, PgError> {
    let n = client
        .execute(
            "INSERT INTO urltargets (monitor_id, urltarget, monitor_frequency) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (monitor_id) DO UPDATE SET removed_at = NULL \
             WHERE urltargets.removed_at IS NOT NULL",
            &[&m.monitor_id, &m.url, &m.frequency_min],
        )
        .await
        .map_err(query_err("adding a monitor"))?;
    Ok(n == 1)
}

/// Marks the monitor removed; false when there was none with that id.
pub async fn remove(client: &Client, monitor_id: &str) -> Result<bool, PgError> {
    let n = client
        .execute(
            "UPDATE urltargets SET removed_at = now() \
             WHERE monitor_id = $1 AND removed_at IS NULL",
            &[&monitor_id],
        )
        .await
        .map_err(query_err("removing a monitor"))?;
    Ok(n == 1)
}
