//! Injected misbehaviour: the [`Fault`]s a test can ask for, per path or at a rate, and the table
//! the server draws from on every request.

use std::collections::HashMap;
use std::time::Duration;

/// Misbehaviour injected into a response.
///
/// Status faults, [`Fault::Endless`] and [`Fault::GzipBomb`] answer without running the route.
/// Body faults ([`Fault::Truncate`], [`Fault::Stall`], [`Fault::WrongBytes`]) change only `200`
/// responses with a body; anything else (a redirect, a `304`, a `404`) is served unchanged and
/// its record shows no fault.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status and an empty body.
    Status(u16),
    /// Answer `429 Too Many Requests`, with `Retry-After: N` (seconds) when given.
    TooManyRequests {
        /// The `Retry-After` value in seconds; `None` sends no header.
        retry_after: Option<u64>,
    },
    /// Answer `503 Service Unavailable`, with `Retry-After: N` (seconds) when given.
    ServiceUnavailable {
        /// The `Retry-After` value in seconds; `None` sends no header.
        retry_after: Option<u64>,
    },
    /// Close the connection without an answer. Over HTTP/1.1 the client sees the connection
    /// closed before any response byte; over HTTP/2 it sees the stream reset.
    Reset,
    /// Send the full `Content-Length` but only the first `after` bytes of the body (at most one
    /// byte short of the whole), then, after a 50 ms grace that lets those bytes reach the
    /// client, close the connection (HTTP/1.1) or reset the stream (HTTP/2).
    Truncate {
        /// Bytes sent before the connection closes.
        after: u64,
    },
    /// Send the first `after` bytes of the body, send nothing for `duration`, then send the rest.
    Stall {
        /// Bytes sent before the pause.
        after: u64,
        /// How long nothing is sent.
        duration: Duration,
    },
    /// Send a body of the right length with its middle byte inverted, so its SHA-256 is wrong.
    WrongBytes,
    /// Wait this long before running the route and sending the response head.
    SlowFirstByte(Duration),
    /// Answer `200` without running the route, with no `Content-Length` and a body that never
    /// ends: 64 KiB chunks for as long as the client keeps reading.
    Endless,
    /// Answer `200` without running the route, with `Content-Encoding: gzip` and a gzip stream
    /// of `size` zero bytes as the body (see [`gzip_zeros`](super::gzip_zeros)): a few hundred
    /// times smaller than it expands to. `Content-Length` is the compressed length.
    GzipBomb {
        /// Bytes the body expands to when decompressed.
        size: u64,
    },
}

/// Faults drawn at random for crate-file requests (the CDN path `/crates/…` and the API path
/// `/api/v1/crates/…`), set with [`TestServer::inject_rate`](super::TestServer::inject_rate).
///
/// The draw is a deterministic function of the seed, the percent-decoded URL path and how many
/// requests for that path came before (see [`RateFaults::pick`]), so it does not depend on the
/// order in which concurrent requests arrive.
#[derive(Clone, Debug, PartialEq)]
pub struct RateFaults {
    /// Seed of the draw.
    pub seed: u64,
    /// Each fault with its probability; the probabilities should sum to at most 1. A request
    /// gets at most one fault.
    pub faults: Vec<(f64, Fault)>,
}

impl RateFaults {
    /// Faults drawn with `seed`.
    pub fn new(seed: u64, faults: Vec<(f64, Fault)>) -> Self {
        RateFaults { seed, faults }
    }

    /// The fault a request for `path` (percent-decoded, such as `/crates/a/a-1.0.0+x.crate`) gets
    /// when `attempt` requests for that path came before it (`0` for the first).
    pub fn pick(&self, path: &str, attempt: u64) -> Option<Fault> {
        let draw = unit(mix(self.seed, path, attempt));
        let mut below = 0.0;
        for (probability, fault) in &self.faults {
            below += probability;
            if draw < below {
                return Some(fault.clone());
            }
        }
        None
    }
}

/// A fault injected for one path, every time or a number of times.
#[derive(Debug)]
struct Injected {
    fault: Fault,
    /// Requests left to fail; `None` for every request.
    remaining: Option<u64>,
}

/// Every fault a server has been asked to inject.
#[derive(Debug, Default)]
pub(super) struct FaultTable {
    by_path: HashMap<String, Injected>,
    rate: Option<RateFaults>,
    /// Requests seen per decoded crate-file path since the rate was set.
    attempts: HashMap<String, u64>,
}

impl FaultTable {
    /// Injects `fault` for `path`, `times` times or (with `None`) every time.
    pub(super) fn inject(&mut self, path: &str, fault: Fault, times: Option<u64>) {
        if times == Some(0) {
            self.by_path.remove(path);
            return;
        }
        let injected = Injected {
            fault,
            remaining: times,
        };
        self.by_path.insert(path.to_owned(), injected);
    }

    /// Draws faults at a rate for crate-file requests from now on, counting attempts afresh.
    pub(super) fn set_rate(&mut self, rate: RateFaults) {
        self.rate = Some(rate);
        self.attempts.clear();
    }

    /// Forgets every fault and attempt count.
    pub(super) fn clear(&mut self) {
        *self = FaultTable::default();
    }

    /// The fault for one request, by its raw and percent-decoded URL path. A per-path fault wins
    /// over a rate fault; the attempt count moves on either way.
    pub(super) fn draw(&mut self, raw: &str, decoded: &str, crate_file: bool) -> Option<Fault> {
        let rated = match (&self.rate, crate_file) {
            (Some(rate), true) => {
                let attempt = self.attempts.entry(decoded.to_owned()).or_insert(0);
                let fault = rate.pick(decoded, *attempt);
                *attempt += 1;
                fault
            }
            _ => None,
        };
        let key = if self.by_path.contains_key(raw) {
            raw
        } else {
            decoded
        };
        let Some(injected) = self.by_path.get_mut(key) else {
            return rated;
        };
        let fault = injected.fault.clone();
        if let Some(remaining) = &mut injected.remaining {
            *remaining -= 1;
            if *remaining == 0 {
                self.by_path.remove(key);
            }
        }
        Some(fault)
    }
}

/// A 64-bit hash of the seed, path and attempt: FNV-1a, then SplitMix64's finaliser so that
/// nearby inputs spread over the whole range. Stable across Rust versions, unlike `std`'s hasher.
fn mix(seed: u64, path: &str, attempt: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(path.bytes())
        .chain([0xff])
        .chain(attempt.to_le_bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// A hash mapped to `[0, 1)` with 53 bits of precision.
fn unit(hash: u64) -> f64 {
    // 53 bits fit an f64 exactly, so neither cast rounds.
    (hash >> 11) as f64 / (1_u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_deterministic_and_near_the_rate() {
        let rate = RateFaults::new(7, vec![(0.25, Fault::Reset), (0.25, Fault::WrongBytes)]);
        let picks: Vec<_> = (0..4000)
            .map(|i| rate.pick(&format!("/crates/c{i}/c{i}-1.0.0.crate"), 0))
            .collect();
        let again: Vec<_> = (0..4000)
            .map(|i| rate.pick(&format!("/crates/c{i}/c{i}-1.0.0.crate"), 0))
            .collect();
        assert_eq!(picks, again);
        let resets = picks.iter().filter(|p| **p == Some(Fault::Reset)).count();
        let wrong = picks
            .iter()
            .filter(|p| **p == Some(Fault::WrongBytes))
            .count();
        assert!((900..1100).contains(&resets), "{resets}");
        assert!((900..1100).contains(&wrong), "{wrong}");
    }

    #[test]
    fn injected_times_run_out() {
        let mut table = FaultTable::default();
        table.inject("/a", Fault::Status(500), Some(2));
        let draws: Vec<_> = (0..3).map(|_| table.draw("/a", "/a", false)).collect();
        assert_eq!(
            draws,
            [Some(Fault::Status(500)), Some(Fault::Status(500)), None]
        );
    }
}
