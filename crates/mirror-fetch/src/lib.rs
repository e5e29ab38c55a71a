//! Polite, verified downloads of `.crate` files.
//!
//! A [`Fetcher`] is one shared HTTP client (rustls, HTTP/2 where the server offers it, a
//! connection pool) with one set of limits over every task that holds a clone. It streams each
//! body into a [`Sink`] while hashing it with SHA-256, and reports [`Verified`] only when the
//! digest of the whole body equals the index checksum; anything else is a [`FetchError`] whose
//! [`FetchErrorKind`] says what went wrong. Bodies are never decompressed (no `Accept-Encoding`
//! is sent): the bytes hashed are the bytes served.
//!
//! # Politeness
//!
//! Defaults (fields of [`FetchOptions`]; the reasoning is in `docs/politeness.md`):
//!
//! | limit | default |
//! |---|---|
//! | requests per second, over all downloads and redirects | 20, bursts of 8 |
//! | requests in flight | 8 |
//! | requests per second to the download API (a `dl` without markers) | 1 |
//! | attempts per download | 5 |
//! | backoff before retry *n* | 1 s · 2^(n−1), at most 60 s, minus up to half as jitter |
//! | longest `Retry-After` honoured | 10 min |
//! | adaptive rate after `429` / `503` | halved (once per second at most), floor 1/s; +≈1/s per second of successes |
//! | timeouts: connect / response head / body stall | 10 s / 30 s / 30 s |
//! | slowest body tolerated (after the first 30 s) | 1 KiB/s on average |
//! | largest body | 1 GiB |
//! | redirects per attempt | 5 |
//! | downloads from one host failed in a row before it gets no more requests | 30 |
//!
//! The `User-Agent` is `mirror-cli/<version> (+contact)`; without a contact a warning is logged.
//! Retried: `5xx`, `408`, `429`, network errors, timeouts and truncated bodies. `Retry-After`
//! (seconds or HTTP date) on a `429` or `503` makes the retry wait at least that long, and on a
//! `429` it pauses every request of the fetcher; each new pause is logged as a warning (with the
//! host, and whether it was cut to the longest honoured) and readable through
//! [`Fetcher::server_pause`]. A host that failed too many downloads in a row gets no more
//! requests ([`Fetcher::stopped_host`]).
//!
//! # The CDN template
//!
//! With a `dl` that has no markers, downloads start at the registry's download API, which
//! redirects to a CDN. Redirects are read by hand, and the CDN template is derived from each
//! `Location` (the name, version and checksum put back as markers, kept only when it reproduces
//! the `Location` exactly); once the redirects of two different crates give the same template, it
//! is learned and later downloads go straight to the CDN. Read it with
//! [`Fetcher::learned_template`] to persist it, and seed it with
//! [`FetchOptions::cdn_template`].
//!
//! # Hashing speed
//!
//! `sha2` 0.10 picks its SHA-NI code at run time (through `cpufeatures`) when the CPU has it, and
//! this project's machines have it. Hashing 1 GiB in one `Sha256` (release build, busy 2-core
//! machine) ran at 1.35–1.53 GB/s, level with `openssl speed -evp sha256` (1.54 GB/s) on the same
//! machine, against 0.11–0.16 GB/s with `sha2`'s `force-soft` feature: the SHA-NI path is the one
//! in use, and hashing is never what limits a download. (Test builds give `sha2` `opt-level = 3`
//! too, in the root `Cargo.toml`.)
//!
//! ```
//! use mirror_fetch::{Download, FetchErrorKind, FetchOptions, Fetcher};
//! use mirror_index::{Checksum, CrateName, DlTemplate, Version};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dl = DlTemplate::new("http://127.0.0.1:9/crates/{crate}/{crate}-{version}.crate")?;
//! let mut options = FetchOptions::new(dl);
//! options.contact = Some("mirror-admin@example.org".into());
//! options.max_attempts = 1;
//! let fetcher = Fetcher::new(options)?;
//!
//! let (name, vers): (CrateName, Version) = ("serde".parse()?, "1.0.0".parse()?);
//! let cksum: Checksum = "0".repeat(64).parse()?;
//! let download = Download::new(&name, &vers, &cksum);
//! assert_eq!(fetcher.url(&download), "http://127.0.0.1:9/crates/serde/serde-1.0.0.crate");
//!
//! // Nothing listens on port 9: the one attempt fails, classified.
//! let mut body = Vec::new();
//! let error = fetcher.fetch(&download, &mut body).await.unwrap_err();
//! assert_eq!(error.kind(), &FetchErrorKind::Network);
//! assert_eq!(error.attempts(), 1);
//! # Ok(()) }
//! ```

mod breaker;
mod error;
mod fetch;
mod learn;
mod options;
mod page;
mod polite;
mod sparse;

pub use breaker::HostStop;
pub use error::{FetchError, FetchErrorKind};
pub use fetch::{Download, Fetcher};
// Defined in the core so that the store can be a sink and hold a proof without the HTTP stack.
pub use mirror_core::{Sink, Verified};
pub use options::{DEFAULT_USER_AGENT, FetchOptions};
pub use polite::ServerPause;
pub use sparse::{SparseFile, SparseIndex, SparseOptions};
