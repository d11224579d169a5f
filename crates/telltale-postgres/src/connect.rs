//! Connection settings from `[postgres]` and the environment, and connecting with TLS as
//! the URL's `sslmode` asks (`prefer` by default, as libpq; `require` in production,
//! `disable` for a local socket-like setup). The server's certificate and host name are
//! always verified when TLS is used.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use telltale_core::config::PostgresConfig;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config};

use crate::error::PgError;

/// Where and how to connect, built once at start.
#[derive(Clone)]
pub struct ConnectSettings {
    config: Config,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl std::fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSettings")
            .field("target", &self.target())
            .finish_non_exhaustive()
    }
}

impl ConnectSettings {
    /// From `[postgres]` (with its environment applied); `None` when it is off. Reads the
    /// password file and the CA file.
    pub fn from_config(cfg: &PostgresConfig) -> Result<Option<Self>, PgError> {
        if !cfg.is_enabled() {
            return Ok(None);
        }
        let url = match &cfg.env_url {
            Some(u) => u.expose().to_owned(),
            None => cfg.url.trim().to_owned(),
        };
        let mut config: Config = url.parse().map_err(PgError::Url)?;
        if config.get_password().is_none() {
            if let Some(p) = &cfg.env_password {
                config.password(p.expose());
            } else if let Some(path) = &cfg.password_file {
                let text =
                    std::fs::read_to_string(path).map_err(|source| PgError::PasswordFile {
                        path: PathBuf::from(path),
                        source,
                    })?;
                config.password(text.trim());
            }
        }
        if config.get_application_name().is_none() {
            config.application_name("telltale");
        }
        config.connect_timeout(cfg.connect_timeout);
        let tls = telltale_tls::rustls_client_config(&cfg.tls, "postgres.tls")?;
        Ok(Some(Self {
            config,
            tls,
            timeout: cfg.connect_timeout,
        }))
    }

    /// `host:port/dbname`, for logs and errors: never the user's password.
    pub fn target(&self) -> String {
        let host = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self
            .config
            .get_dbname()
            .or(self.config.get_user())
            .unwrap_or("postgres");
        format!("{host}:{port}/{db}")
    }

    /// Connects (TLS as `sslmode` says), driving the connection on a task of its own.
    pub async fn connect(&self) -> Result<Client, PgError> {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*self.tls).clone());
        let connecting = self.config.connect(tls);
        let (client, connection) = tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| PgError::ConnectTimeout {
                target: self.target(),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|source| PgError::Connect {
                target: self.target(),
                source,
            })?;
        let target = self.target();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%target, error = %e, "PostgreSQL connection closed");
            }
        });
        Ok(client)
    }
}
