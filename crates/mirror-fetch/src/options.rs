//! `FetchOptions`: where downloads come from, who is asking, and how politely.

use std::time::Duration;

use mirror_index::DlTemplate;

use crate::FetchError;

/// The tool part of the `User-Agent` when none is given.
pub const DEFAULT_USER_AGENT: &str = concat!("mirror-cli/", env!("CARGO_PKG_VERSION"));

/// How a [`Fetcher`](crate::Fetcher) downloads. Build it with [`FetchOptions::new`] and change
/// the fields you care about; every default is listed on its field and in `docs/politeness.md`.
///
/// ```
/// use mirror_fetch::FetchOptions;
/// use mirror_index::DlTemplate;
/// let dl = DlTemplate::new("https://registry.example/api/v1/crates").unwrap();
/// let mut options = FetchOptions::new(dl);
/// options.contact = Some("mirror-admin@example.org".into());
/// options.requests_per_second = 10.0;
/// assert_eq!(options.max_in_flight, 8);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FetchOptions {
    /// The registry's `dl` value (from `config.json`, or `--dl`). Without markers it names the
    /// registry's download API, and the CDN template is learned from its redirects.
    pub dl: DlTemplate,
    /// A CDN template learned by an earlier run ([`Fetcher::learned_template`]), so that this run
    /// goes straight to the CDN. Must have markers. Default `None`.
    ///
    /// [`Fetcher::learned_template`]: crate::Fetcher::learned_template
    pub cdn_template: Option<DlTemplate>,
    /// The tool part of the `User-Agent`, such as `my-tool/1.2`. Default `None`:
    /// [`DEFAULT_USER_AGENT`] (`mirror-cli/<version>`).
    pub user_agent: Option<String>,
    /// How the registry's operators can reach whoever runs the mirror (an e-mail address or a
    /// URL), appended to the `User-Agent` as `(+contact)`. Default `None`, which is logged as a
    /// warning: registries ask for contact information.
    pub contact: Option<String>,
    /// Requests per second over all downloads of this fetcher, redirects included. Default 20.
    pub requests_per_second: f64,
    /// How many requests may start back to back before the rate applies. Default 8.
    pub burst: u32,
    /// The floor of the adaptive rate: `429` and `503` answers halve the effective rate down to
    /// this, and successes raise it back to `requests_per_second`. Default 1.
    pub min_requests_per_second: f64,
    /// Requests per second to the download API (the `dl` URL when it has no markers), which
    /// registries rate limit strictly; once a CDN template is known the API is not used. Default 1.
    pub api_requests_per_second: f64,
    /// Requests in flight at once, from sending the request to the last body byte. Default 8.
    pub max_in_flight: usize,
    /// Limit on establishing a connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Limit on waiting for a response head after sending a request. Default 30 s.
    pub read_timeout: Duration,
    /// Limit on waiting for the next body bytes: a body that stalls longer is abandoned (and
    /// retried). Default 30 s.
    pub stall_timeout: Duration,
    /// Slowest average body speed tolerated once a body has been arriving for `stall_timeout`:
    /// a server that drips one byte just inside the stall timeout would otherwise hold a slot in
    /// flight for days. Default 1 KiB/s.
    pub min_bytes_per_second: u64,
    /// Attempts per download, the first included. Default 5.
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles with each further retry, and a random
    /// jitter of up to half of it is taken off. Default 1 s.
    pub backoff_initial: Duration,
    /// The longest backoff between attempts (before jitter). Default 60 s.
    pub backoff_max: Duration,
    /// The longest `Retry-After` honoured; a longer one is cut to this. Default 10 min.
    pub max_retry_after: Duration,
    /// The largest body accepted, checked against `Content-Length` before reading and while
    /// streaming. Default 1 GiB.
    pub max_size: u64,
    /// Redirects followed per attempt. Default 5.
    pub max_redirects: u32,
    /// Downloads from one host that may fail in a row (refused with `401`/`403`, or every
    /// attempt failed with a `429`, a server error, a timeout or no connection) before the
    /// fetcher gives up on the host and sends it nothing more (see
    /// [`Fetcher::stopped_host`](crate::Fetcher::stopped_host)). Any success from the host
    /// starts the count again. Default 30.
    pub max_consecutive_failures: u32,
}

impl FetchOptions {
    /// Default options for downloads from `dl`.
    pub fn new(dl: DlTemplate) -> Self {
        FetchOptions {
            dl,
            cdn_template: None,
            user_agent: None,
            contact: None,
            requests_per_second: 20.0,
            burst: 8,
            min_requests_per_second: 1.0,
            api_requests_per_second: 1.0,
            max_in_flight: 8,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(30),
            min_bytes_per_second: 1024,
            max_attempts: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
            max_size: 1 << 30,
            max_redirects: 5,
            max_consecutive_failures: 30,
        }
    }

    /// The `User-Agent` these options send: `tool (+contact)`, or `tool` without a contact.
    ///
    /// ```
    /// # use mirror_fetch::FetchOptions;
    /// # let dl = mirror_index::DlTemplate::new("https://registry.example/dl").unwrap();
    /// let mut options = FetchOptions::new(dl);
    /// options.contact = Some("ops@example.org".into());
    /// assert_eq!(options.full_user_agent(), format!("mirror-cli/{} (+ops@example.org)", env!("CARGO_PKG_VERSION")));
    /// ```
    pub fn full_user_agent(&self) -> String {
        let tool = self.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT);
        match self.contact.as_deref().map(str::trim) {
            Some(contact) if !contact.is_empty() => format!("{tool} (+{contact})"),
            _ => tool.to_owned(),
        }
    }

    /// Checks that every limit is usable.
    pub(crate) fn validate(&self) -> Result<(), FetchError> {
        // Bounded both ways: below one request in about 17 minutes the pacer's intervals stop
        // being meaningful durations.
        let rate_ok = |r: f64| r.is_finite() && (0.001..=1e9).contains(&r);
        let problem = if !rate_ok(self.requests_per_second) {
            Some("requests_per_second must be between 0.001 and 1e9")
        } else if !rate_ok(self.min_requests_per_second)
            || self.min_requests_per_second > self.requests_per_second
        {
            Some("min_requests_per_second must be at least 0.001 and at most requests_per_second")
        } else if !rate_ok(self.api_requests_per_second) {
            Some("api_requests_per_second must be between 0.001 and 1e9")
        } else if self.burst == 0 {
            Some("burst must be at least 1")
        } else if self.max_in_flight == 0 {
            Some("max_in_flight must be at least 1")
        } else if self.max_retry_after > Duration::from_secs(86_400) {
            Some("max_retry_after must be at most a day")
        } else if self.max_attempts == 0 {
            Some("max_attempts must be at least 1")
        } else if self.max_consecutive_failures == 0 {
            Some("max_consecutive_failures must be at least 1")
        } else if self.cdn_template.as_ref().is_some_and(|t| !t.has_markers()) {
            Some("a CDN template needs at least one marker such as {crate}")
        } else {
            None
        };
        match problem {
            Some(message) => Err(FetchError::config(message.to_owned())),
            None => Ok(()),
        }
    }
}
