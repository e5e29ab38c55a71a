//! Response bodies: a scripted body that sends, pauses and fails on cue (for body faults), and a
//! tracking wrapper that notes when a body finished streaming or was abandoned.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

/// One step of a [`Scripted`] body.
#[derive(Debug)]
pub(super) enum Step {
    /// Send these bytes as one frame.
    Send(Bytes),
    /// Send nothing for this long; the timer starts when the step is reached.
    Pause(Duration, Option<Pin<Box<Sleep>>>),
    /// Fail the body, which makes the server drop the connection (HTTP/1.1) or reset the stream
    /// (HTTP/2).
    Fail,
}

/// A body that plays its steps in order and claims `declared` bytes in its size hint.
#[derive(Debug)]
pub(super) struct Scripted {
    steps: VecDeque<Step>,
    declared: Option<u64>,
}

impl Scripted {
    /// A body of `steps`, announcing `declared` bytes (`None`: unknown length).
    pub(super) fn new(steps: impl IntoIterator<Item = Step>, declared: Option<u64>) -> Self {
        Scripted {
            steps: steps.into_iter().collect(),
            declared,
        }
    }
}

impl HttpBody for Scripted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        loop {
            match this.steps.front_mut() {
                None => return Poll::Ready(None),
                Some(Step::Send(bytes)) => {
                    let bytes = std::mem::take(bytes);
                    this.steps.pop_front();
                    if !bytes.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                }
                Some(Step::Pause(duration, sleep)) => {
                    let sleep =
                        sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(*duration)));
                    ready!(sleep.as_mut().poll(cx));
                    this.steps.pop_front();
                }
                Some(Step::Fail) => {
                    this.steps.clear();
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "injected fault: connection dropped",
                    );
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.steps.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.declared {
            Some(declared) => SizeHint::with_exact(declared),
            None => SizeHint::default(),
        }
    }
}

/// A body that calls its callback once, when the inner body ended, failed or was dropped.
pub(super) struct Tracked {
    inner: Body,
    on_finish: Option<Box<dyn FnOnce() + Send>>,
}

impl Tracked {
    /// Wraps `inner`, calling `on_finish` when it is done with.
    pub(super) fn new(inner: Body, on_finish: Box<dyn FnOnce() + Send>) -> Self {
        Tracked {
            inner,
            on_finish: Some(on_finish),
        }
    }

    fn finish(&mut self) {
        if let Some(on_finish) = self.on_finish.take() {
            on_finish();
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        // The last frame is handed over before the client can have it, so the record's
        // interval never ends after the client saw the whole body.
        if !matches!(frame, Some(Ok(_))) || this.inner.is_end_stream() {
            this.finish();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A body that never ends: the same 64 KiB chunk (of varied bytes, so nothing compresses it
/// away) for as long as it is polled, with no length announced.
#[derive(Debug)]
pub(super) struct Endless {
    chunk: Bytes,
}

impl Endless {
    pub(super) fn new() -> Self {
        let chunk: Vec<u8> = (0..64 * 1024_u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        Endless {
            chunk: Bytes::from(chunk),
        }
    }
}

impl HttpBody for Endless {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }

    fn is_end_stream(&self) -> bool {
        false
    }
}
