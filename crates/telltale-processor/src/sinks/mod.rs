//! Sinks: where rollups, probes and SLO evaluations go besides the lake. Each is a folder
//! named after it (`influxdb/`, `alertmanager/`); adding one (PostgreSQL, Kafka) is a new
//! folder implementing [`Sink`] and one line where the binary builds the list.
//!
//! Sinks are called on the writer thread, in event-time order, by
//! [`crate::outputs::Outputs`]: they must not block. Each hands its work to its own task
//! (a bounded channel with retries, spooling or dropping as its docs say) and returns.
//!
//! The lake is not a `Sink`: it is written by the writer thread itself at write-ahead log
//! positions, synchronously and with retries at the same position, because acknowledged
//! data must reach it exactly once (see `docs/durability.md`). What a sink sees is derived
//! from what the lake holds.

pub mod alertmanager;
pub mod influxdb;
pub mod postgres;
mod sink;

pub use sink::{Evaluation, Sink};
