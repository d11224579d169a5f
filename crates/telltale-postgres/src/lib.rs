//! URL monitor results in PostgreSQL (issue #17): the sink at the end of the monitor
//! path.
//!
//! ```text
//! telltale-monitor ─result lines─▶ processor pipeline (WAL, lake) ─▶ sinks/postgres
//!   ─CheckRow─▶ PostgresSink (memory ▸ spool/postgres/ while down) ─batched INSERT─▶
//!   urltargets, monitor_results, view_1m … view_30m
//! ```
//!
//! - `schema`: versioned migrations (refinery, `migrations/`), applied at connect under an
//!   advisory lock; safe to run twice and from two processors at once.
//! - `connect`: `[postgres]` and `POSTGRES_URL` / `DATABASE_URL` / `POSTGRES_PASSWORD` to
//!   a connection, TLS (rustls, verified) as the URL's `sslmode` says.
//! - `insert`: one transaction per batch, arrays as parameters; a result already stored
//!   (same monitor and start time) inserts nothing, so retries and replays are harmless.
//! - `spool`: results waiting on disk, in order, while the server is unreachable.
//! - `sink`: the delivery task and the producers' handle, [`PostgresSink`].
//! - `monitors`: the monitors themselves in `urltargets` (add, remove, list).
//! - `row`: [`CheckRow`], one result as the tables hold it.

mod connect;
mod error;
mod insert;
pub mod monitors;
mod row;
mod schema;
mod sink;
mod spool;
#[cfg(feature = "testing")]
pub mod testing;

pub use connect::ConnectSettings;
pub use error::PgError;
pub use insert::insert;
pub use row::{CheckRow, FREQUENCIES};
pub use schema::migrate;
pub use sink::{DEADLETTER_SUBDIR, PgStats, PostgresSink, SPOOL_SUBDIR, SinkSettings};
