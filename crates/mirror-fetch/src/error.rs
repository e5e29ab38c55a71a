//! `FetchError`: why a download failed, in classes a caller can branch on.

use std::fmt;

use mirror_index::Checksum;

/// The boxed cause of an error.
type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A download that failed, or options that cannot be used. [`FetchError::kind`] says which class
/// of failure it is; the message names the URL and the number of attempts.
///
/// Boxed inside, so that a `Result<_, FetchError>` stays one pointer wide on the happy path.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct FetchError(Box<Inner>);

#[derive(Debug, thiserror::Error)]
#[error("{message}{}", Where(.url, *.attempts))]
struct Inner {
    kind: FetchErrorKind,
    url: String,
    attempts: u32,
    message: String,
    #[source]
    source: Option<Source>,
}

/// Formats the URL and attempt count after an error message.
struct Where<'a>(&'a str, u32);

impl fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            ("", _) => Ok(()),
            (url, 0 | 1) => write!(f, " ({url})"),
            (url, n) => write!(f, " ({url}, after {n} attempts)"),
        }
    }
}

impl FetchError {
    pub(crate) fn new(
        kind: FetchErrorKind,
        url: String,
        attempts: u32,
        message: String,
        source: Option<Source>,
    ) -> Self {
        FetchError(Box::new(Inner {
            kind,
            url,
            attempts,
            message,
            source,
        }))
    }

    pub(crate) fn config(message: String) -> Self {
        FetchError::new(FetchErrorKind::Config, String::new(), 0, message, None)
    }

    /// The class of failure.
    pub fn kind(&self) -> &FetchErrorKind {
        &self.0.kind
    }

    /// The URL of the last request, or an empty string when no request was made.
    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// Attempts made, the failing one included (0 when none was made).
    pub fn attempts(&self) -> u32 {
        self.0.attempts
    }

    /// What went wrong, lower-case, without the URL.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Whether the caller may try this download again later with some hope of success (see
    /// [`FetchErrorKind::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.0.kind.is_retryable()
    }
}

/// The classes of [`FetchError`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// The server has no such file (`404`, `410`, `451`).
    NotFound,
    /// The server refused access (`401`, `403`).
    Forbidden,
    /// The whole body arrived, and its SHA-256 is not the index checksum. The sink holds bytes
    /// that must be thrown away.
    ChecksumMismatch {
        /// The checksum the index gives.
        expected: Checksum,
        /// The SHA-256 of the bytes received.
        actual: Checksum,
    },
    /// The body ended (or broke off) before `Content-Length` bytes arrived.
    Truncated,
    /// Connecting, waiting for the response, or waiting for more body bytes took too long.
    Timeout,
    /// Another unexpected status, such as `500` or a `429` that outlasted every attempt.
    Http(u16),
    /// The connection failed or was reset before a response arrived.
    Network,
    /// The body is larger than [`FetchOptions::max_size`](crate::FetchOptions::max_size).
    TooLarge,
    /// The sink failed to take the bytes (an I/O error such as a full disk).
    Sink,
    /// Redirects went round in a circle or past the limit.
    RedirectLoop,
    /// A redirect without a usable `Location`, or to a scheme other than `http` / `https`.
    BadRedirect,
    /// The options cannot be used, or the HTTP client could not be built.
    Config,
    /// Nothing was sent: the fetcher gave up on the host after too many downloads from it
    /// failed in a row (see [`Fetcher::stopped_host`](crate::Fetcher::stopped_host)). The
    /// download was not tried; try it in a later run.
    HostStopped,
}

impl FetchErrorKind {
    /// Whether the same download may succeed when tried again: server errors (`5xx`), `408`,
    /// `429`, network errors, timeouts and truncated bodies. The others fail the same way again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FetchErrorKind::Http(408 | 429 | 500..=599)
                | FetchErrorKind::Network
                | FetchErrorKind::Timeout
                | FetchErrorKind::Truncated
        )
    }

    /// A short stable name for reports and JSON: `not_found`, `forbidden`, `checksum_mismatch`,
    /// `truncated`, `timeout`, `http`, `network`, `too_large`, `sink`, `redirect_loop`,
    /// `bad_redirect`, `config` or `host_stopped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FetchErrorKind::NotFound => "not_found",
            FetchErrorKind::Forbidden => "forbidden",
            FetchErrorKind::ChecksumMismatch { .. } => "checksum_mismatch",
            FetchErrorKind::Truncated => "truncated",
            FetchErrorKind::Timeout => "timeout",
            FetchErrorKind::Http(_) => "http",
            FetchErrorKind::Network => "network",
            FetchErrorKind::TooLarge => "too_large",
            FetchErrorKind::Sink => "sink",
            FetchErrorKind::RedirectLoop => "redirect_loop",
            FetchErrorKind::BadRedirect => "bad_redirect",
            FetchErrorKind::Config => "config",
            FetchErrorKind::HostStopped => "host_stopped",
        }
    }
}

impl fmt::Display for FetchErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
