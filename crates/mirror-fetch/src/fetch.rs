//! `Fetcher`: one shared HTTP client that downloads `.crate` files politely, follows redirects by
//! hand (learning the CDN template from the download API's first one), and streams each body into
//! a sink while hashing it.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use mirror_core::{Mismatch, Verified, Verifier};
use mirror_index::{Checksum, CrateName, DlTemplate, IndexEntry, Version};
use reqwest::header::{CONTENT_ENCODING, HeaderValue, LOCATION};
use reqwest::{StatusCode, Url};
use tokio::time::{Instant, timeout};
use tracing::Instrument as _;

use crate::breaker::{Breaker, HostStop, host_key, host_of};
use crate::learn::derive_template;
use crate::polite::{Politeness, ServerPause, backoff, retry_after};
use crate::{FetchError, FetchErrorKind, FetchOptions, Sink};

/// One version to download: its name (in published case), version and index checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Download<'a> {
    /// The crate name exactly as the index line gives it (the CDN is case sensitive).
    pub name: &'a CrateName,
    /// The version, `+` literal (it is sent as `%2B`).
    pub vers: &'a Version,
    /// The SHA-256 the body must have.
    pub cksum: &'a Checksum,
}

impl<'a> Download<'a> {
    /// A download of `name` `vers` whose body must hash to `cksum`.
    pub fn new(name: &'a CrateName, vers: &'a Version, cksum: &'a Checksum) -> Self {
        Download { name, vers, cksum }
    }
}

impl<'a> From<&'a IndexEntry> for Download<'a> {
    fn from(entry: &'a IndexEntry) -> Self {
        Download::new(entry.name(), entry.vers(), entry.cksum())
    }
}

/// Downloads `.crate` files politely and verifies them.
///
/// One `Fetcher` holds one connection pool and one set of limits; clones share both (it is an
/// `Arc` inside), so give every task a clone and the limits hold over all of them. See the crate
/// documentation for the limits and their defaults.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use mirror_fetch::{Download, FetchOptions, Fetcher};
/// use mirror_index::{Checksum, CrateName, DlTemplate, Version};
///
/// let mut options = FetchOptions::new(DlTemplate::new("https://registry.example/api/v1/crates")?);
/// options.contact = Some("mirror-admin@example.org".into());
/// let fetcher = Fetcher::new(options)?;
///
/// let name: CrateName = "serde".parse()?;
/// let vers: Version = "1.0.0".parse()?;
/// let cksum: Checksum = "0".repeat(64).parse()?;
/// let mut file = tokio::fs::File::create("serde-1.0.0.crate.tmp").await?;
/// let verified = fetcher.fetch(&Download::new(&name, &vers, &cksum), &mut file).await?;
/// println!("{} bytes from {} after {} attempts", verified.len, verified.url, verified.attempts);
/// // Persist what was learned, so the next run goes straight to the CDN.
/// if let Some(cdn) = fetcher.learned_template() {
///     println!("CDN template: {cdn}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Fetcher {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) client: reqwest::Client,
    pub(crate) options: FetchOptions,
    user_agent: String,
    pub(crate) polite: Politeness,
    /// Which hosts keep failing, and which are given up on.
    pub(crate) breaker: Breaker,
    /// The CDN template, seeded or learned from a redirect.
    cdn: RwLock<Option<DlTemplate>>,
    /// A template derived from one redirect, with the crate it came from, waiting for a redirect
    /// of another crate to give the same template. One sample cannot tell a fixed folder from
    /// a name (`…/se/rd/serde/…`, or a crate named like a folder of the CDN).
    candidate: Mutex<Option<(DlTemplate, String)>>,
    /// Held while a request goes to the download API to learn the CDN template, so that
    /// concurrent downloads wait for the answer instead of all asking the API.
    learning: tokio::sync::Mutex<()>,
}

/// How one attempt failed, before the attempt count is known.
pub(crate) struct Failure {
    pub(crate) kind: FetchErrorKind,
    pub(crate) url: String,
    pub(crate) message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// The `Retry-After` as the server gave it, not yet cut to the limit.
    pub(crate) retry_after: Option<Duration>,
}

impl Failure {
    /// Boxed: failures are rare, and a small `Result` keeps the happy path cheap.
    pub(crate) fn new(
        kind: FetchErrorKind,
        url: impl AsRef<str>,
        message: impl Into<String>,
    ) -> Box<Self> {
        Box::new(Failure {
            kind,
            url: url.as_ref().to_owned(),
            message: message.into(),
            source: None,
            retry_after: None,
        })
    }

    fn with_source(
        mut self: Box<Self>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Box<Self> {
        self.source = Some(Box::new(source));
        self
    }

    pub(crate) fn into_error(self, attempts: u32) -> FetchError {
        FetchError::new(self.kind, self.url, attempts, self.message, self.source)
    }
}

/// What a successful attempt read.
struct Body {
    /// Made by the core's `Verifier` from the bytes written to the sink.
    verified: Verified,
    url: Url,
}

impl Fetcher {
    /// A fetcher with its own connection pool and limits. Fails with
    /// [`FetchErrorKind::Config`] when a limit is unusable (zero, negative, not a number), the
    /// `User-Agent` is not a valid header value, or the HTTP client cannot be built.
    pub fn new(options: FetchOptions) -> Result<Self, FetchError> {
        options.validate()?;
        let user_agent = options.full_user_agent();
        if options
            .contact
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
        {
            tracing::warn!(
                user_agent,
                "no contact information in the User-Agent; registries ask for one"
            );
        }
        let header = HeaderValue::from_str(&user_agent)
            .map_err(|_| FetchError::config(format!("invalid User-Agent {user_agent:?}")))?;
        // Redirects are followed by hand (to learn the CDN and to refuse odd schemes), and bodies
        // are never decompressed: the bytes hashed are the bytes served. The `no_*` calls keep it
        // so even if another crate in the build enables reqwest's decompression features.
        let client = reqwest::Client::builder()
            .user_agent(header)
            .redirect(reqwest::redirect::Policy::none())
            .no_gzip()
            .no_brotli()
            .no_zstd()
            .no_deflate()
            .connect_timeout(options.connect_timeout)
            .pool_max_idle_per_host(options.max_in_flight)
            .build()
            .map_err(|e| {
                let message = format!("cannot build the HTTP client: {e}");
                FetchError::new(
                    FetchErrorKind::Config,
                    String::new(),
                    0,
                    message,
                    Some(Box::new(e)),
                )
            })?;
        let polite = Politeness::new(&options)?;
        let breaker = Breaker::new(options.max_consecutive_failures);
        let cdn = options.cdn_template.clone();
        Ok(Fetcher {
            inner: Arc::new(Inner {
                client,
                user_agent,
                polite,
                breaker,
                cdn: RwLock::new(cdn),
                candidate: Mutex::new(None),
                learning: tokio::sync::Mutex::new(()),
                options,
            }),
        })
    }

    /// The options this fetcher was made with.
    pub fn options(&self) -> &FetchOptions {
        &self.inner.options
    }

    /// The `User-Agent` sent with every request.
    pub fn user_agent(&self) -> &str {
        &self.inner.user_agent
    }

    /// The CDN template learned from a download-API redirect, or the one seeded through
    /// [`FetchOptions::cdn_template`]; `None` while unknown. Nothing is learned when `dl` has
    /// markers: downloads then go straight to `dl`.
    pub fn learned_template(&self) -> Option<DlTemplate> {
        self.inner
            .cdn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The rate requests may start at now, in requests per second: the configured rate, or less
    /// after the server answered `429` or `503`.
    pub fn effective_rate(&self) -> f64 {
        self.inner.polite.effective_rate()
    }

    /// The first host this fetcher gave up on: once
    /// [`FetchOptions::max_consecutive_failures`] downloads from a host failed in a row (it
    /// refused them, answered `429` or a server error to every attempt, or could not be
    /// reached), no more requests go to it, downloads waiting to retry there stop waiting, and
    /// new downloads from it fail at once with [`FetchErrorKind::HostStopped`], sending nothing.
    /// `None` while every host is still tried.
    ///
    /// A caller downloading many files should stop starting downloads when this is `Some`: the
    /// host is refusing or failing, and hammering it helps no one.
    pub fn stopped_host(&self) -> Option<HostStop> {
        self.inner.breaker.first_stopped()
    }

    /// The pause a server asked for with `Retry-After` that is going on now, if any (for
    /// showing progress: nothing is downloaded while it lasts). Each new pause is also logged
    /// as a warning, with the host, the pause asked for and the pause honoured.
    pub fn server_pause(&self) -> Option<ServerPause> {
        self.inner.polite.server_pause()
    }

    /// The URL a download starts at now: the CDN when its template is known, else `dl`.
    pub fn url(&self, download: &Download<'_>) -> String {
        self.start(download).0
    }

    /// The first URL of a download, and whether it is the download API.
    fn start(&self, d: &Download<'_>) -> (String, bool) {
        let dl = &self.inner.options.dl;
        if dl.has_markers() {
            return (dl.expand(d.name, d.vers, d.cksum), false);
        }
        match self.learned_template() {
            Some(cdn) => (cdn.expand(d.name, d.vers, d.cksum), false),
            None => (dl.expand(d.name, d.vers, d.cksum), true),
        }
    }

    /// Downloads one version into `sink`, hashing every byte, and returns [`Verified`] only when
    /// the SHA-256 of the whole body is `download.cksum`.
    ///
    /// Retryable failures (see [`FetchErrorKind::is_retryable`]) are tried again up to
    /// [`FetchOptions::max_attempts`] times in all, after an exponential backoff with jitter or
    /// the server's `Retry-After`, whichever is longer. The sink is reset before every attempt;
    /// after an error its content must be discarded.
    pub async fn fetch<S: Sink + ?Sized>(
        &self,
        download: &Download<'_>,
        sink: &mut S,
    ) -> Result<Verified, FetchError> {
        let span =
            tracing::debug_span!("fetch", crate_name = %download.name, vers = %download.vers);
        self.fetch_inner(download, sink).instrument(span).await
    }

    async fn fetch_inner<S: Sink + ?Sized>(
        &self,
        download: &Download<'_>,
        sink: &mut S,
    ) -> Result<Verified, FetchError> {
        let options = &self.inner.options;
        let polite = &self.inner.polite;
        let breaker = &self.inner.breaker;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.attempt(download, sink).await {
                Ok(body) => {
                    polite.speed_up();
                    let first = host_of(&self.url(download));
                    let last = host_key(&body.url);
                    breaker.success(first.as_deref().into_iter().chain([last.as_str()]));
                    tracing::debug!(url = %body.url, len = body.verified.len, attempt, "verified");
                    return Ok(body.verified.with_origin(attempt, body.url));
                }
                Err(failure) => failure,
            };
            if failure.kind == FetchErrorKind::HostStopped {
                // Nothing was sent this time.
                return Err(failure.into_error(attempt - 1));
            }
            if matches!(failure.kind, FetchErrorKind::Http(429 | 503)) {
                polite.slow_down();
            }
            let host = host_of(&failure.url).unwrap_or_default();
            let mut retry_after = None;
            if let (FetchErrorKind::Http(status), Some(asked)) =
                (&failure.kind, failure.retry_after)
            {
                let wait = asked.min(options.max_retry_after);
                retry_after = Some(wait);
                let every_request = *status == 429;
                if every_request {
                    // "Too many requests" is about this client, not this file: every request
                    // waits.
                    polite.pause_until(Instant::now() + wait);
                }
                self.announce_pause(&host, *status, asked, wait, every_request);
            }
            let exhausted = !failure.kind.is_retryable() || attempt >= options.max_attempts;
            if exhausted {
                tracing::debug!(url = failure.url, kind = %failure.kind, attempt, "download failed");
                let error = failure.into_error(attempt);
                if let Some(stop) = breaker.failure(&host, error.kind(), || error.to_string()) {
                    tracing::info!("{stop}; sending it no more requests");
                }
                return Err(error);
            }
            if breaker.stopped(&host).is_some() {
                // The host was given up on while this download was in flight: no retry.
                return Err(failure.into_error(attempt));
            }
            let delay = backoff(options, attempt).max(retry_after.unwrap_or_default());
            tracing::info!(
                url = failure.url,
                kind = %failure.kind,
                message = failure.message,
                attempt,
                delay_ms = delay.as_millis() as u64,
                "download failed; retrying"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                // Given up on while waiting: the retry would not be sent anyway.
                () = breaker.wait_stopped(&host) => {
                    return Err(failure.into_error(attempt));
                }
            }
        }
    }

    /// Notes a `Retry-After` pause and warns when it starts a new one: a long pause otherwise
    /// looks like a run that hangs.
    pub(crate) fn announce_pause(
        &self,
        host: &str,
        status: u16,
        asked: Duration,
        honoured: Duration,
        every_request: bool,
    ) {
        let pause = ServerPause {
            host: host.to_owned(),
            status,
            asked,
            honoured,
            until: std::time::Instant::now() + honoured,
            every_request,
        };
        let capped = pause.is_capped();
        if !self.inner.polite.announce(pause) {
            return;
        }
        let whom = if every_request {
            "no request starts until then"
        } else {
            "the downloads it answered so wait before their retry"
        };
        if capped {
            tracing::warn!(
                "{host} asked for a pause of {} s (Retry-After on a {status}); pausing {} s, the longest honoured (capped); {whom}",
                asked.as_secs(),
                honoured.as_secs()
            );
        } else {
            tracing::warn!(
                "{host} asked for a pause of {} s (Retry-After on a {status}); pausing; {whom}",
                asked.as_secs()
            );
        }
    }

    /// One attempt: a place among the requests in flight, requests along redirects, then the
    /// body streamed into the sink and hashed.
    async fn attempt<S: Sink + ?Sized>(
        &self,
        download: &Download<'_>,
        sink: &mut S,
    ) -> Result<Body, Box<Failure>> {
        let inner = &*self.inner;
        sink.reset().await.map_err(|e| {
            Failure::new(
                FetchErrorKind::Sink,
                self.url(download),
                format!("resetting the sink: {e}"),
            )
            .with_source(e)
        })?;
        // Always the permit first, then the learning lock: a task holding the lock never waits
        // for a permit held by a task that waits for the lock.
        let _permit = inner.polite.in_flight().await;
        let (mut first, mut via_api) = self.start(download);
        let mut learning = None;
        if via_api {
            let guard = inner.learning.lock().await;
            // Another task may have learned the template while this one waited.
            (first, via_api) = self.start(download);
            if via_api {
                learning = Some(guard);
            }
        }
        self.request(download, sink, &first, via_api, learning)
            .await
    }

    /// Requests `first`, follows redirects, and reads the body.
    async fn request<S: Sink + ?Sized>(
        &self,
        download: &Download<'_>,
        sink: &mut S,
        first: &str,
        via_api: bool,
        mut learning: Option<tokio::sync::MutexGuard<'_, ()>>,
    ) -> Result<Body, Box<Failure>> {
        let inner = &*self.inner;
        let options = &inner.options;
        let mut url = Url::parse(first).map_err(|e| {
            Failure::new(
                FetchErrorKind::Config,
                first,
                format!("invalid download URL: {e}"),
            )
        })?;
        let mut api = via_api;
        let mut visited: Vec<Url> = Vec::new();
        let response = loop {
            let host = host_key(&url);
            tokio::select! {
                () = inner.polite.request_turn(api.then_some(options.api_requests_per_second)) => {}
                // Given up on while this request waited for its turn (a pause, the rate).
                () = inner.breaker.wait_stopped(&host) => {}
            }
            if let Some(stop) = inner.breaker.stopped(&host) {
                return Err(Failure::new(
                    FetchErrorKind::HostStopped,
                    &url,
                    format!(
                        "not sent: {} failed {} downloads in a row",
                        stop.host, stop.failures
                    ),
                ));
            }
            tracing::debug!(%url, "request");
            let sent = timeout(options.read_timeout, inner.client.get(url.clone()).send()).await;
            let response = match sent {
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
            let status = response.status();
            if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                break response;
            }
            let next = redirect_target(&url, &response)?;
            if api {
                self.learn(download, &next);
            }
            // The API has answered; waiting downloads may now use what was learned (or ask
            // the API themselves).
            learning = None;
            api = false;
            visited.push(url);
            if visited.contains(&next) {
                return Err(Failure::new(
                    FetchErrorKind::RedirectLoop,
                    &next,
                    "redirected back to a URL already visited",
                ));
            }
            if visited.len() > options.max_redirects as usize {
                return Err(Failure::new(
                    FetchErrorKind::RedirectLoop,
                    &next,
                    format!("more than {} redirects", options.max_redirects),
                ));
            }
            url = next;
        };
        drop(learning);

        let status = response.status();
        tracing::debug!(%url, status = status.as_u16(), "response");
        if status != StatusCode::OK {
            let kind = match status.as_u16() {
                404 | 410 | 451 => FetchErrorKind::NotFound,
                401 | 403 => FetchErrorKind::Forbidden,
                code => FetchErrorKind::Http(code),
            };
            let mut failure = Failure::new(kind, &url, format!("unexpected status {status}"));
            if matches!(status.as_u16(), 429 | 503) {
                failure.retry_after = retry_after(response.headers());
            }
            return Err(failure);
        }
        self.read_body(download, sink, url, response).await
    }

    /// Streams a `200` body into the sink, hashing it, within the size and stall limits.
    async fn read_body<S: Sink + ?Sized>(
        &self,
        download: &Download<'_>,
        sink: &mut S,
        url: Url,
        mut response: reqwest::Response,
    ) -> Result<Body, Box<Failure>> {
        let options = &self.inner.options;
        let expected_len = response.content_length();
        if let Some(len) = expected_len.filter(|len| *len > options.max_size) {
            return Err(Failure::new(
                FetchErrorKind::TooLarge,
                &url,
                format!(
                    "content-length {len} is over the limit of {} bytes",
                    options.max_size
                ),
            ));
        }
        if let Some(encoding) = response.headers().get(CONTENT_ENCODING) {
            // None was asked for; the bytes are hashed as served and the checksum decides.
            tracing::warn!(%url, ?encoding, "unexpected content-encoding");
        }
        let mut verifier = Verifier::new(*download.cksum);
        let mut len: u64 = 0;
        let body_started = tokio::time::Instant::now();
        loop {
            let elapsed = body_started.elapsed();
            if elapsed > options.stall_timeout
                && (len as f64) < elapsed.as_secs_f64() * options.min_bytes_per_second as f64
            {
                return Err(Failure::new(
                    FetchErrorKind::Timeout,
                    &url,
                    format!(
                        "the body is arriving too slowly: {len} bytes in {elapsed:?}, under {} bytes/s",
                        options.min_bytes_per_second
                    ),
                ));
            }
            let chunk = match timeout(options.stall_timeout, response.chunk()).await {
                Err(_) => {
                    return Err(Failure::new(
                        FetchErrorKind::Timeout,
                        &url,
                        format!(
                            "the body stalled after {len} bytes: nothing for {:?}",
                            options.stall_timeout
                        ),
                    ));
                }
                Ok(Err(e)) => {
                    let e = e.without_url();
                    let (kind, what) = if e.is_timeout() {
                        (FetchErrorKind::Timeout, "timed out")
                    } else {
                        (FetchErrorKind::Truncated, "broke off")
                    };
                    let message = format!("the body {what} after {len} bytes: {}", chain(&e));
                    return Err(Failure::new(kind, &url, message).with_source(e));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            len += chunk.len() as u64;
            if len > options.max_size {
                return Err(Failure::new(
                    FetchErrorKind::TooLarge,
                    &url,
                    format!("the body is over the limit of {} bytes", options.max_size),
                ));
            }
            verifier.update(&chunk);
            sink.write(&chunk).await.map_err(|e| {
                Failure::new(
                    FetchErrorKind::Sink,
                    &url,
                    format!("writing to the sink: {e}"),
                )
                .with_source(e)
            })?;
        }
        if let Some(expected) = expected_len.filter(|expected| len < *expected) {
            return Err(Failure::new(
                FetchErrorKind::Truncated,
                &url,
                format!("the body ended after {len} of {expected} bytes"),
            ));
        }
        sink.finish().await.map_err(|e| {
            Failure::new(
                FetchErrorKind::Sink,
                &url,
                format!("finishing the sink: {e}"),
            )
            .with_source(e)
        })?;
        let verified = match verifier.finish() {
            Ok(verified) => verified,
            Err(Mismatch { actual, .. }) => {
                return Err(Failure::new(
                    FetchErrorKind::ChecksumMismatch {
                        expected: *download.cksum,
                        actual,
                    },
                    &url,
                    format!(
                        "checksum mismatch for {} {}: expected {}, got {actual}",
                        download.name, download.vers, download.cksum
                    ),
                ));
            }
        };
        Ok(Body { verified, url })
    }

    /// Tries to learn the CDN template from the download API's redirect to `location`.
    fn learn(&self, d: &Download<'_>, location: &Url) {
        let derived = derive_template(location, &self.inner.options.dl, d.name, d.vers, d.cksum);
        match derived {
            Ok(template) => {
                let options = &self.inner.options;
                if template.expand(d.name, d.vers, d.cksum)
                    == options.dl.expand(d.name, d.vers, d.cksum)
                {
                    tracing::debug!(%location, "the redirect points back at the download API");
                    return;
                }
                let mut candidate = self
                    .inner
                    .candidate
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let confirmed = candidate.as_ref().is_some_and(|(t, first)| {
                    *t == template && !first.eq_ignore_ascii_case(d.name.as_str())
                });
                if !confirmed {
                    if candidate.as_ref().is_none_or(|(t, _)| *t != template) {
                        tracing::debug!(%template, "a CDN template candidate; waiting for another crate to confirm it");
                        *candidate = Some((template, d.name.to_string()));
                    }
                    return;
                }
                let mut cdn = self
                    .inner
                    .cdn
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                if cdn.is_none() {
                    tracing::info!(%template, "learned the CDN template from the redirects of two crates");
                    *cdn = Some(template);
                }
            }
            Err(reason) => {
                tracing::debug!(%location, reason, "cannot learn the CDN template from this redirect");
            }
        }
    }
}

/// Where a redirect response points, resolved against the request URL; `http` and `https` only.
pub(crate) fn redirect_target(
    url: &Url,
    response: &reqwest::Response,
) -> Result<Url, Box<Failure>> {
    let location = response.headers().get(LOCATION).ok_or_else(|| {
        Failure::new(
            FetchErrorKind::BadRedirect,
            url,
            "a redirect without a location",
        )
    })?;
    let location = location.to_str().map_err(|_| {
        Failure::new(
            FetchErrorKind::BadRedirect,
            url,
            "a redirect location that is not ASCII",
        )
    })?;
    let next = url.join(location).map_err(|e| {
        Failure::new(
            FetchErrorKind::BadRedirect,
            url,
            format!("a redirect to an invalid location {location:?}: {e}"),
        )
    })?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(Failure::new(
            FetchErrorKind::BadRedirect,
            url,
            format!("a redirect to {next}, which is not http or https"),
        ));
    }
    Ok(next)
}

/// Classifies an error that came before any response.
pub(crate) fn request_failure(url: &Url, error: reqwest::Error) -> Box<Failure> {
    let error = error.without_url();
    let kind = if error.is_timeout() {
        FetchErrorKind::Timeout
    } else {
        FetchErrorKind::Network
    };
    Failure::new(kind, url, chain(&error)).with_source(error)
}

/// An error's message with the chain of its causes (reqwest's own says little, such as "error
/// sending request").
pub(crate) fn chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
