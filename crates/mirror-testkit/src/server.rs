//! A loopback registry server for tests: serves a sparse index tree with strong ETags and
//! conditional requests, a CDN tree of `.crate` files, and crates.io's API download path that
//! redirects to the CDN; injects [`Fault`]s on demand and records every request it answers.
//!
//! Files are read from disk on every request, so a test may change the trees between requests.
//! Routes live in `router`; each is a thin handler over `serve_file` below a root, and every
//! request passes through one middleware (`record`) that applies injected faults and records the
//! request, its status, the fault applied and when its body finished.
//!
//! ```no_run
//! # async fn run() {
//! use mirror_testkit::server::{Fault, RegistryOptions, TestServer};
//! let options = RegistryOptions::new("path/to/sparse".into(), Some("path/to/cdn".into()));
//! let server = TestServer::start_registry(options).await;
//! let index_url = server.index_url(); // http://127.0.0.1:PORT/index/
//! let dl = server.dl_api(); // http://127.0.0.1:PORT/api/v1/crates
//! let retry = Fault::TooManyRequests { retry_after: Some(1) };
//! server.inject_times("/crates/a/a-1.0.0.crate", retry, 2);
//! // ... requests ...
//! for request in server.requests() {
//!     assert_eq!(request.status, 200);
//! }
//! # }
//! ```

mod body;
mod faults;
mod gzip;
mod stats;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use body::{Endless, Scripted, Step, Tracked};
use faults::FaultTable;
pub use faults::{Fault, RateFaults};
pub use gzip::gzip_zeros;
pub use stats::{max_concurrency, max_requests_in_window};

use crate::RealRegistry;

/// One request the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The method (`GET`, `HEAD`, ...).
    pub method: String,
    /// The request target's path and query, as sent (not percent-decoded).
    pub path: String,
    /// Every request header in the order sent, names lowercase, values decoded lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    /// The response status (`200` for a [`Fault::Reset`], whose head is never sent).
    pub status: u16,
    /// When the request reached the server.
    pub started: Instant,
    /// When the response body was handed over in full, failed, or was abandoned (the client went
    /// away). Until then, when the response head was ready.
    pub finished: Instant,
    /// The fault applied to this response, if any.
    pub fault: Option<Fault>,
}

impl RequestRecord {
    /// The first value of a request header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What [`TestServer::start_registry`] serves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryOptions {
    /// The sparse index tree, served at `/index/`.
    pub index_root: PathBuf,
    /// The CDN tree, holding `crates/{name}/{name}-{version}.crate`, served at `/crates/`.
    /// `None`: every crate file is a `404`.
    pub cdn_root: Option<PathBuf>,
    /// Serve a generated `/index/config.json` whose `dl` is this server's API path
    /// ([`TestServer::dl_api`]) and whose `api` is the server, instead of the file on disk, so a
    /// fixture built with any `dl` points here. `true` unless changed.
    pub rewrite_config: bool,
    /// The address to listen on. `None` (the default, and what tests want): a free port on
    /// `127.0.0.1`. A fixed address is for serving a fixture by hand, such as
    /// `cargo xtask fixtures --real --serve 127.0.0.1:8888`.
    pub addr: Option<SocketAddr>,
}

impl RegistryOptions {
    /// Options serving `index_root` and `cdn_root`, with `config.json` rewritten.
    pub fn new(index_root: PathBuf, cdn_root: Option<PathBuf>) -> Self {
        RegistryOptions {
            index_root,
            cdn_root,
            rewrite_config: true,
            addr: None,
        }
    }

    /// Options serving a [`real_registry`](crate::real_registry)'s sparse and CDN trees, with
    /// `config.json` rewritten.
    pub fn real(registry: &RealRegistry) -> Self {
        Self::new(registry.sparse.clone(), Some(registry.cdn.clone()))
    }
}

/// A registry server on `127.0.0.1` and a port of its own: the index tree at `/index/…`, crate
/// files at `/crates/{name}/{name}-{version}.crate`, and
/// `/api/v1/crates/{name}/{version}/download` redirecting to them. It speaks HTTP/1.1 and
/// cleartext HTTP/2 (prior knowledge), and stops when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

/// What the handlers share with the [`TestServer`] handle.
#[derive(Debug)]
struct Shared {
    addr: SocketAddr,
    index_root: PathBuf,
    cdn_root: Option<PathBuf>,
    rewrite_config: bool,
    log: Mutex<Log>,
    faults: Mutex<FaultTable>,
}

/// The request log. Records are numbered from the first since the server started, so a body
/// that finishes after [`TestServer::clear_requests`] cannot touch a newer record.
#[derive(Debug, Default)]
struct Log {
    /// How many records were cleared away before `records[0]`.
    base: usize,
    records: Vec<RequestRecord>,
}

impl TestServer {
    /// Starts serving `index_root` at `/index/` on a free loopback port, `config.json` as it is
    /// on disk and no crate files. Must be called inside a tokio runtime, which runs the server.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(index_root: PathBuf) -> TestServer {
        let mut options = RegistryOptions::new(index_root, None);
        options.rewrite_config = false;
        Self::start_registry(options).await
    }

    /// Starts a registry server as `options` say, on a free loopback port unless
    /// [`RegistryOptions::addr`] names one. Must be called inside a tokio runtime, which runs the
    /// server.
    ///
    /// # Panics
    ///
    /// When the address cannot be bound; [`TestServer::try_start_registry`] returns the error
    /// instead.
    pub async fn start_registry(options: RegistryOptions) -> TestServer {
        let addr = options.addr;
        Self::try_start_registry(options)
            .await
            .unwrap_or_else(|e| match addr {
                Some(addr) => panic!("a test server cannot listen on {addr}: {e}"),
                None => panic!("a test server needs a free loopback port: {e}"),
            })
    }

    /// Like [`TestServer::start_registry`], but returns the error when the address cannot be
    /// bound (such as a fixed [`RegistryOptions::addr`] already in use).
    pub async fn try_start_registry(options: RegistryOptions) -> std::io::Result<TestServer> {
        let bind = options
            .addr
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            index_root: options.index_root,
            cdn_root: options.cdn_root,
            rewrite_config: options.rewrite_config,
            log: Mutex::default(),
            faults: Mutex::default(),
        });
        let (shutdown, stop) = oneshot::channel::<()>();
        let app = router(Arc::clone(&shared));
        tokio::spawn(async move {
            let stopped = async {
                // An error means the handle was dropped without sending; stop either way.
                let _ = stop.await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::debug!(%error, "test server stopped with an error");
            }
        });
        Ok(TestServer {
            addr,
            shared,
            shutdown: Some(shutdown),
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's base URL, `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The URL of the index tree, `http://127.0.0.1:PORT/index/` (a sparse index URL without its
    /// `sparse+` prefix).
    pub fn index_url(&self) -> String {
        format!("http://{}/index/", self.addr)
    }

    /// The URL of the CDN tree, `http://127.0.0.1:PORT/crates/`.
    pub fn cdn_url(&self) -> String {
        format!("http://{}/crates/", self.addr)
    }

    /// The API download base, `http://127.0.0.1:PORT/api/v1/crates`: a `dl` without markers, so
    /// a crate's URL is `{dl}/{crate}/{version}/download`, answered with a redirect to the CDN.
    pub fn dl_api(&self) -> String {
        format!("http://{}/api/v1/crates", self.addr)
    }

    /// A `dl` template straight to the CDN:
    /// `http://127.0.0.1:PORT/crates/{crate}/{crate}-{version}.crate`.
    pub fn dl_cdn_template(&self) -> String {
        format!(
            "http://{}/crates/{{crate}}/{{crate}}-{{version}}.crate",
            self.addr
        )
    }

    /// The directory served at `/index/`.
    pub fn index_root(&self) -> &Path {
        &self.shared.index_root
    }

    /// The CDN tree (the directory holding `crates/`), if any.
    pub fn cdn_root(&self) -> Option<&Path> {
        self.shared.cdn_root.as_deref()
    }

    /// Every request answered so far, in the order the response heads were ready.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).records.clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        let mut log = lock(&self.shared.log);
        log.base += log.records.len();
        log.records.clear();
    }

    /// Answers every request for `path` with `fault`, until [`TestServer::clear_faults`].
    /// `path` is the URL path, such as `/index/3/a/abc`, as sent or percent-decoded
    /// (`/crates/a/a-1.0.0+x.crate` matches a request for `…-1.0.0%2Bx.crate`). A fault injected
    /// for a path wins over one drawn by [`TestServer::inject_rate`].
    ///
    /// # Panics
    ///
    /// When a [`Fault::Status`] is not a valid HTTP status code.
    pub fn inject(&self, path: &str, fault: Fault) {
        check(&fault);
        lock(&self.shared.faults).inject(path, fault, None);
    }

    /// Like [`TestServer::inject`], but only the next `times` requests for `path` get `fault`;
    /// later ones are served normally.
    ///
    /// # Panics
    ///
    /// When a [`Fault::Status`] is not a valid HTTP status code.
    pub fn inject_times(&self, path: &str, fault: Fault, times: u64) {
        check(&fault);
        lock(&self.shared.faults).inject(path, fault, Some(times));
    }

    /// Draws faults for crate-file requests (`/crates/…` and `/api/v1/crates/…`) from now on,
    /// as [`RateFaults`] describes, replacing an earlier rate and restarting the attempt counts.
    /// Each record's [`RequestRecord::fault`] tells what was applied.
    ///
    /// # Panics
    ///
    /// When a [`Fault::Status`] is not a valid HTTP status code.
    pub fn inject_rate(&self, rate: RateFaults) {
        rate.faults.iter().for_each(|(_, fault)| check(fault));
        lock(&self.shared.faults).set_rate(rate);
    }

    /// Removes every injected fault, per path and at a rate.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server task may already be gone with its runtime; nothing is left to stop then.
            let _ = shutdown.send(());
        }
    }
}

/// Panics on a fault the server could not send.
fn check(fault: &Fault) {
    if let Fault::Status(code) = fault {
        assert!(
            StatusCode::from_u16(*code).is_ok(),
            "fault status {code} is not an HTTP status code"
        );
    }
}

/// The server's routes. New kinds of content get a route here and a handler below.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/index/config.json", get(config_json))
        .route("/index/{*path}", get(index_file))
        .route("/crates/{name}/{file}", get(crate_file))
        .route(
            "/api/v1/crates/{name}/{version}/download",
            get(api_download),
        )
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), record))
        .with_state(shared)
}

/// Serves a file of the index tree.
async fn index_file(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    serve_file(shared.index_root.clone(), path, headers).await
}

/// Serves `config.json`: generated to point at this server, or the file on disk.
async fn config_json(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !shared.rewrite_config {
        return serve_file(shared.index_root.clone(), "config.json".into(), headers).await;
    }
    let config = serde_json::json!({
        "dl": format!("http://{}/api/v1/crates", shared.addr),
        "api": format!("http://{}", shared.addr),
    });
    serve_bytes(
        config.to_string().into_bytes(),
        None,
        "config.json",
        &headers,
    )
}

/// Serves `{name}/{file}` of the CDN tree, where `file` must be `{name}-{version}.crate`.
/// Axum has percent-decoded both, so `%2B` in a version names a file with a literal `+`.
async fn crate_file(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path((name, file)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let well_formed = file
        .strip_prefix(name.as_str())
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix(".crate"))
        .is_some_and(|version| !version.is_empty());
    let Some(cdn_root) = shared.cdn_root.as_ref().filter(|_| well_formed) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    serve_file(cdn_root.join("crates"), format!("{name}/{file}"), headers).await
}

/// Answers crates.io's download path with `302 Found` to the CDN path, as crates.io does: without
/// looking whether the version exists (the CDN answers `404` then).
async fn api_download(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path((name, version)): axum::extract::Path<(String, String)>,
) -> Response {
    let name = percent_encode(&name);
    let location = format!(
        "http://{}/crates/{name}/{name}-{}.crate",
        shared.addr,
        percent_encode(&version)
    );
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Whether a percent-decoded URL path is a crate-file request, which rate faults apply to.
fn is_crate_path(decoded: &str) -> bool {
    decoded.starts_with("/crates/") || decoded.starts_with("/api/v1/crates/")
}

/// Records each request, applies the fault it draws, and tracks when its body finished.
async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let uri = request.uri();
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let decoded = percent_decode(uri.path());
    let drawn = lock(&shared.faults).draw(uri.path(), &decoded, is_crate_path(&decoded));

    let (response, fault) = match drawn {
        None => (next.run(request).await, None),
        Some(fault) => apply(fault, request, next).await,
    };

    let (parts, body) = response.into_parts();
    let index = {
        let mut log = lock(&shared.log);
        log.records.push(RequestRecord {
            method,
            path,
            headers,
            status: parts.status.as_u16(),
            started,
            finished: Instant::now(),
            fault,
        });
        log.base + log.records.len() - 1
    };
    if body.is_end_stream() {
        return Response::from_parts(parts, body);
    }
    let on_finish = Box::new(move || {
        let finished = Instant::now();
        let mut log = lock(&shared.log);
        let position = index.checked_sub(log.base);
        if let Some(record) = position.and_then(|i| log.records.get_mut(i)) {
            record.finished = finished;
        }
    });
    Response::from_parts(parts, Body::new(Tracked::new(body, on_finish)))
}

/// Answers a request with `fault`, running the route where the fault needs its response.
/// Returns the response and the fault if it was applied.
async fn apply(fault: Fault, request: Request, next: Next) -> (Response, Option<Fault>) {
    let response = match &fault {
        Fault::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            status_response(status, None)
        }
        Fault::TooManyRequests { retry_after } => {
            status_response(StatusCode::TOO_MANY_REQUESTS, *retry_after)
        }
        Fault::ServiceUnavailable { retry_after } => {
            status_response(StatusCode::SERVICE_UNAVAILABLE, *retry_after)
        }
        // A body that fails before its first byte: hyper then drops an HTTP/1.1 connection
        // before the head leaves its buffer, and resets an HTTP/2 stream.
        Fault::Reset => Response::new(Body::new(Scripted::new([Step::Fail], None))),
        Fault::Endless => {
            let mut response = Response::new(Body::new(Endless::new()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            response
        }
        Fault::GzipBomb { size } => {
            let bomb = gzip_zeros(*size);
            let mut response = Response::new(Body::from(bomb));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            response
        }
        Fault::SlowFirstByte(delay) => {
            tokio::time::sleep(*delay).await;
            next.run(request).await
        }
        Fault::Truncate { .. } | Fault::Stall { .. } | Fault::WrongBytes => {
            let response = next.run(request).await;
            return reshape(response, fault).await;
        }
    };
    (response, Some(fault))
}

/// How long a truncated body waits after its last byte before the connection is dropped, so that
/// the bytes before the cut reach the client: plenty for loopback.
const FLUSH_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// An empty response with `status` and, when given, `Retry-After` in seconds.
fn status_response(status: StatusCode, retry_after: Option<u64>) -> Response {
    let mut response = status.into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Applies a body fault to a `200` response with a body; other responses pass unchanged.
async fn reshape(response: Response, fault: Fault) -> (Response, Option<Fault>) {
    if response.status() != StatusCode::OK || response.body().is_end_stream() {
        return (response, None);
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::debug!(%error, "test server cannot collect a body to fault");
            return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), None);
        }
    };
    let len = bytes.len();
    let cut = |after: u64, limit: usize| usize::try_from(after).map_or(limit, |a| a.min(limit));
    let steps = match &fault {
        Fault::Truncate { after } => {
            let at = cut(*after, len.saturating_sub(1));
            // Failing the body at once would drop the connection before hyper flushed the
            // bytes before the cut, so the client would see nothing; give them time to leave.
            vec![
                Step::Send(bytes.slice(..at)),
                Step::Pause(FLUSH_GRACE, None),
                Step::Fail,
            ]
        }
        Fault::Stall { after, duration } => {
            let at = cut(*after, len);
            vec![
                Step::Send(bytes.slice(..at)),
                Step::Pause(*duration, None),
                Step::Send(bytes.slice(at..)),
            ]
        }
        _ => {
            let mut wrong = bytes.to_vec();
            if let Some(byte) = wrong.get_mut(len / 2) {
                *byte = !*byte;
            }
            vec![Step::Send(Bytes::from(wrong))]
        }
    };
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let declared = u64::try_from(len).ok();
    let body = Body::new(Scripted::new(steps, declared));
    (Response::from_parts(parts, body), Some(fault))
}

/// A path segment with everything but unreserved characters percent-encoded (`+` as `%2B`).
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A URL path with `%XX` escapes decoded (lossily as UTF-8); a malformed escape stays as sent.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| byte == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves the file at `relative` (a `/`-separated path, already percent-decoded) below `root`
/// with [`serve_bytes`]. A path that could leave `root` is a `400`; a missing file or a
/// directory is a `404`.
async fn serve_file(root: PathBuf, relative: String, headers: HeaderMap) -> Response {
    let Some(full) = join_inside(&root, &relative) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let read = tokio::task::spawn_blocking(move || read_inside(&root, &full)).await;
    match read {
        Ok(Ok(Some((bytes, modified)))) => serve_bytes(bytes, modified, &relative, &headers),
        Ok(Ok(None)) => StatusCode::NOT_FOUND.into_response(),
        Ok(Err(error)) => {
            tracing::debug!(%error, relative, "test server cannot read a file");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(error) => {
            tracing::debug!(%error, relative, "test server read task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Serves `bytes`, the content of `relative`, with a strong ETag (SHA-256 of the content) and
/// Last-Modified (when `modified` is known), answering `304` to a matching `If-None-Match` (or,
/// without one, to an `If-Modified-Since` not older than the file). The body is never
/// compressed, so `Content-Length` is the file's size.
fn serve_bytes(
    bytes: Vec<u8>,
    modified: Option<SystemTime>,
    relative: &str,
    headers: &HeaderMap,
) -> Response {
    let etag = format!("\"{:x}\"", Sha256::digest(&bytes));
    let not_modified = match headers.get(header::IF_NONE_MATCH) {
        Some(candidates) => etag_matches(candidates, &etag),
        None => match (headers.get(header::IF_MODIFIED_SINCE), modified) {
            (Some(since), Some(modified)) => since
                .to_str()
                .ok()
                .and_then(|s| httpdate::parse_http_date(s).ok())
                // HTTP dates have whole seconds, so compare the file time at that precision.
                .is_some_and(|since| SystemTime::from(httpdate::HttpDate::from(modified)) <= since),
            _ => false,
        },
    };

    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let content_type = if relative.ends_with(".json") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        let mut response = Response::new(Body::from(bytes));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let response_headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, etag);
    }
    if let Some(modified) = modified
        && let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(modified))
    {
        response_headers.insert(header::LAST_MODIFIED, value);
    }
    response
}

/// Whether an `If-None-Match` value lists `etag` (weak comparison, as RFC 9110 asks) or is `*`.
fn etag_matches(candidates: &HeaderValue, etag: &str) -> bool {
    let Ok(candidates) = candidates.to_str() else {
        return false;
    };
    candidates.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// `root` joined with `relative`, unless `relative` is absolute, empty, or has an empty, `.` or
/// `..` component, a backslash, a colon or a NUL — anything that could name a file outside
/// `root` on some platform.
fn join_inside(root: &Path, relative: &str) -> Option<PathBuf> {
    let mut full = root.to_path_buf();
    for part in relative.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains(['\\', ':', '\0']) {
            return None;
        }
        full.push(part);
    }
    Some(full)
}

/// Reads a regular file and its modification time, or `None` when there is no such file.
/// A symlink that leads out of `root` counts as missing.
fn read_inside(root: &Path, full: &Path) -> std::io::Result<Option<(Vec<u8>, Option<SystemTime>)>> {
    let missing = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        )
    };
    let real = match full.canonicalize() {
        Ok(real) => real,
        Err(e) if missing(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    if !real.starts_with(root.canonicalize()?) {
        return Ok(None);
    }
    let meta = std::fs::metadata(&real)?;
    if !meta.is_file() {
        return Ok(None);
    }
    match std::fs::read(&real) {
        Ok(bytes) => Ok(Some((bytes, meta.modified().ok()))),
        Err(e) if missing(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Locks a mutex, ignoring poisoning: the data (a log, a table) stays usable after a panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_escape_are_refused() {
        let root = Path::new("/srv/index");
        assert_eq!(
            join_inside(root, "3/a/abc"),
            Some(PathBuf::from("/srv/index/3/a/abc"))
        );
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a\\..\\x",
            "c:x",
            "a\0",
        ] {
            assert_eq!(join_inside(root, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn percent_coding_round_trips_build_metadata() {
        assert_eq!(percent_encode("1.0.0+spec-1.1.0"), "1.0.0%2Bspec-1.1.0");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
        for (raw, decoded) in [
            ("/crates/a/a-1.0.0%2Bx.crate", "/crates/a/a-1.0.0+x.crate"),
            ("/crates/a/a-1.0.0%2bx.crate", "/crates/a/a-1.0.0+x.crate"),
            ("/x%", "/x%"),
            ("/x%2", "/x%2"),
            ("/x%zz", "/x%zz"),
            ("/%E2%9C%93", "/\u{2713}"),
        ] {
            assert_eq!(percent_decode(raw), decoded, "{raw}");
        }
    }

    #[tokio::test]
    async fn a_fixed_address_is_used_and_a_taken_one_is_an_error() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut options = RegistryOptions::new(dir.path().to_path_buf(), None);
        // A port that was free a moment ago; another process could take it in between, which
        // would only make this test fail, never pass wrongly.
        let free = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        options.addr = Some(free);
        let server = TestServer::try_start_registry(options.clone())
            .await
            .expect("the port is free");
        assert_eq!(server.addr(), free);
        assert_eq!(server.dl_api(), format!("http://{free}/api/v1/crates"));
        let taken = TestServer::try_start_registry(options).await;
        assert_eq!(
            taken.map(|s| s.addr()).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::AddrInUse)
        );
    }

    #[test]
    fn etags_match_lists_weak_tags_and_stars() {
        let tag = "\"abc\"";
        for (header, expect) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("abc", false),
        ] {
            let value = HeaderValue::from_static(header);
            assert_eq!(etag_matches(&value, tag), expect, "{header}");
        }
    }
}
