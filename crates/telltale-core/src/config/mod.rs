//! Configuration: the two files on disk, as types, and their checks.
//!
//! Where it sits in the data flow:
//!
//! ```text
//! config/services.toml ─text─▶ ServiceCatalogFile ─from_file()─▶ ServiceCatalog
//!                              (validate, apply defaults)          └─▶ ServicePolicy per
//!                                                                      service: flagger,
//!                                                                      rollups, SLO engine
//! config/telltale.toml ─text─▶ PipelineConfig ─with_env(), validate()─▶
//!        + INFLUX_*, ALERTMANAGER_URL          SomeSettings::from_config() ─▶ each component
//! ```
//!
//! The binary reads the files and the environment (this crate does no I/O), hands the text
//! and a label for the file to [`ServiceCatalog::from_toml_str`] and
//! [`PipelineConfig::from_toml_str`], and every problem comes back as one [`ConfigError`]
//! that names the file, the key and the fix.
//!
//! The files of this folder:
//!
//! - `catalog.rs`, `services.toml`: [`ServiceCatalogFile`] as written, [`ServiceCatalog`]
//!   and [`ServicePolicy`] with the defaults applied, [`SloWindow`], [`AlertTier`].
//! - `pipeline.rs`, `telltale.toml`: [`PipelineConfig`] and its small sections
//!   ([`ServerConfig`], [`LakeConfig`], [`RollupConfig`], [`ValidationConfig`],
//!   [`LogConfig`], [`WalConfig`] / [`WalSync`]).
//! - `influx.rs`, `[influx]`: [`InfluxConfig`], [`InfluxApi`], [`Secret`], the `INFLUX_*`
//!   overrides.
//! - `alertmanager.rs`, `[alertmanager]`: [`AlertmanagerConfig`], `ALERTMANAGER_URL`.
//! - `tls.rs`, `[server.tls]` and an output's `tls` table: [`ServerTlsConfig`],
//!   [`ClientTlsConfig`] (paths only; `telltale-tls` reads the files).
//! - `formats.rs`, `[formats.<name>]`: [`AccessLogFormat`], the mapping of a JSON access
//!   log to events, and its presets (the mapper is `telltale_core::access_log`).
//! - `oidc.rs`, `[server.oidc]`: [`OidcConfig`], single sign-on (URLs, groups and
//!   paths only; the binary reads the secret and the session key).
//! - `monitors.rs`, `[monitors]`: [`MonitorsConfig`], scheduled URL checks and the
//!   allowed frequencies ([`ALLOWED_MINUTES`]).
//! - `otlp.rs`, `[otlp]`: [`OtlpConfig`], how OTLP log records map to events.
//! - `postgres.rs`, `[postgres]`: [`PostgresConfig`], where URL monitor results are
//!   written (`POSTGRES_URL` / `DATABASE_URL`, `POSTGRES_PASSWORD`).
//! - `autoscale.rs`, `[autoscale]`: [`AutoscaleConfig`] (the policy that reads it is
//!   [`crate::autoscale`]).
//!
//! # Convention
//!
//! - A config type is a plain serde struct mirroring its TOML table, with
//!   `#[serde(deny_unknown_fields, default)]` (a typo is an error, a missing key is its
//!   default), a `Default` impl that is the documented default, and a doc comment on every
//!   field (the doc is what `config/telltale.toml` / `config/services.toml` explain).
//! - Each file, and each section with rules of its own, has `validate(&self, file)`
//!   (`ServiceCatalog::from_file` for the catalogue, which validates while applying
//!   defaults); the file-level `validate` checks its small sections inline and calls the
//!   sections' own. Problems are reported with `invalid(file, key, message)`: file, key,
//!   what is wrong with the value, and the fix, e.g.
//!   ``t.toml: `lake.flush_rows`: must be at least 1, e.g. 100000``.
//! - Secrets never come from TOML: they are `#[serde(skip)]` [`Secret`]s filled from the
//!   environment by a `with_env(get)` that takes a lookup closure.
//! - Config types hold what the user wrote, nothing derived. A component's runtime settings
//!   are built from them by `SomeSettings::from_config(&SomeConfig, …)` in the component's
//!   own crate. So this folder depends on nothing else in the crate: its files import only
//!   from each other (never `crate::autoscale`, `crate::slo`, …).

mod alertmanager;
mod autoscale;
mod catalog;
mod error;
mod formats;
mod influx;
mod monitors;
mod oidc;
mod otlp;
mod pipeline;
mod postgres;
mod tls;

pub use alertmanager::AlertmanagerConfig;
pub use autoscale::AutoscaleConfig;
pub use catalog::{
    AlertTier, DEFAULT_BUDGET_WARNING_PERCENT, DEFAULT_MIN_EVENTS, ServiceCatalog,
    ServiceCatalogFile, ServiceDefaults, ServiceEntry, ServicePolicy, SimProfileSpec, SloWindow,
};
pub use formats::{AccessLogFormat, LatencyUnit, PRESETS as ACCESS_LOG_PRESETS, TimestampFormat};
pub use influx::{InfluxApi, InfluxConfig, Secret};
pub use monitors::{
    ALLOWED_MINUTES, MonitorTarget, MonitorsConfig, allowed_frequencies, parse_every_minutes,
};
pub use otlp::{OtlpConfig, OtlpLogsConfig};
pub use pipeline::{
    LakeConfig, LogConfig, PipelineConfig, RateLimitConfig, RollupConfig, ServerConfig,
    ValidationConfig, WalConfig, WalSync, local_data_dir, parse_ip_range,
};
pub use postgres::PostgresConfig;

pub use error::{ConfigError, ENV_SOURCE};
pub use oidc::OidcConfig;
pub use tls::{ClientTlsConfig, ServerTlsConfig};
