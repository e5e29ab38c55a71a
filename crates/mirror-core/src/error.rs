//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong reading an index, apart from single bad lines (see
/// [`crate::LineError`], which are reported and skipped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A crate name that is not valid or not path-safe.
    #[error("invalid crate name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A version that is not valid semver or is too long.
    #[error("invalid version {version:?}: {reason}")]
    InvalidVersion {
        /// The version as given.
        version: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A checksum that is not 64 hex digits.
    #[error("invalid checksum {value:?}: expected 64 hex digits")]
    InvalidChecksum {
        /// The value as given (truncated).
        value: String,
    },
    /// A `dl` template that cannot be used.
    #[error("invalid download template {template:?}: {reason}")]
    InvalidTemplate {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A URL that cannot be a mirror's base URL (see [`crate::BaseUrl`]).
    #[error("invalid base url {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `config.json` that cannot be parsed.
    #[error("invalid config.json at {origin}: {reason}")]
    Config {
        /// Path or URL of the file.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`reading`, `listing`, ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A git operation failed.
    #[error("git {action} {location}: {message}")]
    Git {
        /// What was being done (`clone`, `fetch`, `read tree`, ...).
        action: &'static str,
        /// Repository URL or path.
        location: String,
        /// The failure, with its causes.
        message: String,
    },
    /// An HTTP request failed (network error, or a status that is neither success nor 404/304).
    #[error("http request to {url} failed: {message}")]
    Http {
        /// The URL requested.
        url: String,
        /// The status or network error.
        message: String,
    },
    /// A source string that names no supported kind of index.
    #[error("unsupported index source {source_str:?}: {reason}")]
    UnsupportedSource {
        /// The source as given.
        source_str: String,
        /// Why it is not supported.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Io`] naming what was being done and the path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
