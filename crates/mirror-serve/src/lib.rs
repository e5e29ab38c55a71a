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
//! ```no_run
//! # async fn run() -> Result<(), mirror_serve::Error> {
//! use mirror_serve::{ServeOptions, serve};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.expect("port is free");
//! let options = ServeOptions {
//!     dest: "/srv/mirror".into(),
//!     base_url: Some("https://mirror.example.com".into()),
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
mod error;
mod files;
mod path;
mod server;

use std::future::Future;
use std::path::PathBuf;

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
}

/// Serves the mirror at `options.dest` on `listener` until `shutdown` completes, then stops
/// accepting connections, closes idle ones, and returns once the responses in flight are sent.
/// A download of a large crate to a slow client can hold that up; a caller that must not wait can
/// put a timeout around the returned future and exit.
///
/// Fails before serving anything when `dest` is not a readable directory or `base_url` is not a
/// usable `http(s)://` URL.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    server::serve(listener, options, shutdown).await
}
