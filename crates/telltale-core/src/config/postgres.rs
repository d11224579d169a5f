//! `[postgres]` in `config/telltale.toml`: the PostgreSQL database that URL monitor
//! results (and the monitors) are written to (`telltale-postgres`). Off unless `url` (or
//! `POSTGRES_URL` / `DATABASE_URL`) is set.
//!
//! Like `[influx]`, secrets only come from the environment or a file: a password in
//! `url` is refused (the committed TOML would hold it), while `POSTGRES_URL` /
//! `DATABASE_URL` may carry one and are kept as a redacted [`Secret`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, ENV_SOURCE, invalid};
use super::influx::Secret;
use super::tls::ClientTlsConfig;

/// `[postgres]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connection URL without a password, e.g.
    /// `postgres://telltale@db.example.com:5432/telltale?sslmode=require`. Empty: off.
    /// `POSTGRES_URL`, else `DATABASE_URL`, win (and may carry the password).
    pub url: String,
    /// File holding the password (surrounding whitespace trimmed); `POSTGRES_PASSWORD`
    /// wins. Keep it out of git.
    pub password_file: Option<String>,
    /// Trust for the server's certificate when the URL's `sslmode` is `prefer` (the
    /// default) or `require`: the system's CAs plus `ca_file`; the certificate and host
    /// name are always verified.
    pub tls: ClientTlsConfig,
    /// Most results in one INSERT.
    pub batch_max_rows: usize,
    /// Longest a result waits in memory before it is written (or spooled).
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Most bytes the spool (`<data_dir>/spool/postgres/`) may hold while the server is
    /// unreachable; past it the oldest spooled results are dropped, counted and logged.
    pub spool_max_bytes: u64,
    /// Longest pause between reconnection attempts (the pause doubles from 100 ms).
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// Longest wait for a connection (TCP, TLS and login).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// `POSTGRES_URL` / `DATABASE_URL`, when set: wins over `url`.
    #[serde(skip)]
    pub env_url: Option<Secret>,
    /// `POSTGRES_PASSWORD`, when set.
    #[serde(skip)]
    pub env_password: Option<Secret>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            password_file: None,
            tls: ClientTlsConfig::default(),
            batch_max_rows: 500,
            flush_interval: Duration::from_secs(1),
            spool_max_bytes: 256 * 1024 * 1024,
            retry_max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            env_url: None,
            env_password: None,
        }
    }
}

impl PostgresConfig {
    /// Whether results go to PostgreSQL.
    pub fn is_enabled(&self) -> bool {
        self.env_url.is_some() || !self.url.trim().is_empty()
    }

    /// Applies `POSTGRES_URL` (else `DATABASE_URL`) and `POSTGRES_PASSWORD` from `get`.
    pub fn with_env(mut self, get: impl Fn(&str) -> Option<String>) -> Self {
        let set = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(url) = set("POSTGRES_URL").or_else(|| set("DATABASE_URL")) {
            self.env_url = Some(Secret::new(url));
        }
        if let Some(p) = set("POSTGRES_PASSWORD") {
            self.env_password = Some(Secret::new(p));
        }
        self
    }

    /// The URL's scheme, no password in the file's URL, sizes at least 1.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let (source, key, url) = match &self.env_url {
            Some(u) => (ENV_SOURCE, "POSTGRES_URL", u.expose()),
            None => (file, "postgres.url", self.url.trim()),
        };
        if !url.is_empty() {
            let Some(rest) = url
                .strip_prefix("postgres://")
                .or_else(|| url.strip_prefix("postgresql://"))
            else {
                return Err(invalid(
                    source,
                    key,
                    "must start with postgres:// or postgresql://, e.g. \
                     postgres://telltale@127.0.0.1:5432/telltale?sslmode=require",
                ));
            };
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            let has_password = authority
                .rsplit_once('@')
                .is_some_and(|(user, _)| user.contains(':'));
            if has_password && self.env_url.is_none() {
                return Err(invalid(
                    file,
                    key,
                    "holds a password: remove it from the file and set POSTGRES_PASSWORD \
                     or postgres.password_file (or pass the whole URL in POSTGRES_URL)",
                ));
            }
        }
        for (k, v) in [("postgres.batch_max_rows", self.batch_max_rows as u64)] {
            if v == 0 {
                return Err(invalid(file, k, "must be at least 1, e.g. 500"));
            }
        }
        if self.flush_interval.is_zero() {
            return Err(invalid(
                file,
                "postgres.flush_interval",
                "must be more than 0, e.g. \"1s\"",
            ));
        }
        self.tls.validate(file, "postgres.tls")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_the_environment_wins() {
        let c = PostgresConfig::default();
        assert!(!c.is_enabled());
        c.validate("t.toml").unwrap();
        let c =
            c.with_env(|k| (k == "DATABASE_URL").then(|| "postgres://u:secret@h/db".to_owned()));
        assert!(c.is_enabled());
        c.validate("t.toml").unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn a_password_in_the_file_and_a_foreign_scheme_are_refused_by_key() {
        let c: PostgresConfig = toml::from_str("url = \"postgres://u:pw@h/db\"\n").unwrap();
        let e = c.validate("t.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("t.toml: `postgres.url`: holds a password"),
            "{e}"
        );
        let c: PostgresConfig = toml::from_str("url = \"mysql://h/db\"\n").unwrap();
        let e = c.validate("t.toml").unwrap_err().to_string();
        assert!(e.contains("postgres://"), "{e}");
        assert!(toml::from_str::<PostgresConfig>("password = \"x\"\n").is_err());
        let c: PostgresConfig = toml::from_str("batch_max_rows = 0\n").unwrap();
        let e = c.validate("t.toml").unwrap_err().to_string();
        assert!(e.contains("postgres.batch_max_rows"), "{e}");
    }
}
