//! The one error type of the sink's setup. Delivery problems after start are not errors
//! to the caller: they are retried, spooled or dead-lettered, logged and counted in
//! [`InfluxStats`](crate::InfluxStats).

use std::path::PathBuf;

use telltale_core::ConfigError;

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    /// `[influx]` / `INFLUX_*` settings that cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// `start` was called although no URL is configured.
    #[error(
        "the InfluxDB sink is off: set INFLUX_URL or `url` in [influx] of config/telltale.toml"
    )]
    Disabled,

    /// The token file could not be read, or is empty.
    #[error("InfluxDB token file {path}: {reason}", path = path.display())]
    TokenFile {
        /// The file named by `token_file` / `INFLUX_TOKEN_FILE`.
        path: PathBuf,
        /// What went wrong (the OS error, or "is empty").
        reason: String,
    },

    /// The URL does not parse, or needs a feature this build lacks.
    #[error("InfluxDB url `{url}`: {reason}")]
    Url {
        /// The configured base URL.
        url: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A file-system operation on the spool or dead-letter directory failed.
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        /// What we were doing (`create spool dir`, `list spool`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// `[influx.tls]` could not be used (a CA or certificate file).
    #[error("the InfluxDB client's TLS settings: {0}")]
    Tls(#[source] telltale_tls::TlsError),

    /// `start` was called outside a Tokio runtime.
    #[error("InfluxSink::start must be called from within a Tokio runtime")]
    NoRuntime,
}
