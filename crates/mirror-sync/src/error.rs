//! The crate's error type: what stops a sync or verify before it can do its work.
//!
//! Problems with single versions (a download that failed, a corrupt file) are not errors: they are
//! part of the [`crate::SyncReport`] or [`crate::VerifyReport`], and the run goes on.

/// A fatal problem: bad configuration, an index or state that cannot be opened, a store that
/// cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The index could not be opened or read.
    #[error(transparent)]
    Index(#[from] mirror_index::Error),
    /// The state could not be opened, read or written (including: another process holds it).
    #[error(transparent)]
    State(#[from] mirror_state::Error),
    /// The mirror's files could not be written.
    #[error(transparent)]
    Store(#[from] mirror_store::Error),
    /// The downloader could not be set up.
    #[error(transparent)]
    Fetch(#[from] mirror_fetch::FetchError),
    /// The options cannot be used together, or something the run needs is not known.
    #[error("{0}")]
    Config(String),
    /// The async runtime could not be started.
    #[error("starting the async runtime: {source}")]
    Runtime {
        /// The underlying error.
        source: std::io::Error,
    },
    /// A worker task panicked or was lost.
    #[error("a worker task failed: {0}")]
    Task(String),
    /// The run was interrupted before it could start its work.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Whether another process holds the mirror's state (a second sync on the same mirror).
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::State(mirror_state::Error::Locked { .. }))
    }
}
