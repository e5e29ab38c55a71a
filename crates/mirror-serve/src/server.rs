//! The server: startup checks, the one request handler, and the responses it builds.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HOST, HeaderMap, HeaderValue,
    LAST_MODIFIED,
};
use axum::http::request::Parts;
use axum::http::uri::Authority;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::access_log::{self, Entry};
use crate::files::{self, Opened};
use crate::path::{self, Target};
use crate::{Error, ServeOptions, config};

/// Bytes read from a file per body chunk.
const CHUNK: usize = 128 * 1024;

/// Index files and `config.json` change with every sync: caches must revalidate (cheaply, through
/// the validators) before reusing them.
fn revalidate() -> HeaderValue {
    HeaderValue::from_static("no-cache")
}

struct Shared {
    /// The canonical mirror root.
    root: PathBuf,
    base: Base,
}

/// Where `config.json`'s `dl` points.
enum Base {
    /// A base URL given or derived from a specific listener address, without a trailing slash.
    Fixed(String),
    /// The listener is bound to an unspecified address (`0.0.0.0`, `::`): use the authority the
    /// client asked for, falling back to the listener address.
    FromRequest { fallback: String },
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = listener
        .local_addr()
        .map_err(|source| Error::LocalAddr { source })?;
    let root = canonical_dir(&options.dest).await?;
    let base = match &options.base_url {
        Some(url) => Base::Fixed(check_base_url(url)?),
        None if addr.ip().is_unspecified() => Base::FromRequest {
            fallback: format!("http://{addr}"),
        },
        None => Base::Fixed(format!("http://{addr}")),
    };
    tracing::info!(
        %addr,
        dest = %root.display(),
        base_url = match &base {
            Base::Fixed(url) => url.as_str(),
            Base::FromRequest { .. } => "(from each request's Host)",
        },
        "serving mirror"
    );
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::new(Shared { root, base }));
    // `axum::serve` speaks HTTP/1.1 and, with the `http2` feature, HTTP/2 with prior knowledge on the
    // same port: hyper-util's auto builder tells them apart by the HTTP/2 connection preface.
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Serve { addr, source })?;
    tracing::info!(%addr, "server stopped");
    Ok(())
}

async fn canonical_dir(dest: &std::path::Path) -> Result<PathBuf, Error> {
    let error = |source| Error::Dest {
        path: dest.to_owned(),
        source,
    };
    let root = tokio::fs::canonicalize(dest).await.map_err(error)?;
    let meta = tokio::fs::metadata(&root).await.map_err(error)?;
    if !meta.is_dir() {
        return Err(error(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    Ok(root)
}

/// Checks a base URL given by the user and drops its trailing slashes: the one check `publish`
/// makes too.
fn check_base_url(url: &str) -> Result<String, Error> {
    mirror_index::BaseUrl::parse(url)
        .map(|url| url.to_string())
        .map_err(Error::BaseUrl)
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let entry = Entry {
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        start: Instant::now(),
    };
    // Only the head is needed, and unlike the body it can be shared across the awaits below.
    let (request, _body) = request.into_parts();
    let response = respond(&shared, &request).await;
    access_log::wrap(response, entry)
}

async fn respond(shared: &Shared, request: &Parts) -> Response {
    let method = &request.method;
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(ALLOW, HeaderValue::from_static("GET, HEAD"))],
        )
            .into_response();
    }
    let Some(target) = path::parse(request.uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let opened = match files::open(&shared.root, target.relative()).await {
        Ok(Some(opened)) => opened,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return server_error(target.relative(), &e),
    };
    let head = method == Method::HEAD;
    match target {
        Target::Config => config_response(shared, request, opened, head).await,
        Target::Index(_) => file_response(
            &request.headers,
            opened,
            head,
            "text/plain; charset=utf-8",
            Some(revalidate()),
        ),
        // Crate files change only in the rare re-publish, so caches may use their own heuristics.
        Target::Crate(_) => file_response(
            &request.headers,
            opened,
            head,
            "application/octet-stream",
            None,
        ),
    }
}

fn file_response(
    request: &HeaderMap,
    opened: Opened,
    head: bool,
    content_type: &'static str,
    cache_control: Option<HeaderValue>,
) -> Response {
    let mut headers = HeaderMap::new();
    insert(&mut headers, ETAG, &opened.etag);
    if let Some(modified) = opened.modified {
        insert(&mut headers, LAST_MODIFIED, &files::http_date(modified));
    }
    if let Some(value) = cache_control {
        headers.insert(CACHE_CONTROL, value);
    }
    if files::not_modified(request, &opened.etag, opened.modified) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(opened.len));
    let body = if head {
        Body::empty()
    } else {
        // `take` keeps the body to the length announced, even if the file grows meanwhile.
        let reader = opened.file.take(opened.len);
        Body::from_stream(ReaderStream::with_capacity(reader, CHUNK))
    };
    (StatusCode::OK, headers, body).into_response()
}

async fn config_response(shared: &Shared, request: &Parts, opened: Opened, head: bool) -> Response {
    let rel = Target::Config.relative();
    if opened.len > config::MAX_CONFIG_LEN {
        return server_error(
            rel,
            &format!("larger than {} bytes", config::MAX_CONFIG_LEN),
        );
    }
    let mut on_disk = Vec::new();
    if let Err(e) = opened
        .file
        .take(config::MAX_CONFIG_LEN)
        .read_to_end(&mut on_disk)
        .await
    {
        return server_error(rel, &e);
    }
    let body = match config::rewrite(&on_disk, &base_url(shared, request)) {
        Ok(body) => body,
        Err(e) => return server_error(rel, &e),
    };
    let etag = config::etag(&body);
    let mut headers = HeaderMap::new();
    insert(&mut headers, ETAG, &etag);
    headers.insert(CACHE_CONTROL, revalidate());
    // No `Last-Modified`: the body depends on the base URL as well as on the file, so only the
    // entity tag can say whether it changed.
    if files::not_modified(&request.headers, &etag, None) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    (StatusCode::OK, headers, body).into_response()
}

/// The base URL for `dl` in the answer to `request`.
fn base_url(shared: &Shared, request: &Parts) -> String {
    match &shared.base {
        Base::Fixed(url) => url.clone(),
        Base::FromRequest { fallback } => {
            // HTTP/2 carries the authority in the URI, HTTP/1.1 in `Host`.
            let authority = request.uri.authority().cloned().or_else(|| {
                let host = request.headers.get(HOST)?.to_str().ok()?;
                host.parse::<Authority>().ok()
            });
            match authority {
                Some(a) if !a.as_str().contains('@') => format!("http://{a}"),
                _ => fallback.clone(),
            }
        }
    }
}

fn insert(headers: &mut HeaderMap, name: axum::http::HeaderName, value: &str) {
    let value = HeaderValue::from_str(value).expect("entity tags and HTTP dates are visible ASCII");
    headers.insert(name, value);
}

fn server_error(rel: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(path = rel, %error, "cannot serve file");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use axum::http::Request;

    use super::{Base, Shared, base_url};

    #[test]
    fn base_url_of_an_unspecified_address_comes_from_the_request() {
        let shared = Shared {
            root: "/".into(),
            base: Base::FromRequest {
                fallback: "http://0.0.0.0:8080".into(),
            },
        };
        let check = |uri: &str, host: Option<&str>, expected: &str| {
            let mut request = Request::builder().uri(uri);
            if let Some(host) = host {
                request = request.header("host", host);
            }
            let (parts, ()) = request.body(()).unwrap().into_parts();
            assert_eq!(base_url(&shared, &parts), expected, "{uri} {host:?}");
        };
        // HTTP/1.1: the Host header.
        check(
            "/index/config.json",
            Some("mirror.lan:8080"),
            "http://mirror.lan:8080",
        );
        check(
            "/index/config.json",
            Some("[::1]:8080"),
            "http://[::1]:8080",
        );
        // HTTP/2: the :authority pseudo-header, which hyper puts into the URI.
        check(
            "http://10.0.0.5:8080/index/config.json",
            None,
            "http://10.0.0.5:8080",
        );
        check("/index/config.json", None, "http://0.0.0.0:8080");
        check(
            "/index/config.json",
            Some("bad host/x"),
            "http://0.0.0.0:8080",
        );
        check(
            "/index/config.json",
            Some("user@evil.example"),
            "http://0.0.0.0:8080",
        );
    }
}
