//! Politeness: the global rate limit (governor), the adaptive slow-down on `429` / `503`, the
//! download API's own rate, the in-flight cap, backoff with jitter, and `Retry-After` (and
//! telling the caller about the pauses it asks for).

use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::{FetchError, FetchOptions};

/// Decreases of the adaptive rate are at least this far apart, so that a burst of `429`s from
/// requests that were already in flight counts as one signal, not eight.
const DECREASE_SPACING: Duration = Duration::from_secs(1);

/// Every limit a fetcher obeys, shared by all its clones.
#[derive(Debug)]
pub(crate) struct Politeness {
    /// The configured rate and burst. Its quota never changes.
    limiter: DefaultDirectRateLimiter,
    /// The adaptive rate below the configured one, and any global pause.
    adaptive: Mutex<Adaptive>,
    /// The download API's own, stricter rate.
    api: Mutex<Pacer>,
    /// Requests in flight.
    in_flight: Semaphore,
    base_rate: f64,
    min_rate: f64,
    /// The last pause a server asked for, as announced; shown while it lasts.
    announced: Mutex<Option<ServerPause>>,
}

/// A pause a server asked for with `Retry-After` (on a `429` or `503`), as the fetcher honours
/// it. See [`Fetcher::server_pause`](crate::Fetcher::server_pause).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerPause {
    /// The host that asked, with its port when the URL gives one.
    pub host: String,
    /// The status the `Retry-After` came with (`429` or `503`).
    pub status: u16,
    /// The pause the server asked for.
    pub asked: Duration,
    /// The pause honoured: `asked`, cut to
    /// [`FetchOptions::max_retry_after`](crate::FetchOptions::max_retry_after).
    pub honoured: Duration,
    /// When the pause ends (the latest end when several overlap).
    pub until: std::time::Instant,
    /// Whether every request of the fetcher waits (`429`: the server means this client), or only
    /// the retries of the downloads that were told (`503`).
    pub every_request: bool,
}

impl ServerPause {
    /// Whether the server asked for more than is honoured.
    pub fn is_capped(&self) -> bool {
        self.asked > self.honoured
    }
}

/// Governor's quota cannot change while it runs, so slowing down is a second limiter in front of
/// it: a pacer that spaces requests `1 / rate` apart while the effective rate is below the
/// configured one. At the configured rate it lets everything through to governor.
#[derive(Debug)]
struct Adaptive {
    rate: f64,
    pacer: Pacer,
    paused_until: Option<Instant>,
    last_decrease: Option<Instant>,
}

/// Spaces events at least `1 / rate` apart. Slots are reserved when asked for, so a waiter that
/// is cancelled still used its slot: the error is on the side of fewer requests.
#[derive(Debug)]
struct Pacer {
    next: Instant,
}

impl Pacer {
    fn new() -> Self {
        Pacer {
            next: Instant::now(),
        }
    }

    /// Reserves the next slot at `rate` per second, no earlier than `earliest`.
    fn reserve(&mut self, rate: f64, earliest: Instant) -> Instant {
        let slot = self.next.max(earliest);
        self.next = slot + Duration::from_secs_f64(1.0 / rate);
        slot
    }
}

impl Politeness {
    pub(crate) fn new(options: &FetchOptions) -> Result<Self, FetchError> {
        let period = Duration::from_secs_f64(1.0 / options.requests_per_second);
        let burst = NonZeroU32::new(options.burst)
            .ok_or_else(|| FetchError::config("burst must be at least 1".into()))?;
        let quota = Quota::with_period(period)
            .ok_or_else(|| FetchError::config("requests_per_second is too high".into()))?
            .allow_burst(burst);
        Ok(Politeness {
            limiter: DefaultDirectRateLimiter::direct(quota),
            adaptive: Mutex::new(Adaptive {
                rate: options.requests_per_second,
                pacer: Pacer::new(),
                paused_until: None,
                last_decrease: None,
            }),
            api: Mutex::new(Pacer::new()),
            in_flight: Semaphore::new(options.max_in_flight),
            base_rate: options.requests_per_second,
            min_rate: options.min_requests_per_second,
            announced: Mutex::new(None),
        })
    }

    /// Waits for a place among the requests in flight. The place is held until the permit drops.
    pub(crate) async fn in_flight(&self) -> SemaphorePermit<'_> {
        self.in_flight
            .acquire()
            .await
            .expect("the in-flight semaphore is never closed")
    }

    /// Waits until one more request may start: after any pause, at the adaptive rate, within
    /// governor's quota, and for the download API also at `api_rate`.
    pub(crate) async fn request_turn(&self, api_rate: Option<f64>) {
        if let Some(rate) = api_rate {
            let slot = lock(&self.api).reserve(rate, Instant::now());
            wait_until(slot).await;
        }
        let slot = {
            let mut adaptive = lock(&self.adaptive);
            let now = Instant::now();
            let earliest = adaptive.paused_until.map_or(now, |p| p.max(now));
            if adaptive.rate < self.base_rate {
                let rate = adaptive.rate;
                adaptive.pacer.reserve(rate, earliest)
            } else {
                earliest
            }
        };
        wait_until(slot).await;
        // A `Retry-After` pause that began while this request waited for its slot holds it too.
        loop {
            let paused_until = lock(&self.adaptive).paused_until;
            match paused_until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => break,
            }
        }
        while let Err(not_until) = self.limiter.check() {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            tokio::time::sleep(wait).await;
        }
    }

    /// The server said "too many requests" or "unavailable": halve the effective rate (at most
    /// once per [`DECREASE_SPACING`], never below the floor).
    pub(crate) fn slow_down(&self) {
        let mut adaptive = lock(&self.adaptive);
        let now = Instant::now();
        if adaptive
            .last_decrease
            .is_some_and(|t| now.duration_since(t) < DECREASE_SPACING)
        {
            return;
        }
        let before = adaptive.rate;
        adaptive.rate = (before / 2.0).max(self.min_rate);
        adaptive.last_decrease = Some(now);
        if adaptive.rate < before {
            // Pacing starts from now: a slot reserved long ago must not allow a burst.
            adaptive.pacer.next = adaptive.pacer.next.max(now);
            tracing::info!(
                from = before,
                to = adaptive.rate,
                "slowing down: the server asked for fewer requests"
            );
        }
    }

    /// A request succeeded: raise the effective rate by about one request per second for each
    /// second of successful traffic (additive increase), up to the configured rate.
    pub(crate) fn speed_up(&self) {
        let mut adaptive = lock(&self.adaptive);
        if adaptive.rate < self.base_rate {
            let step = (1.0 / adaptive.rate).min(1.0);
            adaptive.rate = (adaptive.rate + step).min(self.base_rate);
            if adaptive.rate >= self.base_rate {
                tracing::debug!(rate = adaptive.rate, "back at the configured rate");
            }
        }
    }

    /// No request of this fetcher starts before `until`.
    pub(crate) fn pause_until(&self, until: Instant) {
        let mut adaptive = lock(&self.adaptive);
        adaptive.paused_until = Some(adaptive.paused_until.map_or(until, |p| p.max(until)));
    }

    /// The rate requests may start at now.
    pub(crate) fn effective_rate(&self) -> f64 {
        lock(&self.adaptive).rate
    }

    /// Notes a pause a server asked for. Returns `true` when it starts a new pause (none was
    /// being shown), which is when it is worth a warning: the requests in flight when a server
    /// got unhappy all come back with the same `Retry-After`, and that is one pause, not eight.
    pub(crate) fn announce(&self, pause: ServerPause) -> bool {
        let mut announced = lock(&self.announced);
        match announced.as_mut() {
            Some(current) if current.until > std::time::Instant::now() => {
                if pause.until > current.until {
                    current.until = pause.until;
                }
                current.every_request |= pause.every_request;
                false
            }
            _ => {
                *announced = Some(pause);
                true
            }
        }
    }

    /// The pause being announced, while it lasts.
    pub(crate) fn server_pause(&self) -> Option<ServerPause> {
        lock(&self.announced)
            .clone()
            .filter(|p| p.until > std::time::Instant::now())
    }
}

/// Sleeps until `deadline`, and returns at once, without a timer, when it has passed.
///
/// Tokio rounds every deadline up to the next millisecond tick of its timer, so
/// `sleep_until(now)` does not return at once: it waits for that tick, about a millisecond. Every
/// request took that wait when no limit held it back: `mirror-cli sync --jobs 1` of 1644 small
/// files from nginx over loopback took 2.7 s with it and 0.5 s without (see
/// `docs/benchmarks.md`).
async fn wait_until(deadline: Instant) {
    if deadline > Instant::now() {
        tokio::time::sleep_until(deadline).await;
    }
}

/// The wait before attempt `failed + 1`: `initial * 2^(failed - 1)`, at most `max`, less a random
/// jitter of up to half, so that clients that failed together do not retry together.
pub(crate) fn backoff(options: &FetchOptions, failed: u32) -> Duration {
    let doublings = failed.saturating_sub(1).min(31);
    let full = options
        .backoff_initial
        .saturating_mul(1u32 << doublings)
        .min(options.backoff_max);
    full - (full / 2).mul_f64(fastrand::f64())
}

/// The `Retry-After` of a response, in delay-seconds or HTTP-date form, as the server asked (the
/// caller cuts it to its limit). `None` when absent or unreadable.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let delay = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let date = httpdate::parse_http_date(value).ok()?;
        date.duration_since(SystemTime::now()).unwrap_or_default()
    };
    Some(delay)
}

/// Locks a mutex, ignoring poisoning: the rate state stays usable after a panic elsewhere.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirror_index::DlTemplate;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn options() -> FetchOptions {
        FetchOptions::new(DlTemplate::new("http://127.0.0.1:1/dl").expect("valid template"))
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let mut o = options();
        o.backoff_initial = Duration::from_millis(100);
        o.backoff_max = Duration::from_millis(1000);
        for (failed, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let d = backoff(&o, failed);
                let full = Duration::from_millis(full);
                assert!(d <= full && d >= full / 2, "{failed}: {d:?}");
            }
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_as_asked() {
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("header"));
            retry_after(&headers)
        };
        assert_eq!(check("3"), Some(Duration::from_secs(3)));
        assert_eq!(check(" 0 "), Some(Duration::ZERO));
        // Cut to the limit by the caller, which says so when it does.
        assert_eq!(check("86400"), Some(Duration::from_secs(86400)));
        assert_eq!(check("soon"), None);
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(check(&past), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let d = check(&later).expect("a date parses");
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn overlapping_pauses_are_announced_once_and_shown_while_they_last() {
        let p = Politeness::new(&options()).expect("valid options");
        let pause = |seconds: u64, every_request| ServerPause {
            host: "registry.example".into(),
            status: if every_request { 429 } else { 503 },
            asked: Duration::from_secs(86_400),
            honoured: Duration::from_secs(seconds),
            until: std::time::Instant::now() + Duration::from_secs(seconds),
            every_request,
        };
        assert_eq!(p.server_pause(), None);
        assert!(p.announce(pause(60, false)), "a new pause is announced");
        // The others in flight came back with the same answer: the same pause, made longer.
        assert!(!p.announce(pause(90, true)));
        assert!(!p.announce(pause(30, false)));
        let shown = p.server_pause().expect("a pause is going on");
        assert!(shown.every_request && shown.is_capped());
        let left = shown.until - std::time::Instant::now();
        assert!(left > Duration::from_secs(80), "{left:?}");
        // Once it is over, there is none, and the next one is announced again.
        lock(&p.announced).as_mut().expect("announced").until = std::time::Instant::now();
        assert_eq!(p.server_pause(), None);
        assert!(p.announce(pause(10, true)));
    }

    #[test]
    fn the_rate_halves_to_a_floor_and_recovers_additively() {
        let mut o = options();
        o.requests_per_second = 16.0;
        o.min_requests_per_second = 3.0;
        let p = Politeness::new(&o).expect("valid options");
        p.slow_down();
        assert_eq!(p.effective_rate(), 8.0);
        // A second signal within a second counts as the same one.
        p.slow_down();
        assert_eq!(p.effective_rate(), 8.0);
        lock(&p.adaptive).last_decrease = None;
        p.slow_down();
        lock(&p.adaptive).last_decrease = None;
        p.slow_down();
        assert_eq!(p.effective_rate(), 3.0);
        let mut successes = 0;
        while p.effective_rate() < 16.0 {
            p.speed_up();
            successes += 1;
        }
        // About one request per second more for each second of traffic: 3 → 16 takes ~120.
        assert!((60..200).contains(&successes), "{successes}");
        assert_eq!(p.effective_rate(), 16.0);
    }
}
