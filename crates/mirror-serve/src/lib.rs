//! The HTTP server that lets cargo use a mirror: the sparse index under `/index/` and the crate
//! files under `/crates/`, over HTTP/1.1 and cleartext HTTP/2 on one port.
//!
//! [`serve`] takes a bound listener, a [`ServeOptions`] and a shutdown future. It answers:
//!
//! - `GET`/`HEAD /index/config.json`: the file on disk, with `dl` rewritten to point at this server
//!   (`{base_url}/crates/{lowerprefix}/{crate}/{crate}-{version}.crate`) and `api` and
//!   `auth-required` removed, since this server offers no web API and no authentication;
//! - `GET`/`HEAD /index/{prefix}/{name}`: index files, with `ETag` and `Last-Modified`, answering
//!   `If-None-Match` and `If-Modified-Since` with `304 Not Modified`;
//! - `GET`/`HEAD /crates/{lowerprefix}/{name}/{name}-{version}.crate`: crate files (a `+` in the
//!   version may come literally or as `%2B`);
//! - `404` for everything else, `405` for methods other than `GET` and `HEAD`.
//!
//! Invariants: nothing outside the mirror root and nothing under `.mirror/` (or any other dot-file)
//! is ever served. Only paths of the exact shapes above are accepted (so `..`, `.`, backslashes,
//! NUL, encoded slashes and the like never reach the file system), and a file whose canonical path
//! leaves its public tree (`crates/` for crate files, `index/` for index files) through a symlink
//! is refused. Every file is opened once per request and streamed
//! from that handle, so a file replaced by rename while being served is seen whole, old or new.
//!
//! Each response is logged through `tracing` at info level (method, path, status, bytes sent,
//! duration) when its body is done or dropped.
//!
//! Slow or silent clients cannot stall it ([`Limits`]): a connection that sends no complete request
//! head within the header timeout, or sits between requests longer than the idle timeout, is
//! closed; and at most `max_connections` are held open (fewer when the open-file limit is low): at
//! the cap, the connection idle the longest is closed to admit a new one. Failed accepts (out of
//! descriptors) are logged at warn level and retried with a back-off.
//!
//! ```no_run
//! # async fn run() -> Result<(), mirror_serve::Error> {
//! use mirror_serve::{ServeOptions, serve};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.expect("port is free");
//! let options = ServeOptions {
//!     dest: "/srv/mirror".into(),
//!     base_url: Some("https://mirror.example.com".into()),
//!     limits: Default::default(),
//! };
//! // Cargo then uses `sparse+https://mirror.example.com/index/` as its registry index.
//! serve(listener, options, async {
//!     tokio::signal::ctrl_c().await.ok();
//! })
//! .await
//! # }
//! ```

mod access_log;
mod config;
mod connections;
mod error;
mod files;
mod path;
mod server;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use error::Error;

/// What to serve and how to name it. The address comes from the listener given to [`serve`].
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The mirror directory (`--dest`): `index/`, `crates/` and the private `.mirror/`.
    pub dest: PathBuf,
    /// The URL clients reach this server at (`http://` or `https://`, optionally with a path, for
    /// a server behind a reverse proxy); `config.json`'s `dl` points below it. When `None`, it is
    /// `http://{listener address}`, or, when the listener is bound to an unspecified address such as
    /// `0.0.0.0`, `http://{Host of the request}`, since `0.0.0.0` is no address a client can reach.
    pub base_url: Option<String>,
    /// The bounds that keep slow or silent clients from stalling the server.
    pub limits: Limits,
}

/// How long connections may take and how many may be open: the bounds that keep idle, silent and
/// half-sent connections from stalling the server for everyone else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a new connection may take to send its first complete request head; then it is
    /// closed. Cargo sends its request right after connecting. (Later requests on a keep-alive
    /// connection are bounded by the idle timeout.)
    pub header_timeout: Duration,
    /// How long a connection may stay open with no request in progress after its last response
    /// (including a next request head that never ends); then it is closed. Cargo reuses a
    /// connection within milliseconds, or never.
    pub idle_timeout: Duration,
    /// The most connections held open at once, lowered when the open-file limit (`ulimit -n`)
    /// leaves room for fewer. At the cap, the connection idle the longest is closed to admit a new
    /// one; when every connection has a request in progress, new ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    /// A 10 s header timeout, a 60 s idle timeout and 512 connections.
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

/// Serves the mirror at `options.dest` on `listener` until `shutdown` completes, then stops
/// accepting connections, closes idle ones, and returns once the responses in flight are sent.
/// A download of a large crate to a slow client can hold that up; a caller that must not wait can
/// put a timeout around the returned future and exit.
///
/// Fails before serving anything when `dest` is not a readable directory or `base_url` is not a
/// usable `http(s)://` URL.
///
/// Connections are bounded by `options.limits` (see [`Limits`]); failing to accept one is logged
/// and retried, never returned.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    server::serve(listener, options, shutdown).await
}
