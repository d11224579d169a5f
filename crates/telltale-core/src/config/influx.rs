//! `[influx]` in `config/telltale.toml`: where rollups, SLO status, probes and pipeline
//! health are pushed as InfluxDB line protocol. The environment (`INFLUX_*`) wins.
//!
//! Like the rest of the core this does no I/O: [`InfluxConfig::with_env`] takes a lookup
//! closure instead of reading the process environment, and a token file is only named
//! here (`token_file`, `INFLUX_TOKEN_FILE`); the InfluxDB sink reads it.
//!
//! Secrets (the token, the 1.x password) can only come from the environment or from a
//! token file: `deny_unknown_fields` rejects a `token = …` key in the committed TOML, and
//! [`Secret`] redacts itself in `Debug` so a logged config never shows one.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, ENV_SOURCE, invalid};
use super::tls::ClientTlsConfig;

/// A credential. `Debug` prints `Secret(<redacted>)` and there is no `Display`, so it can
/// only reach a log line through an explicit [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for the one place that needs it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Which InfluxDB write API to speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    /// InfluxDB 1.x `POST /write?db=&rp=&precision=` (also served by 2.x, 3.x and
    /// VictoriaMetrics). Basic auth with `username`/`INFLUX_PASSWORD` when a username is set.
    V1,
    /// InfluxDB 2.x `POST /api/v2/write?org=&bucket=&precision=` with
    /// `Authorization: Token …` (also served by 3.x and VictoriaMetrics).
    #[default]
    V2,
    /// InfluxDB 3 `POST /api/v3/write_lp?db=&precision=` with `Authorization: Bearer …`.
    V3,
}

impl InfluxApi {
    /// The name used in the config file and `INFLUX_API`.
    pub fn as_str(self) -> &'static str {
        match self {
            InfluxApi::V1 => "v1",
            InfluxApi::V2 => "v2",
            InfluxApi::V3 => "v3",
        }
    }
}

impl std::str::FromStr for InfluxApi {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(InfluxApi::V1),
            "v2" | "2" => Ok(InfluxApi::V2),
            "v3" | "3" => Ok(InfluxApi::V3),
            _ => Err(format!("`{s}` is not an InfluxDB API: use v1, v2 or v3")),
        }
    }
}

/// `[influx]`: where rollups, SLO status, probes and pipeline health are pushed as line
/// protocol. Off unless `url` (or `INFLUX_URL`) is set.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InfluxConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:8086` (a path prefix is kept, for
    /// proxies). Empty: the sink is off. `INFLUX_URL` wins, and an empty `INFLUX_URL` turns
    /// the sink off.
    pub url: String,
    /// Write API: `v1`, `v2` or `v3`. `INFLUX_API` wins.
    pub api: InfluxApi,
    /// Organization (v2). `INFLUX_ORG` wins.
    pub org: String,
    /// Bucket (v2). `INFLUX_BUCKET` wins.
    pub bucket: String,
    /// Database (v1 and v3). `INFLUX_DATABASE` wins.
    pub database: String,
    /// Retention policy (v1, optional; empty: the database's default). `INFLUX_RETENTION_POLICY` wins.
    pub retention_policy: String,
    /// User name for basic auth (v1, optional). The password only comes from
    /// `INFLUX_PASSWORD`. `INFLUX_USERNAME` wins.
    pub username: String,
    /// File holding the API token (read at start, surrounding whitespace trimmed). Keep the
    /// file out of git. `INFLUX_TOKEN` (the token itself) or `INFLUX_TOKEN_FILE` win.
    pub token_file: Option<String>,
    /// Gzip request bodies (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Most lines in one write request.
    pub batch_max_lines: usize,
    /// Most bytes (uncompressed) in one write request.
    pub batch_max_bytes: usize,
    /// A point waits at most this long in memory before a write is attempted.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Timeout of one write request, connecting included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// First retry delay after a 429, a 5xx or a connection error; doubles per attempt.
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Longest retry delay (a `Retry-After` from the server is honoured up to 10× this).
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// Encoded points held in memory; beyond this the oldest are spilled to `spool/influx/`.
    pub buffer_max_bytes: usize,
    /// Bytes kept in `spool/influx/` while the server is unreachable; beyond this the
    /// oldest spooled points are dropped (logged and counted).
    pub spool_max_bytes: u64,
    /// On shutdown, how long to keep delivering before spilling the rest to the spool.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// `[influx.tls]`: for an `https://` URL, extra CA certificates, a client certificate,
    /// or (test benches only) no verification.
    pub tls: ClientTlsConfig,
    /// API token (`INFLUX_TOKEN`, or the content of the token file). Never read from TOML.
    #[serde(skip)]
    pub token: Option<Secret>,
    /// v1 basic-auth password (`INFLUX_PASSWORD`). Never read from TOML.
    #[serde(skip)]
    pub password: Option<Secret>,
}

impl Default for InfluxConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            api: InfluxApi::V2,
            org: String::new(),
            bucket: String::new(),
            database: String::new(),
            retention_policy: String::new(),
            username: String::new(),
            token_file: None,
            gzip: true,
            batch_max_lines: 5_000,
            batch_max_bytes: 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            retry_initial_backoff: Duration::from_millis(200),
            retry_max_backoff: Duration::from_secs(30),
            buffer_max_bytes: 8 * 1024 * 1024,
            spool_max_bytes: 256 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(5),
            tls: ClientTlsConfig::default(),
            token: None,
            password: None,
        }
    }
}

// Hand-written so that the secrets show only whether they are set.
impl fmt::Debug for InfluxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfluxConfig")
            .field("url", &self.url)
            .field("api", &self.api)
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("database", &self.database)
            .field("retention_policy", &self.retention_policy)
            .field("username", &self.username)
            .field("token_file", &self.token_file)
            .field("token", &self.token)
            .field("password", &self.password)
            .field("gzip", &self.gzip)
            .field("batch_max_lines", &self.batch_max_lines)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("flush_interval", &self.flush_interval)
            .field("request_timeout", &self.request_timeout)
            .field("retry_initial_backoff", &self.retry_initial_backoff)
            .field("retry_max_backoff", &self.retry_max_backoff)
            .field("buffer_max_bytes", &self.buffer_max_bytes)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

impl InfluxConfig {
    /// Whether the sink is configured at all (`url` non-empty).
    pub fn is_enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Applies the `INFLUX_*` environment variables, which win over the file. `get` looks
    /// a variable up (`|k| std::env::var(k).ok()` in the binary, a map in tests). A
    /// variable set to an empty string counts as unset, except `INFLUX_URL`, where empty
    /// turns the sink off. `INFLUX_TOKEN_FILE` is only recorded in `token_file`: the sink
    /// reads it.
    pub fn with_env(mut self, get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(url) = get("INFLUX_URL") {
            self.url = url.trim().to_owned();
        }
        if let Some(api) = set("INFLUX_API") {
            self.api = api
                .parse()
                .map_err(|m: String| invalid(ENV_SOURCE, "INFLUX_API", m))?;
        }
        for (var, slot) in [
            ("INFLUX_ORG", &mut self.org),
            ("INFLUX_BUCKET", &mut self.bucket),
            ("INFLUX_DATABASE", &mut self.database),
            ("INFLUX_RETENTION_POLICY", &mut self.retention_policy),
            ("INFLUX_USERNAME", &mut self.username),
        ] {
            if let Some(v) = set(var) {
                *slot = v;
            }
        }
        // Passwords and tokens may legitimately contain leading/trailing spaces only by
        // accident; a pasted trailing newline is the common case, so trim like the file.
        if let Some(p) = set("INFLUX_PASSWORD") {
            self.password = Some(Secret::new(p));
        }
        match (set("INFLUX_TOKEN"), set("INFLUX_TOKEN_FILE")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    ENV_SOURCE,
                    "INFLUX_TOKEN",
                    "both INFLUX_TOKEN and INFLUX_TOKEN_FILE are set: unset one of them",
                ));
            }
            (Some(t), None) => {
                self.token = Some(Secret::new(t));
                // The environment's token wins over a token file named in TOML.
                self.token_file = None;
            }
            (None, Some(path)) => {
                self.token = None;
                self.token_file = Some(path);
            }
            (None, None) => {}
        }
        Ok(self)
    }

    /// Checks values that parse but cannot work. Limits are checked even when the sink is
    /// off (a typo should not wait until someone sets `INFLUX_URL`); the target (`org`,
    /// `bucket`, `database`) only when it is on. Call it after [`with_env`](Self::with_env).
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if self.batch_max_lines == 0 {
            return Err(invalid(
                file,
                "influx.batch_max_lines",
                "must be at least 1, e.g. 5000",
            ));
        }
        if self.batch_max_bytes < 1024 {
            return Err(invalid(
                file,
                "influx.batch_max_bytes",
                "must be at least 1024, e.g. 1048576 (1 MiB)",
            ));
        }
        for (key, d, example) in [
            ("influx.flush_interval", self.flush_interval, "\"1s\""),
            ("influx.request_timeout", self.request_timeout, "\"10s\""),
            (
                "influx.retry_initial_backoff",
                self.retry_initial_backoff,
                "\"200ms\"",
            ),
            (
                "influx.retry_max_backoff",
                self.retry_max_backoff,
                "\"30s\"",
            ),
        ] {
            if d.is_zero() {
                return Err(invalid(
                    file,
                    key,
                    format!("must be above zero, e.g. {example}"),
                ));
            }
        }
        if self.retry_max_backoff < self.retry_initial_backoff {
            return Err(invalid(
                file,
                "influx.retry_max_backoff",
                "must not be below influx.retry_initial_backoff",
            ));
        }
        if self.buffer_max_bytes < self.batch_max_bytes {
            return Err(invalid(
                file,
                "influx.buffer_max_bytes",
                "must be at least influx.batch_max_bytes, so one full batch fits in memory",
            ));
        }
        if self.spool_max_bytes < self.batch_max_bytes as u64 {
            return Err(invalid(
                file,
                "influx.spool_max_bytes",
                "must be at least influx.batch_max_bytes, so one spilled batch fits on disk \
                 (0 spooling is not supported; e.g. 268435456 = 256 MiB)",
            ));
        }
        self.tls.validate(file, "influx.tls")?;
        if !self.is_enabled() {
            return Ok(());
        }
        let url = self.url.trim();
        let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        else {
            return Err(invalid(
                file,
                "influx.url",
                format!(
                    "`{url}` is not an http:// or https:// URL: use e.g. \"http://127.0.0.1:8086\" (or set INFLUX_URL)"
                ),
            ));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(invalid(
                file,
                "influx.url",
                format!("`{url}` has no host: use e.g. \"http://127.0.0.1:8086\""),
            ));
        }
        if authority.contains('@') {
            // Credentials in the URL would end up in error messages and logs.
            return Err(invalid(
                file,
                "influx.url",
                "contains credentials (user:password@): put the user in influx.username / \
                 INFLUX_USERNAME and the secret in INFLUX_PASSWORD or INFLUX_TOKEN",
            ));
        }
        if rest.contains('?') || rest.contains('#') {
            return Err(invalid(
                file,
                "influx.url",
                "must not have a query or fragment: give the base URL; org, bucket and \
                 database are separate keys",
            ));
        }
        match self.api {
            InfluxApi::V2 => {
                if self.org.trim().is_empty() {
                    return Err(invalid(
                        file,
                        "influx.org",
                        "is empty but api = \"v2\" needs an organization: set influx.org or INFLUX_ORG",
                    ));
                }
                if self.bucket.trim().is_empty() {
                    return Err(invalid(
                        file,
                        "influx.bucket",
                        "is empty but api = \"v2\" needs a bucket: set influx.bucket or INFLUX_BUCKET",
                    ));
                }
            }
            InfluxApi::V1 | InfluxApi::V3 => {
                if self.database.trim().is_empty() {
                    return Err(invalid(
                        file,
                        "influx.database",
                        format!(
                            "is empty but api = \"{}\" needs a database: set influx.database or INFLUX_DATABASE",
                            self.api.as_str()
                        ),
                    ));
                }
            }
        }
        if self.password.is_some() && self.username.trim().is_empty() {
            return Err(invalid(
                file,
                "influx.username",
                "INFLUX_PASSWORD is set but no user name: set influx.username or INFLUX_USERNAME",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_off_and_valid() {
        let c = InfluxConfig::default();
        assert!(!c.is_enabled());
        c.validate("telltale.toml").unwrap();
    }

    #[test]
    fn the_documented_section_parses_to_the_defaults() {
        // `[influx]` in config/telltale.toml shows every default; keep the two in step.
        let file = include_str!("../../../../config/telltale.toml");
        let section = &file[file.find("[influx]").expect("config has [influx]")..];
        let body = section
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .collect::<Vec<_>>()
            .join("\n");
        let c: InfluxConfig = toml::from_str(&body).unwrap();
        assert_eq!(c, InfluxConfig::default());
        let all = toml::to_string(&InfluxConfig::default()).unwrap();
        // The keys of `[influx]` itself; `[influx.tls]` follows it in the file.
        for key in all
            .lines()
            .take_while(|l| !l.starts_with('['))
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
        {
            assert!(
                body.contains(&format!("\n{key} = ")),
                "`{key}` is shown with its default"
            );
        }
        assert!(
            body.contains("\n# token_file = "),
            "the optional token file is shown"
        );
    }

    #[test]
    fn a_token_in_the_file_is_refused() {
        let err = toml::from_str::<InfluxConfig>("token = \"abc\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `token`"), "{err}");
        let err = toml::from_str::<InfluxConfig>("password = \"abc\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `password`"),
            "{err}"
        );
    }

    #[test]
    fn environment_wins() {
        let file = InfluxConfig {
            url: "http://file:8086".into(),
            org: "file-org".into(),
            token_file: Some("/file/token".into()),
            ..InfluxConfig::default()
        };
        let c = file
            .with_env(env(&[
                ("INFLUX_URL", "http://env:8086"),
                ("INFLUX_API", "V1"),
                ("INFLUX_DATABASE", "telemetry"),
                ("INFLUX_ORG", ""),
                ("INFLUX_USERNAME", "writer"),
                ("INFLUX_PASSWORD", "pw"),
                ("INFLUX_TOKEN", "tok"),
            ]))
            .unwrap();
        assert_eq!(c.url, "http://env:8086");
        assert_eq!(c.api, InfluxApi::V1);
        assert_eq!(c.database, "telemetry");
        assert_eq!(c.org, "file-org", "an empty variable counts as unset");
        assert_eq!(c.username, "writer");
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(c.token.as_ref().map(Secret::expose), Some("tok"));
        assert_eq!(c.token_file, None);
        c.validate(ENV_SOURCE).unwrap();
    }

    #[test]
    fn an_empty_influx_url_turns_the_sink_off() {
        let c = InfluxConfig {
            url: "http://file:8086".into(),
            ..InfluxConfig::default()
        }
        .with_env(env(&[("INFLUX_URL", "")]))
        .unwrap();
        assert!(!c.is_enabled());
    }

    #[test]
    fn token_file_from_env_replaces_a_token() {
        let c = InfluxConfig::default()
            .with_env(env(&[("INFLUX_TOKEN_FILE", "/run/secrets/influx")]))
            .unwrap();
        assert_eq!(c.token_file.as_deref(), Some("/run/secrets/influx"));
        assert!(c.token.is_none());
        let err = InfluxConfig::default()
            .with_env(env(&[("INFLUX_TOKEN", "a"), ("INFLUX_TOKEN_FILE", "/b")]))
            .unwrap_err();
        assert!(err.to_string().contains("INFLUX_TOKEN_FILE"), "{err}");
    }

    #[test]
    fn bad_api_names_the_variable() {
        let err = InfluxConfig::default()
            .with_env(env(&[("INFLUX_API", "v4")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment: `INFLUX_API`: `v4` is not an InfluxDB API: use v1, v2 or v3"
        );
    }

    #[test]
    fn validate_names_file_key_and_fix() {
        let on = InfluxConfig {
            url: "http://127.0.0.1:8086".into(),
            ..InfluxConfig::default()
        };
        let cases: Vec<(InfluxConfig, &str)> = vec![
            (on.clone(), "`influx.org`"),
            (
                InfluxConfig {
                    org: "o".into(),
                    ..on.clone()
                },
                "`influx.bucket`",
            ),
            (
                InfluxConfig {
                    api: InfluxApi::V1,
                    ..on.clone()
                },
                "`influx.database`",
            ),
            (
                InfluxConfig {
                    url: "127.0.0.1:8086".into(),
                    ..on.clone()
                },
                "`influx.url`",
            ),
            (
                InfluxConfig {
                    url: "ftp://cloud.example:443".into(),
                    ..on.clone()
                },
                "http:// or https://",
            ),
            (
                InfluxConfig {
                    url: "http://u:p@h:8086".into(),
                    ..on.clone()
                },
                "credentials",
            ),
            (
                InfluxConfig {
                    batch_max_lines: 0,
                    ..InfluxConfig::default()
                },
                "`influx.batch_max_lines`",
            ),
            (
                InfluxConfig {
                    flush_interval: Duration::ZERO,
                    ..InfluxConfig::default()
                },
                "`influx.flush_interval`",
            ),
            (
                InfluxConfig {
                    spool_max_bytes: 10,
                    ..InfluxConfig::default()
                },
                "`influx.spool_max_bytes`",
            ),
        ];
        for (cfg, needle) in cases {
            let err = cfg
                .validate("config/telltale.toml")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("config/telltale.toml: "), "{err}");
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = InfluxConfig::default()
            .with_env(env(&[
                ("INFLUX_TOKEN", "s3cr3t-t0ken"),
                ("INFLUX_PASSWORD", "hunter2-pw"),
            ]))
            .unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("s3cr3t-t0ken"), "{shown}");
        assert!(!shown.contains("hunter2-pw"), "{shown}");
        assert!(shown.contains("<redacted>"));
        // Serializing (e.g. `check-config` printing the effective config) skips them too.
        let toml = toml::to_string(&c).unwrap();
        assert!(
            !toml.contains("s3cr3t") && !toml.contains("hunter2"),
            "{toml}"
        );
    }
}
