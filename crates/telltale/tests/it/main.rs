//! The integration tests of the `telltale` binary, in one test binary (one link of the
//! whole dependency tree instead of one per file). Each module is a former
//! `tests/<name>.rs`; the helpers they share are in [`support`].
//!
//! Every child process is held by a [`support::ChildGuard`], so a failing test leaves
//! none behind, and every `telltale` server listens on a port the system picks and
//! prints (`--listen 127.0.0.1:0 --print-address`): no test hands a port to a child.

mod support;

mod access;
mod access_log;
mod alerts;
mod cli;
mod compose;
mod config_files;
mod crash;
mod disk;
mod fsync;
mod grafana_queries;
mod loadtest;
mod monitor;
mod monitor_results;
mod monitor_schedule;
mod network_path_dashboard;
mod nginx;
mod otlp;
mod overload;
mod postgres;
mod probe;
mod rate_limit;
mod secrets;
mod shutdown;
mod spike;
mod sso;
mod status_page;
mod time;
mod tls;
