//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong with the mirror's files. Each variant names the paths involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`creating`, `syncing`, `listing`, ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Moving a file into place (or into quarantine) failed.
    #[error("renaming {from} to {to}: {source}")]
    Rename {
        /// The file being moved.
        from: PathBuf,
        /// Where it was going.
        to: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Something other than a real directory (a file, a symlink, ...) sits where the layout needs a
    /// directory. Symlinks are never followed, so nothing is ever written outside the mirror root.
    #[error("expected a directory at {path}, found something else (symlinks are not followed)")]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// A path given to the store is not one it may write or move: absolute, empty, with `..`, or
    /// outside the part of the layout the operation is for.
    #[error("invalid path {path}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A URL that cannot be a mirror's base URL (see [`crate::BaseUrl`]).
    #[error("invalid base url {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A pending file was to be committed with a proof that is not about its bytes: the proof
    /// is for another length than was written. Nothing is put in place.
    #[error(
        "refusing to commit {path}: the proof of verification is for {proved} bytes, but {written} were written"
    )]
    ProofMismatch {
        /// The temp file.
        path: PathBuf,
        /// Bytes the proof says were hashed.
        proved: u64,
        /// Bytes written to the file.
        written: u64,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
