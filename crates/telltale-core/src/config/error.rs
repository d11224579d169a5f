//! The one error type of the config files, and the one way to report a bad key: which
//! file, which key, what is wrong and how to fix it.

/// Label used in [`ConfigError`]s about values that came from environment variables.
pub const ENV_SOURCE: &str = "environment";

/// A configuration problem, always naming the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML or does not match the expected shape.
    #[error("{file}: {message}")]
    Parse {
        /// The file (or [`ENV_SOURCE`]), as the caller labelled it.
        file: String,
        /// The TOML parser's message, which names the line and the key.
        message: String,
    },
    /// A value parsed but makes no sense.
    #[error("{file}: `{key}`: {message}")]
    Invalid {
        /// The file (or [`ENV_SOURCE`]), as the caller labelled it.
        file: String,
        /// The dotted key (`lake.flush_rows`) or the environment variable (`INFLUX_API`).
        key: String,
        /// What is wrong with the value and the fix.
        message: String,
    },
}

/// Reports an invalid value: `file` as the caller labelled it, the dotted `key`, and a
/// `message` that says what is wrong with the value (quoting it where that helps) and how
/// to fix it, e.g. `"must be at least 1, e.g. 100000"`. The one way config errors about a
/// key are made.
pub(super) fn invalid(
    file: &str,
    key: impl Into<String>,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_owned(),
        key: key.into(),
        message: message.into(),
    }
}

/// Deserializes TOML text; a syntax or shape error becomes [`ConfigError::Parse`].
pub(super) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.to_owned(),
        message: e.to_string(),
    })
}
