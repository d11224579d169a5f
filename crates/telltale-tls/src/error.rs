//! Why a TLS setting could not be used: always naming the file or the setting.

use std::path::PathBuf;

/// Why a TLS setting could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("reading the {what} {}: {source}", path.display())]
    Read {
        /// What the file is for (`server certificate`, `client CA file`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("the {what} {} {reason}", path.display())]
    Pem {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong, e.g. `holds no PEM certificate (-----BEGIN CERTIFICATE-----)`.
        reason: String,
    },
    /// rustls refused the certificates or keys.
    #[error("{what}: {source}")]
    Rustls {
        /// What was being built.
        what: String,
        /// rustls's error.
        source: rustls::Error,
    },
    /// The HTTP client could not be built with these settings.
    #[error("{what}: {reason}")]
    Client {
        /// Which client (`the InfluxDB client`).
        what: String,
        /// reqwest's error.
        reason: String,
    },
}
