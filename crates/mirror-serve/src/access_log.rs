//! The access log: one `tracing` event per response, emitted when its body is done or dropped, so
//! it can report the bytes actually handed to the connection and the full duration of a download.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use http_body::{Body as _, Frame, SizeHint};

/// What one log line says about a request.
pub(crate) struct Entry {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) start: Instant,
}

/// Wraps `response`'s body so that the entry is logged when the body ends or is dropped.
pub(crate) fn wrap(response: Response, entry: Entry) -> Response {
    let status = response.status();
    // hyper stops polling a body once it has sent the announced length, without waiting for the
    // end of the stream, so a body is complete when it reached that length.
    let expected = if entry.method == Method::HEAD {
        Some(0)
    } else {
        response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
    };
    response.map(|inner| {
        Body::new(LoggedBody {
            inner,
            entry,
            status,
            expected,
            bytes: 0,
            complete: false,
        })
    })
}

struct LoggedBody {
    inner: Body,
    entry: Entry,
    status: StatusCode,
    expected: Option<u64>,
    bytes: u64,
    complete: bool,
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.complete = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // An empty body (HEAD, 304, errors) may be dropped without being polled to its end.
        let complete = self.complete
            || self.inner.is_end_stream()
            || self.expected.is_some_and(|n| self.bytes >= n);
        tracing::info!(
            method = %self.entry.method,
            path = %self.entry.path,
            status = self.status.as_u16(),
            bytes = self.bytes,
            duration_ms = self.entry.start.elapsed().as_secs_f64() * 1000.0,
            complete,
            "request"
        );
    }
}
