//! # telltale-influx
//!
//! The InfluxDB sink, at the end of the data flow:
//!
//! ```text
//! processor: RollupRow, SloStatus, ProbeEvent, PipelinePoint
//!     ──send()──▶ [line protocol] ──▶ memory ──(outage)──▶ <data>/spool/influx/
//!     ──HTTP POST, gzip, batches, retries──▶ InfluxDB 1.x / 2.x / 3.x (or VictoriaMetrics)
//!     ──InfluxQL──▶ Grafana
//!                   refused batches ──▶ <data>/deadletter/influx/date=…/*.lp
//! ```
//!
//! - [`line`]: escaping and [`LineBuilder`], one line of line protocol;
//! - [`points`]: the measurements (`service_rollup`, `slo_status`, `probe`, `probe_hop`,
//!   `pipeline`, `pipeline_rejects`) and the [`ToLineProtocol`] trait;
//! - [`InfluxSink`]: the non-blocking handle and its delivery task (batching, gzip,
//!   retries with backoff and `Retry-After`, the spool, dead letters), with
//!   [`InfluxStats`] for `/metrics`.
//!
//! Settings are `telltale_core::config::InfluxConfig` (`[influx]`, `INFLUX_*`). The
//! schema, the environment variables and the delivery guarantees are in
//! `docs/influxdb.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod error;
pub mod line;
pub mod points;
mod sink;
mod spool;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::InfluxError;
pub use line::LineBuilder;
pub use points::{PipelinePoint, ToLineProtocol, encode};
pub use sink::{DEADLETTER_SUBDIR, InfluxSink, InfluxStats, InfluxStatsReader, SPOOL_SUBDIR};
pub use telltale_core::config::{InfluxApi, InfluxConfig};
