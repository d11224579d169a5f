//! # telltale-core
//!
//! The pure core of telltale, in the middle of the data flow:
//!
//! ```text
//! simulator / HTTP / file / stdin ──lines──▶ [parse] ──Record──▶ [flag] ──FlaggedEvent──▶ lake
//!                                                                   └──▶ [rollup] ──RollupRow──▶ lake, InfluxDB
//! ```
//!
//! Event model, configuration, line validation, flagging, rollups, SLO math and the
//! autoscaler's policy. No I/O, no async runtime: every function here takes values and
//! returns values, so it is tested directly and can run on any thread.

pub mod access_log;
pub mod auth;
pub mod autoscale;
pub mod check_line;
pub mod check_sli;
pub mod config;
pub mod event;
pub mod flag;
pub mod parse;
pub mod probe_sli;
pub mod rollup;
pub mod slo;

pub use config::{ConfigError, PipelineConfig, ServiceCatalog, ServicePolicy, SloWindow};
pub use event::{FlaggedEvent, HttpCheckEvent, ProbeEvent, ProbeHop, Record, ServiceEvent};
pub use parse::{Limits, RejectReason, Rejection, parse_line};
pub use rollup::{RollupRow, Rollups};
