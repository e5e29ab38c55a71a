//! A loopback registry server for tests: serves a directory tree over HTTP, with strong ETags and
//! conditional requests, and records every request it answers.
//!
//! Files are read from disk on every request, so a test may change the tree between requests.
//! Routes live in `router`; each is a thin handler over `serve_file` below a root, and every
//! request passes through one recording middleware that also applies injected [`Fault`]s.
//!
//! ```no_run
//! # async fn run() {
//! use mirror_testkit::server::TestServer;
//! let server = TestServer::start("path/to/sparse".into()).await;
//! let index_url = server.index_url(); // http://127.0.0.1:PORT/index/
//! // ... requests ...
//! for request in server.requests() {
//!     assert_eq!(request.status, 200);
//! }
//! # }
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// One request the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The method (`GET`, `HEAD`, ...).
    pub method: String,
    /// The request target's path and query, as sent (not percent-decoded).
    pub path: String,
    /// Every request header in the order sent, names lowercase, values decoded lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    /// The response status.
    pub status: u16,
    /// When the request reached the server.
    pub started: Instant,
    /// When the response head was ready (the body may still have been in flight).
    pub finished: Instant,
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

/// Misbehaviour injected for one request path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status and an empty body.
    Status(u16),
}

/// A registry server on `127.0.0.1` and a port of its own, serving a directory tree at
/// `/index/…`. It stops when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

/// What the handlers share with the [`TestServer`] handle.
#[derive(Debug)]
struct Shared {
    index_root: PathBuf,
    log: Mutex<Vec<RequestRecord>>,
    faults: Mutex<HashMap<String, Fault>>,
}

impl TestServer {
    /// Starts serving `index_root` at `/index/` on a free loopback port. Must be called inside a
    /// tokio runtime, which runs the server.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(index_root: PathBuf) -> TestServer {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a test server needs a free loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            index_root,
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
        TestServer {
            addr,
            shared,
            shutdown: Some(shutdown),
        }
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

    /// The directory served at `/index/`.
    pub fn index_root(&self) -> &Path {
        &self.shared.index_root
    }

    /// Every request answered so far, in the order the answers were ready.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Answers every request for `path` (the URL path, such as `/index/3/a/abc`) with `fault`
    /// instead of serving it, until [`TestServer::clear_faults`].
    ///
    /// # Panics
    ///
    /// When a [`Fault::Status`] is not a valid HTTP status code.
    pub fn inject(&self, path: &str, fault: Fault) {
        match fault {
            Fault::Status(code) => assert!(
                StatusCode::from_u16(code).is_ok(),
                "fault status {code} is not an HTTP status code"
            ),
        }
        lock(&self.shared.faults).insert(path.to_owned(), fault);
    }

    /// Removes every injected fault.
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

/// The server's routes. New kinds of content get a route here and a handler below.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/index/{*path}", get(index_file))
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

/// Records each request and its status, and answers with an injected fault where there is one.
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
    let fault = lock(&shared.faults).get(uri.path()).cloned();
    let response = match fault {
        Some(Fault::Status(code)) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        None => next.run(request).await,
    };
    lock(&shared.log).push(RequestRecord {
        method,
        path,
        headers,
        status: response.status().as_u16(),
        started,
        finished: Instant::now(),
    });
    response
}

/// Serves the file at `relative` (a `/`-separated path, already percent-decoded) below `root`,
/// with a strong ETag (SHA-256 of the content) and Last-Modified, answering `304` to a matching
/// `If-None-Match` (or, without one, to an `If-Modified-Since` not older than the file). A path
/// that could leave `root` is a `400`; a missing file or a directory is a `404`.
async fn serve_file(root: PathBuf, relative: String, headers: HeaderMap) -> Response {
    let Some(full) = join_inside(&root, &relative) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let read = tokio::task::spawn_blocking(move || read_inside(&root, &full)).await;
    let (bytes, modified) = match read {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => return StatusCode::NOT_FOUND.into_response(),
        Ok(Err(error)) => {
            tracing::debug!(%error, relative, "test server cannot read a file");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        Err(error) => {
            tracing::debug!(%error, relative, "test server read task failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };

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
