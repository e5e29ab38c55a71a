//! The crate's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the server could not start or stopped. Problems with single requests are answered with an
/// HTTP status and logged, never returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The mirror directory cannot be served.
    #[error("mirror directory {path}: {source}")]
    Dest {
        /// The directory as given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The base URL cannot be used in `config.json` (see [`mirror_index::BaseUrl`]); the message
    /// names the URL and what is wrong with it.
    #[error(transparent)]
    BaseUrl(mirror_index::Error),
    /// The listener's address could not be read.
    #[error("reading the listener's address: {source}")]
    LocalAddr {
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("serving on {addr}: {source}")]
    Serve {
        /// The address served on.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
