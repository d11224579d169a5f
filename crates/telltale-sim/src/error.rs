//! The simulator's one error type.

/// Everything that can go wrong in the simulator, naming what and where.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A [`SimConfig`] value that cannot work.
    #[error("invalid simulator setting `{field}`: {message}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A control call named a service the simulator does not run.
    #[error("unknown service {name:?}: the simulator runs {known}")]
    UnknownService {
        /// The name given.
        name: String,
        /// The services simulated, comma-separated.
        known: String,
    },
    /// A control call's argument is out of range.
    #[error("invalid {what}: {message}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The HTTP output URL is unusable.
    #[error("invalid output URL {url:?}: {message}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Reading or writing a file or stream failed.
    #[error("{action} {target}: {source}")]
    Io {
        /// What was being done, e.g. "writing to".
        action: &'static str,
        /// The file or stream.
        target: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The TLS settings of the HTTP output could not be used (a CA or certificate file).
    #[error("the HTTP output's TLS settings: {0}")]
    Tls(#[source] telltale_tls::TlsError),
    /// The receiver of an `Output::Channel` was dropped while the run was sending.
    #[error("the output channel's receiver was dropped after {lines} lines")]
    OutputClosed {
        /// Lines generated when it happened.
        lines: u64,
    },
    /// An internal task panicked or was cancelled.
    #[error("the {task} task failed: {message}")]
    Task {
        /// Which task.
        task: &'static str,
        /// The join error.
        message: String,
    },
}
