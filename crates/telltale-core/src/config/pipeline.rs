//! `config/telltale.toml`, the pipeline settings: HTTP server, lake flush policy, rollup
//! windows, validation limits, logging, the write-ahead log, and the sections of the
//! outputs and the worker pool ([`InfluxConfig`], [`AlertmanagerConfig`],
//! [`AutoscaleConfig`], each in its own file beside this one).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::alertmanager::AlertmanagerConfig;
use super::autoscale::AutoscaleConfig;
use super::error::{ConfigError, invalid, parse_toml};
use super::formats::AccessLogFormat;
use super::influx::InfluxConfig;
use super::monitors::MonitorsConfig;
use super::oidc::OidcConfig;
use super::otlp::OtlpConfig;
use super::tls::ServerTlsConfig;

/// `config/telltale.toml`: how the pipeline runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Where and how the Parquet lake is written.
    pub lake: LakeConfig,
    /// Event-time rollup windows.
    pub rollup: RollupConfig,
    /// Limits applied to every incoming line.
    pub validation: ValidationConfig,
    /// Periodic log output.
    pub log: LogConfig,
    /// InfluxDB output (rollups, SLO status, probes, pipeline health).
    pub influx: InfluxConfig,
    /// Alertmanager delivery of SLO alert state changes.
    pub alertmanager: AlertmanagerConfig,
    /// Write-ahead log of ingested batches (durability of acknowledged HTTP batches).
    pub wal: WalConfig,
    /// Scaling of the HTTP ingest's processing workers by backlog and CPU.
    pub autoscale: AutoscaleConfig,
    /// Bounds on what the processor keeps per service (memory, lake files, series).
    pub limits: LimitsConfig,
    /// `[formats.<name>]`: mappings of JSON access logs that are not telltale's shape,
    /// chosen with `telltale process --input FILE --format <name>` (besides the presets
    /// `nginx`, `envoy`, `traefik`). Empty by default.
    pub formats: std::collections::BTreeMap<String, AccessLogFormat>,
    /// OpenTelemetry (OTLP) ingest: how log records map to request events.
    pub otlp: OtlpConfig,
    /// PostgreSQL, where URL monitor results (and the monitors) are written. Off by
    /// default.
    pub postgres: super::postgres::PostgresConfig,
    /// Scheduled URL monitors: check settings and monitors listed in the file.
    pub monitors: MonitorsConfig,
}

/// `[limits]`: what many distinct service names (typos, per-customer names, an attack) may
/// cost. Catalogued services are always tracked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most services tracked at once: rolled up, given SLOs, sent to InfluxDB, shown on
    /// the status page, and partitioned in the lake. The events of a further service are
    /// kept in the dead letter (reason `service_limit`) and counted in
    /// `telltale_events_over_service_limit_total`. The catalogue's services always count
    /// as tracked.
    pub max_services: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_services: 2_000,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address for HTTP ingest, `/metrics`, `/healthz` and the status page.
    pub listen: String,
    /// Largest request body accepted, in bytes, before and after gzip decompression (413 above).
    pub max_body_bytes: usize,
    /// File with one bearer token per line. When tokens are configured (here or in
    /// `TELLTALE_INGEST_TOKENS`), `POST /v1/events` requires one. Keep the file out of git.
    pub tokens_file: Option<String>,
    /// File with one admin bearer token per line (also `TELLTALE_ADMIN_TOKENS`): the
    /// simulator's control API (`POST /control/*`) needs one once any token is configured,
    /// and an admin token may also ingest. Keep the file out of git.
    pub admin_tokens_file: Option<String>,
    /// File with one read-only bearer token per line (also `TELLTALE_READ_TOKENS`), for
    /// dashboards and scrapers when reading is closed. Keep the file out of git.
    pub read_tokens_file: Option<String>,
    /// Close reading: the status page, `/api/v1/*` and `/metrics` then need a token of
    /// any role (`/healthz` stays open for load balancers). Needs at least one token.
    pub read_requires_token: bool,
    /// Request body bytes all ingest requests in flight may hold together; a request that
    /// would go over is refused with 429 and `Retry-After` before its body is read.
    pub max_inflight_bytes: usize,
    /// Ingest batches that may wait for a processing worker; when full, requests get 429.
    pub queue_batches: usize,
    /// On SIGTERM/Ctrl-C: how long to drain requests in flight and flush before exiting;
    /// past it (or at a second signal) the process exits 1 at once, and what was
    /// acknowledged is replayed from the write-ahead log at the next start.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// On SIGTERM/Ctrl-C: how long to keep the listener open answering new ingest with
    /// 503 and `Retry-After` (and `/healthz` with 503) before closing it, so a load
    /// balancer or Kubernetes stops routing here first. Requests in flight finish either
    /// way. `0s` closes as soon as nothing is in flight.
    #[serde(with = "humantime_serde")]
    pub drain_grace: Duration,
    /// `[server.tls]`: HTTPS on every listener (off by default).
    pub tls: ServerTlsConfig,
    /// `[server.rate_limit]`: per-address and per-token limits on ingest requests.
    pub rate_limit: RateLimitConfig,
    /// `[server.oidc]`: single sign-on for the status page and the control API (off
    /// while its `issuer_url` is empty).
    pub oidc: OidcConfig,
}

/// `[server.rate_limit]`: how many ingest requests (`POST /v1/events`) a client address
/// and a bearer token may make; past it, 429 with `Retry-After`. A generic cell rate
/// (GCRA): `burst` requests at once, then one every `1 / rate` seconds. Off while 0.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests a second one client address may make (fractions allowed: 0.5 = one every
    /// 2 s); 0 = no limit. Behind a proxy, list it in `trusted_proxies` (or limit at the
    /// proxy, deploy/nginx/): otherwise every request counts as the proxy's.
    pub per_address_per_second: f64,
    /// Addresses or CIDR ranges of the proxies in front of telltale, e.g. `["127.0.0.1",
    /// "10.0.0.0/8"]`. For a request from one of them, the client address is the rightmost
    /// address of `X-Forwarded-For` that is not itself a trusted proxy. Empty (the
    /// default): the connection's address always, and the header is ignored (anyone can
    /// write it).
    pub trusted_proxies: Vec<String>,
    /// Requests a second one bearer token may make, from any address; 0 = no limit.
    pub per_token_per_second: f64,
    /// Requests allowed at once above the rate; 0 = the rate rounded up (at least 1).
    pub burst: u32,
}

/// An address (a range of one) or a CIDR range, as `trusted_proxies` holds them.
pub fn parse_ip_range(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

impl RateLimitConfig {
    /// The burst in effect for `rate`.
    pub fn burst_for(&self, rate: f64) -> u32 {
        if self.burst > 0 {
            self.burst
        } else {
            (rate.ceil() as u32).max(1)
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            max_body_bytes: 16 * 1024 * 1024,
            tokens_file: None,
            admin_tokens_file: None,
            read_tokens_file: None,
            read_requires_token: false,
            max_inflight_bytes: 256 * 1024 * 1024,
            queue_batches: 64,
            shutdown_timeout: Duration::from_secs(30),
            drain_grace: Duration::ZERO,
            tls: ServerTlsConfig::default(),
            rate_limit: RateLimitConfig::default(),
            oidc: OidcConfig::default(),
        }
    }
}

/// When the write-ahead log calls fsync, and so what an acknowledgement promises.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WalSync {
    /// fsync before acknowledging (group commit: one fsync for every batch waiting). An
    /// acknowledged batch survives a process crash, an OS crash and a power loss.
    Always,
    /// Acknowledge once written to the OS; fsync every `wal.sync_interval`. An
    /// acknowledged batch survives a process crash (kill -9); an OS crash or power loss
    /// can lose the batches of the last interval.
    Interval,
    /// Acknowledge once written to the OS; fsync only before lake files are written and
    /// when a segment is full. Survives a process crash; an OS crash can lose everything
    /// since the last lake flush.
    Never,
}

/// `[wal]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// Log every ingested batch before acknowledging it and replay it after a crash. Off:
    /// an acknowledged batch lives only in memory until its lake file is written.
    pub enabled: bool,
    /// `always`, `interval` or `never`: when the log is fsynced (see docs/durability.md).
    pub sync: WalSync,
    /// With `sync = "interval"`: how often the log is fsynced.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// A log segment file is closed and a new one started at this size, in bytes.
    pub segment_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sync: WalSync::Always,
            sync_interval: Duration::from_millis(100),
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `[lake]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// Root directory of the lake (`events/`, `rollups/`, `probes/`, `deadletter/` below it).
    pub data_dir: String,
    /// A partition's buffer is written to a file when it holds this many rows...
    pub flush_rows: usize,
    /// ...or when its oldest row has waited this long.
    #[serde(with = "humantime_serde")]
    pub flush_age: Duration,
    /// zstd level for Parquet pages (1 fastest .. 22 smallest). 1 by default: on simulator
    /// data level 3 made files 0.2% smaller for 10% more CPU (docs/benchmarks.md), because
    /// dictionary and RLE encoding have already done most of the work.
    pub zstd_level: i32,
    /// Largest row group written, in rows.
    pub row_group_rows: usize,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            data_dir: "data".to_owned(),
            flush_rows: 100_000,
            flush_age: Duration::from_secs(10),
            zstd_level: 1,
            row_group_rows: 100_000,
        }
    }
}

/// `[rollup]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RollupConfig {
    /// Width of an event-time rollup window; must divide a day evenly.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long after a window ends (in event time) late events still update it.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
}

impl Default for RollupConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            allowed_lateness: Duration::from_secs(30),
        }
    }
}

/// `[validation]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Events stamped further than this into the future are rejected.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// Lines longer than this many bytes are rejected unparsed.
    pub max_line_bytes: usize,
    /// Longest service name accepted, in bytes.
    pub max_service_name_bytes: usize,
    /// Largest `latency_ms` accepted.
    pub max_latency_ms: f64,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            max_future_skew: Duration::from_secs(300),
            max_line_bytes: 64 * 1024,
            max_service_name_bytes: 128,
            max_latency_ms: 86_400_000.0,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Interval of the one-line progress summary (events/s, rejected, files written).
    #[serde(with = "humantime_serde")]
    pub summary_interval: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            summary_interval: Duration::from_secs(5),
        }
    }
}

impl PipelineConfig {
    /// Parses and validates pipeline settings; `file` names it in error messages.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Self, ConfigError> {
        let cfg: Self = parse_toml(text, file)?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                file,
                "server.listen",
                format!(
                    "`{}` is not an address: use host:port, e.g. \"127.0.0.1:8080\"",
                    self.server.listen
                ),
            ));
        }
        self.server.tls.validate(file, "server.tls")?;
        super::formats::validate_all(&self.formats, file)?;
        for (i, p) in self.server.rate_limit.trusted_proxies.iter().enumerate() {
            if parse_ip_range(p).is_none() {
                return Err(invalid(
                    file,
                    format!("server.rate_limit.trusted_proxies[{i}]"),
                    format!(
                        "{p:?} is not an address or CIDR range: use e.g. \"127.0.0.1\", \"10.0.0.0/8\" or \"fd00::/8\""
                    ),
                ));
            }
        }
        self.server.oidc.validate(file, "server.oidc")?;
        for (key, rate) in [
            (
                "server.rate_limit.per_address_per_second",
                self.server.rate_limit.per_address_per_second,
            ),
            (
                "server.rate_limit.per_token_per_second",
                self.server.rate_limit.per_token_per_second,
            ),
        ] {
            if !(rate.is_finite() && rate >= 0.0) {
                return Err(invalid(
                    file,
                    key,
                    format!(
                        "`{rate}` must be 0 (no limit) or a positive number of requests a second, e.g. 100"
                    ),
                ));
            }
        }
        if self.limits.max_services == 0 {
            return Err(invalid(
                file,
                "limits.max_services",
                "0 would track no service: use at least 1 (the default is 2000)".to_owned(),
            ));
        }
        if self.server.drain_grace >= self.server.shutdown_timeout {
            return Err(invalid(
                file,
                "server.drain_grace",
                format!(
                    "`{}` is not shorter than server.shutdown_timeout (`{}`): the shutdown \
                     would time out while draining; lower it or raise the timeout",
                    humantime::format_duration(self.server.drain_grace),
                    humantime::format_duration(self.server.shutdown_timeout)
                ),
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid(
                file,
                "server.max_body_bytes",
                "must be at least 1024 bytes",
            ));
        }
        if self.lake.data_dir.trim().is_empty() {
            return Err(invalid(
                file,
                "lake.data_dir",
                "is empty: name a directory, e.g. \"data\"",
            ));
        }
        if let Err(m) = local_data_dir(&self.lake.data_dir) {
            return Err(invalid(file, "lake.data_dir", m));
        }
        if self.lake.flush_rows == 0 {
            return Err(invalid(
                file,
                "lake.flush_rows",
                "must be at least 1, e.g. 100000",
            ));
        }
        if self.lake.flush_age.is_zero() {
            return Err(invalid(
                file,
                "lake.flush_age",
                "must be above zero, e.g. \"10s\"",
            ));
        }
        if !(1..=22).contains(&self.lake.zstd_level) {
            return Err(invalid(
                file,
                "lake.zstd_level",
                "must be from 1 to 22, e.g. 3",
            ));
        }
        if self.lake.row_group_rows == 0 {
            return Err(invalid(
                file,
                "lake.row_group_rows",
                "must be at least 1, e.g. 100000",
            ));
        }
        let w = self.rollup.window;
        if w < Duration::from_secs(1)
            || w > Duration::from_secs(3600)
            || w.subsec_nanos() != 0
            || 86_400 % w.as_secs() != 0
        {
            return Err(invalid(
                file,
                "rollup.window",
                "must be whole seconds from 1s to 1h that divide a day evenly (e.g. \"10s\", \"1m\"), \
                 so no window spans two dates",
            ));
        }
        if self.validation.max_line_bytes < 256 {
            return Err(invalid(
                file,
                "validation.max_line_bytes",
                "must be at least 256",
            ));
        }
        if self.validation.max_service_name_bytes == 0 {
            return Err(invalid(
                file,
                "validation.max_service_name_bytes",
                "must be at least 1",
            ));
        }
        if !self.validation.max_latency_ms.is_finite() || self.validation.max_latency_ms <= 0.0 {
            return Err(invalid(
                file,
                "validation.max_latency_ms",
                "must be a positive number",
            ));
        }
        if self.log.summary_interval.is_zero() {
            return Err(invalid(
                file,
                "log.summary_interval",
                "must be above zero, e.g. \"5s\"",
            ));
        }
        if self.server.max_inflight_bytes < self.server.max_body_bytes {
            return Err(invalid(
                file,
                "server.max_inflight_bytes",
                format!(
                    "is below server.max_body_bytes ({}): one full-size request could never be \
                     admitted; raise it to at least that",
                    self.server.max_body_bytes
                ),
            ));
        }
        if self.server.queue_batches == 0 {
            return Err(invalid(
                file,
                "server.queue_batches",
                "must be at least 1, e.g. 64",
            ));
        }
        if self.wal.sync_interval.is_zero() {
            return Err(invalid(
                file,
                "wal.sync_interval",
                "must be above zero, e.g. \"100ms\"",
            ));
        }
        if self.wal.segment_bytes < 1024 * 1024 {
            return Err(invalid(
                file,
                "wal.segment_bytes",
                "must be at least 1048576 (1 MiB), e.g. 67108864",
            ));
        }
        self.autoscale.validate(file)?;
        self.monitors.validate(file)?;
        self.influx.validate(file)?;
        self.alertmanager.validate(file)?;
        self.otlp.validate(file)?;
        self.postgres.validate(file)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_defaults_validate() {
        PipelineConfig::default().validate("x").unwrap();
        let c = PipelineConfig::from_toml_str("", "t.toml").unwrap();
        assert_eq!(c, PipelineConfig::default());
    }

    #[test]
    fn rollup_window_must_divide_a_day() {
        let err = PipelineConfig::from_toml_str("[rollup]\nwindow = \"7s\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.toml: `rollup.window`"), "{err}");
    }

    #[test]
    fn bad_listen_address_names_the_key() {
        let err = PipelineConfig::from_toml_str("[server]\nlisten = \"localhost\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`server.listen`"), "{err}");
    }

    #[test]
    fn drain_grace_must_leave_time_to_flush() {
        let err = PipelineConfig::from_toml_str(
            "[server]\ndrain_grace = \"30s\"\nshutdown_timeout = \"30s\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("t.toml: `server.drain_grace`"), "{err}");
        assert!(err.contains("lower it or raise the timeout"), "{err}");
    }
}

/// Checks that a lake location is a local directory: a URL (`s3://bucket/prefix`,
/// `gs://…`, `file://…`) is refused with the reason, rather than becoming a directory
/// named `s3:` (issue #18: the lake is not on object storage yet). Used by `[lake]
/// data_dir` and every `--data-dir` flag.
pub fn local_data_dir(dir: &str) -> Result<(), String> {
    let scheme = dir.split_once("://").map(|(s, _)| s).filter(|s| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    match scheme {
        Some(scheme) => Err(format!(
            "{dir:?} is a {scheme}:// URL, but the lake can only be a local directory so far \
             (object storage is issue #18): use a path such as ./data"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod data_dir_tests {
    use super::local_data_dir;

    #[test]
    fn regression_an_s3_url_is_refused_instead_of_becoming_a_directory_named_s3() {
        let e = local_data_dir("s3://lake/tt").unwrap_err();
        assert!(
            e.contains("s3:// URL") && e.contains("local directory"),
            "{e}"
        );
        assert!(local_data_dir("gs://b").is_err());
        assert!(local_data_dir("./data").is_ok());
        assert!(local_data_dir("/var/lib/telltale").is_ok());
        assert!(local_data_dir("weird:name").is_ok());
    }
}
