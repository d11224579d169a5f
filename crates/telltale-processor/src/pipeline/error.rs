//! The pipeline's own failures (a bad line is not one: it is a [`Rejection`] in the
//! batch's outcome).
//!
//! [`Rejection`]: telltale_core::parse::Rejection

use telltale_lake::error::LakeError;

use crate::wal::WalError;

/// A processor failure that is not about one line.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The writer thread has stopped (after shutdown, or it panicked).
    #[error("the lake writer has stopped; the processor is shutting down")]
    WriterGone,
    /// Writing the lake failed on a flush, so buffered rows could not be saved.
    #[error("writing the lake failed: {0}")]
    Lake(#[from] LakeError),
    /// Starting the writer thread failed.
    #[error("could not start the writer thread: {0}")]
    Spawn(std::io::Error),
    /// The write-ahead log could not be read or written.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The write-ahead log could not take the batch (a full or failing disk): it was not
    /// acknowledged; the next batch is tried again.
    #[error(
        "the write-ahead log cannot be written (disk full or failing); the batch was not accepted"
    )]
    WalFailed,
    /// Replaying the write-ahead log failed.
    #[error("replaying the write-ahead log: {0}")]
    Replay(String),
    /// The writer failed carrying out a flush or checkpoint (the message of the cause,
    /// passed on to a waiting caller).
    #[error("{0}")]
    Writer(String),
}

impl PipelineError {
    /// The same kind of error, for telling several waiting callers (the payloads of I/O
    /// errors cannot be cloned).
    pub(crate) fn clone_kind(&self) -> Self {
        match self {
            PipelineError::WriterGone => PipelineError::WriterGone,
            PipelineError::WalFailed => PipelineError::WalFailed,
            other => PipelineError::Writer(other.to_string()),
        }
    }
}
