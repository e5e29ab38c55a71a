//! The testkit's error type.

use std::path::PathBuf;

/// Everything that can go wrong building a test registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`reading`, `writing`, ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A git command could not be run or failed.
    #[error("git {command} (in {dir}) failed: {message}")]
    Git {
        /// The git arguments, space-separated.
        command: String,
        /// The repository or directory it ran in.
        dir: PathBuf,
        /// Exit status and standard error, or why it could not start.
        message: String,
    },
    /// A name, version or line that mirror-index refuses.
    #[error(transparent)]
    Index(#[from] mirror_index::Error),
    /// The input holds nothing usable (no registry caches, no crate files).
    #[error("{0}")]
    Empty(String),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The testkit's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
