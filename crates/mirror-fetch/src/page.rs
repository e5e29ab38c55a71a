//! `Fetcher::get_page`: one whole small file (a sparse index file, `config.json`) fetched under
//! the same politeness as downloads: a place among the requests in flight, the rate limit (with
//! its adaptive slow-down and `Retry-After` pauses), attempts with backoff and jitter, and the
//! fetcher's `User-Agent`.

use reqwest::header::{CONTENT_LENGTH, HeaderMap};
use reqwest::{StatusCode, Url};
use tokio::time::{Instant, timeout};

use crate::breaker::host_key;
use crate::fetch::{Failure, redirect_target, request_failure};
use crate::polite::{backoff, retry_after};
use crate::{FetchError, FetchErrorKind, Fetcher};

/// A response read in full: any status that is not worth retrying (`200`, `304`, `404`, ...).
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Fetcher {
    /// Gets `url` with `headers` added, following redirects, and reads the body in full (at most
    /// `max_len` bytes). Network errors, timeouts, truncated bodies and the statuses downloads
    /// retry (`408`, `429`, `5xx`) are tried again up to [`crate::FetchOptions::max_attempts`]
    /// times, after the same backoff and `Retry-After` waits as downloads; every other status is
    /// returned to the caller with its body.
    pub(crate) async fn get_page(
        &self,
        url: &Url,
        headers: &HeaderMap,
        max_len: usize,
    ) -> Result<Page, FetchError> {
        let options = &self.inner.options;
        let polite = &self.inner.polite;
        let breaker = &self.inner.breaker;
        let host = host_key(url);
        let mut attempt = 0;
        loop {
            if let Some(stop) = breaker.stopped(&host) {
                // A host given up on gets no more requests, index pages included.
                let failure = Failure::new(
                    FetchErrorKind::HostStopped,
                    url.as_str(),
                    format!(
                        "not sent: {} failed {} requests in a row",
                        stop.host, stop.failures
                    ),
                );
                return Err(failure.into_error(attempt));
            }
            attempt += 1;
            let failure = match self.page_attempt(url, headers, max_len).await {
                Ok(page) => {
                    polite.speed_up();
                    breaker.success([host.as_str()]);
                    return Ok(page);
                }
                Err(failure) => failure,
            };
            if matches!(failure.kind, FetchErrorKind::Http(429 | 503)) {
                polite.slow_down();
            }
            let mut wait = None;
            if let (FetchErrorKind::Http(status), Some(asked)) =
                (&failure.kind, failure.retry_after)
            {
                let capped = asked.min(options.max_retry_after);
                wait = Some(capped);
                let every_request = *status == 429;
                if every_request {
                    // As for downloads: "too many requests" is about this client, so all
                    // requests wait.
                    polite.pause_until(Instant::now() + capped);
                }
                self.announce_pause(&host, *status, asked, capped, every_request);
            }
            if !failure.kind.is_retryable() || attempt >= options.max_attempts {
                tracing::debug!(url = failure.url, kind = %failure.kind, attempt, "request failed");
                let error = failure.into_error(attempt);
                if let Some(stop) = breaker.failure(&host, error.kind(), || error.to_string()) {
                    tracing::info!("{stop}; sending it no more requests");
                }
                return Err(error);
            }
            let delay = backoff(options, attempt).max(wait.unwrap_or_default());
            tracing::info!(
                url = failure.url,
                kind = %failure.kind,
                message = failure.message,
                attempt,
                delay_ms = delay.as_millis() as u64,
                "request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt: a place in flight for the whole exchange, a turn of the rate limit for every
    /// request along the redirects, then the body.
    async fn page_attempt(
        &self,
        first: &Url,
        headers: &HeaderMap,
        max_len: usize,
    ) -> Result<Page, Box<Failure>> {
        let inner = &*self.inner;
        let options = &inner.options;
        let _permit = inner.polite.in_flight().await;
        let mut url = first.clone();
        let mut visited: Vec<Url> = Vec::new();
        let mut response = loop {
            inner.polite.request_turn(None).await;
            tracing::debug!(%url, "request");
            let request = inner.client.get(url.clone()).headers(headers.clone());
            let response = match timeout(options.read_timeout, request.send()).await {
                Err(_) => {
                    return Err(Failure::new(
                        FetchErrorKind::Timeout,
                        &url,
                        format!("no response within {:?}", options.read_timeout),
                    ));
                }
                Ok(Err(e)) => return Err(request_failure(&url, e)),
                Ok(Ok(response)) => response,
            };
            if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                break response;
            }
            let next = redirect_target(&url, &response)?;
            visited.push(url);
            if visited.contains(&next) || visited.len() > options.max_redirects as usize {
                return Err(Failure::new(
                    FetchErrorKind::RedirectLoop,
                    &next,
                    format!(
                        "redirected in a loop or more than {} times",
                        options.max_redirects
                    ),
                ));
            }
            url = next;
        };
        let status = response.status();
        tracing::debug!(%url, status = status.as_u16(), "response");
        if matches!(status.as_u16(), 408 | 429 | 500..=599) {
            let mut failure = Failure::new(
                FetchErrorKind::Http(status.as_u16()),
                &url,
                format!("unexpected status {status}"),
            );
            if matches!(status.as_u16(), 429 | 503) {
                failure.retry_after = retry_after(response.headers());
            }
            return Err(failure);
        }
        let too_large = |len: usize| {
            Failure::new(
                FetchErrorKind::TooLarge,
                &url,
                format!("the body ({len} bytes or more) is larger than {max_len} bytes"),
            )
        };
        let expected = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if let Some(len) = expected.filter(|len| *len > max_len) {
            return Err(too_large(len));
        }
        let mut body = Vec::new();
        loop {
            let chunk = match timeout(options.stall_timeout, response.chunk()).await {
                Err(_) => {
                    return Err(Failure::new(
                        FetchErrorKind::Timeout,
                        &url,
                        format!(
                            "the body stalled after {} bytes: nothing for {:?}",
                            body.len(),
                            options.stall_timeout
                        ),
                    ));
                }
                Ok(Err(e)) => {
                    let mut failure = request_failure(&url, e);
                    if failure.kind == FetchErrorKind::Network {
                        failure.kind = FetchErrorKind::Truncated;
                    }
                    return Err(failure);
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            if body.len() + chunk.len() > max_len {
                return Err(too_large(body.len() + chunk.len()));
            }
            body.extend_from_slice(&chunk);
        }
        if let Some(expected) = expected.filter(|expected| body.len() < *expected) {
            return Err(Failure::new(
                FetchErrorKind::Truncated,
                &url,
                format!("the body ended after {} of {expected} bytes", body.len()),
            ));
        }
        let headers = std::mem::take(response.headers_mut());
        Ok(Page {
            status,
            headers,
            body,
        })
    }
}
