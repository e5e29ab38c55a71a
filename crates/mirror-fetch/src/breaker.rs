//! Giving up on a host: after too many downloads in a row failed at one host (refused, or failed
//! every attempt), the fetcher sends that host no more requests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use reqwest::Url;

use crate::FetchErrorKind;

/// A host the fetcher stopped sending requests to, because
/// [`FetchOptions::max_consecutive_failures`](crate::FetchOptions::max_consecutive_failures)
/// downloads from it failed in a row with no success in between. See
/// [`Fetcher::stopped_host`](crate::Fetcher::stopped_host).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostStop {
    /// The host, with its port when the URL gives one (`registry.example`, `127.0.0.1:8080`).
    pub host: String,
    /// The class of the failure that made the fetcher stop.
    pub kind: FetchErrorKind,
    /// Downloads from the host that failed in a row.
    pub failures: u32,
    /// The message of the failure that made the fetcher stop, with its URL.
    pub last_error: String,
}

impl fmt::Display for HostStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed {} downloads in a row ({}); the last: {}",
            self.host, self.failures, self.kind, self.last_error
        )
    }
}

/// The host part of a URL as the breaker keys it: the host, and the port when one is given.
pub(crate) fn host_key(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The host of a URL string, or `None` when it does not parse.
pub(crate) fn host_of(url: &str) -> Option<String> {
    Url::parse(url).ok().map(|url| host_key(&url))
}

/// Whether a failed download says something about the host rather than the file: it refused us,
/// failed every attempt with a server error or a `429`, or could not be reached. A `404`, a
/// checksum mismatch or a body that broke off are about one file and do not count.
pub(crate) fn counts_against_host(kind: &FetchErrorKind) -> bool {
    matches!(
        kind,
        FetchErrorKind::Forbidden
            | FetchErrorKind::Http(_)
            | FetchErrorKind::Network
            | FetchErrorKind::Timeout
    )
}

/// Downloads failed in a row per host, and the hosts given up on.
#[derive(Debug)]
pub(crate) struct Breaker {
    limit: u32,
    state: Mutex<BreakerState>,
    /// Bumped when a host is given up on, so that downloads waiting out a backoff or a pause
    /// stop waiting at once.
    stopped: tokio::sync::watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct BreakerState {
    streaks: HashMap<String, u32>,
    /// Hosts given up on, in the order they were.
    stopped: Vec<HostStop>,
}

impl Breaker {
    pub(crate) fn new(limit: u32) -> Self {
        Breaker {
            limit,
            state: Mutex::default(),
            stopped: tokio::sync::watch::Sender::new(0),
        }
    }

    /// A download from `hosts` succeeded: their streaks start again.
    pub(crate) fn success<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) {
        let mut state = self.lock();
        for host in hosts {
            state.streaks.remove(host);
        }
    }

    /// A download from `host` failed for good with `kind`. Returns the stop when this failure
    /// made the fetcher give up on the host.
    pub(crate) fn failure(
        &self,
        host: &str,
        kind: &FetchErrorKind,
        message: impl FnOnce() -> String,
    ) -> Option<HostStop> {
        if !counts_against_host(kind) {
            return None;
        }
        let mut state = self.lock();
        if state.stopped.iter().any(|s| s.host == host) {
            return None;
        }
        let streak = state.streaks.entry(host.to_owned()).or_default();
        *streak += 1;
        if *streak < self.limit {
            return None;
        }
        let stop = HostStop {
            host: host.to_owned(),
            kind: kind.clone(),
            failures: *streak,
            last_error: message(),
        };
        state.stopped.push(stop.clone());
        drop(state);
        self.stopped.send_modify(|n| *n += 1);
        Some(stop)
    }

    /// The stop of `host`, if the fetcher gave up on it.
    pub(crate) fn stopped(&self, host: &str) -> Option<HostStop> {
        self.lock().stopped.iter().find(|s| s.host == host).cloned()
    }

    /// The first host given up on.
    pub(crate) fn first_stopped(&self) -> Option<HostStop> {
        self.lock().stopped.first().cloned()
    }

    /// Waits until the fetcher gives up on `host` (never returns while it does not).
    pub(crate) async fn wait_stopped(&self, host: &str) {
        let mut rx = self.stopped.subscribe();
        // An error means the sender is gone, which cannot happen while `self` holds it.
        if rx.wait_for(|_| self.stopped(host).is_some()).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_given_up_on_after_the_limit_of_failures_in_a_row() {
        let breaker = Breaker::new(3);
        let forbidden = FetchErrorKind::Forbidden;
        assert_eq!(breaker.failure("a", &forbidden, String::new), None);
        assert_eq!(breaker.failure("a", &forbidden, String::new), None);
        // A success in between starts the count again.
        breaker.success(["a"]);
        assert_eq!(breaker.failure("a", &forbidden, String::new), None);
        assert_eq!(breaker.failure("a", &forbidden, String::new), None);
        // Failures about one file, and other hosts, do not count.
        assert_eq!(
            breaker.failure("a", &FetchErrorKind::NotFound, String::new),
            None
        );
        assert_eq!(
            breaker.failure("b", &FetchErrorKind::Network, String::new),
            None
        );
        assert_eq!(breaker.first_stopped(), None);
        let stop = breaker
            .failure("a", &FetchErrorKind::Http(503), || "the last".into())
            .expect("the third failure in a row stops");
        assert_eq!(
            stop,
            HostStop {
                host: "a".into(),
                kind: FetchErrorKind::Http(503),
                failures: 3,
                last_error: "the last".into(),
            }
        );
        assert_eq!(breaker.stopped("a"), Some(stop.clone()));
        assert_eq!(breaker.stopped("b"), None);
        // Later failures neither stop it again nor change what is reported.
        assert_eq!(breaker.failure("a", &forbidden, String::new), None);
        assert_eq!(breaker.first_stopped(), Some(stop));
    }

    #[test]
    fn hosts_are_keyed_with_their_port() {
        assert_eq!(
            host_of("http://127.0.0.1:8080/crates/a").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            host_of("https://registry.example/x").as_deref(),
            Some("registry.example")
        );
        // The default port is not part of the URL once parsed.
        assert_eq!(
            host_of("https://registry.example:443/x").as_deref(),
            Some("registry.example")
        );
        assert_eq!(host_of("not a url"), None);
    }
}
