//! What can go wrong talking to PostgreSQL, with the context to act on it.

use std::path::PathBuf;

/// An error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection URL does not parse (the URL itself is not repeated: it may hold a
    /// password).
    #[error("the PostgreSQL URL is not valid ({}): use postgres://USER@HOST:PORT/DB?sslmode=require", describe(.0))]
    Url(#[source] tokio_postgres::Error),
    /// Connecting or logging in failed.
    #[error("connecting to PostgreSQL at {target}: {}", describe(.source))]
    Connect {
        /// Host, port and database (never the password).
        target: String,
        /// What the client said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection within the connect timeout.
    #[error("connecting to PostgreSQL at {target}: no answer within {seconds} s")]
    ConnectTimeout {
        /// Host, port and database.
        target: String,
        /// The timeout.
        seconds: u64,
    },
    /// TLS could not be set up (a bad CA file).
    #[error(transparent)]
    Tls(#[from] telltale_tls::TlsError),
    /// The schema could not be created or migrated.
    #[error("migrating the telltale schema in PostgreSQL: {0}")]
    Migrate(#[source] refinery::Error),
    /// A statement failed.
    #[error("PostgreSQL {what}: {}", describe(.source))]
    Query {
        /// What was being done (e.g. `inserting 500 results`).
        what: String,
        /// What the server or client said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A spool file could not be written, read or removed.
    #[error("the PostgreSQL spool at {path}: {source}")]
    Spool {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A password file could not be read.
    #[error("reading postgres.password_file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The server's message and SQLSTATE, or the client error with its causes (tokio-postgres
/// alone says only "db error" or "error performing TLS handshake").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl PgError {
    /// Whether the rows are at fault (SQLSTATE class 22, data exception, or 23, integrity
    /// constraint violation): writing them again would fail again, so they go to the dead
    /// letter. Anything else (the connection, a server shutting down, a lock timeout, a
    /// permission an operator can fix) is retried after reconnecting.
    pub fn is_data(&self) -> bool {
        match self {
            PgError::Query { source, .. } => source
                .as_db_error()
                .is_some_and(|db| matches!(&db.code().code()[..2], "22" | "23")),
            _ => false,
        }
    }
}
