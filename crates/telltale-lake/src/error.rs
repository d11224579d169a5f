//! The one error type of the lake: every variant says which file or partition and why.

use std::path::PathBuf;

use arrow::error::ArrowError;
use parquet::errors::ParquetError;

/// Result with [`LakeError`] as the default error.
pub type Result<T, E = LakeError> = std::result::Result<T, E>;

/// Everything that can go wrong writing, compacting or reading the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// A file-system operation failed.
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        /// What we were doing (`create dir`, `rename`, ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A store-relative path that could escape the lake root or is malformed.
    #[error("invalid lake path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A file already exists where a new one was to be written (names are unique, so
    /// this means two writers share a writer id, or a bug).
    #[error("refusing to overwrite existing file {path}", path = path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// Building or transforming Arrow data failed.
    #[error("arrow, {context}: {source}")]
    Arrow {
        /// What was being built (e.g. `events batch`).
        context: String,
        /// The Arrow error.
        source: ArrowError,
    },

    /// Encoding or decoding a Parquet file failed.
    #[error("parquet, {context}: {source}")]
    Parquet {
        /// The file or partition concerned.
        context: String,
        /// The Parquet error.
        source: ParquetError,
    },

    /// A writer setting is out of range.
    #[error("invalid writer option {option}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// Why it is rejected.
        reason: String,
    },

    /// Writing one buffered partition failed; its rows are still buffered.
    #[error("writing {partition} ({rows} rows kept buffered): {source}")]
    WritePartition {
        /// The partition's directory, relative to the lake root.
        partition: String,
        /// Rows that stay buffered for the next attempt.
        rows: usize,
        /// What failed.
        source: Box<LakeError>,
    },

    /// Compacting one partition failed; its files are left as they were.
    #[error("compacting {partition}: {source}")]
    Compact {
        /// The partition's directory, relative to the lake root.
        partition: String,
        /// What failed.
        source: Box<LakeError>,
    },

    /// A file in a partition does not have the table's schema.
    #[error("{file}: schema differs from the {table} table's: {detail}")]
    SchemaMismatch {
        /// The file, relative to the lake root.
        file: String,
        /// The table it is in.
        table: &'static str,
        /// What differs.
        detail: String,
    },

    /// Serialising a dead letter to JSON failed.
    #[error("json, {context}: {source}")]
    Json {
        /// What was being serialised.
        context: String,
        /// The serde error.
        source: serde_json::Error,
    },
}

impl LakeError {
    /// An I/O error of operation `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn arrow(context: impl Into<String>, source: ArrowError) -> Self {
        Self::Arrow {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn parquet(context: impl Into<String>, source: ParquetError) -> Self {
        Self::Parquet {
            context: context.into(),
            source,
        }
    }
}
