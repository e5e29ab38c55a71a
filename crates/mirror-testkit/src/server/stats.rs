//! Measures over request records: how many requests were in flight at once, and how many began
//! within a time window.

use std::time::Duration;

use super::RequestRecord;

/// The most requests in flight at one instant, each from its `started` to its `finished`. A
/// request that finished at the very instant another started does not overlap it.
pub fn max_concurrency(records: &[RequestRecord]) -> usize {
    // Ends sort before starts at the same instant (`false < true`).
    let mut events: Vec<_> = records
        .iter()
        .flat_map(|r| [(r.started, true), (r.finished.max(r.started), false)])
        .collect();
    events.sort();
    let mut current = 0_usize;
    let mut most = 0;
    for (_, start) in events {
        if start {
            current += 1;
            most = most.max(current);
        } else {
            current = current.saturating_sub(1);
        }
    }
    most
}

/// The most requests whose `started` falls within any half-open window `[t, t + window)`.
pub fn max_requests_in_window(records: &[RequestRecord], window: Duration) -> usize {
    let mut starts: Vec<_> = records.iter().map(|r| r.started).collect();
    starts.sort();
    let mut most = 0;
    let mut first = 0;
    for (last, &at) in starts.iter().enumerate() {
        while starts
            .get(first)
            .is_some_and(|&begin| at.duration_since(begin) >= window)
        {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn record(base: Instant, start_ms: u64, end_ms: u64) -> RequestRecord {
        RequestRecord {
            method: "GET".into(),
            path: "/".into(),
            headers: Vec::new(),
            status: 200,
            started: base + Duration::from_millis(start_ms),
            finished: base + Duration::from_millis(end_ms),
            fault: None,
        }
    }

    #[test]
    fn concurrency_counts_overlaps_only() {
        let base = Instant::now();
        let check = |spans: &[(u64, u64)], expect: usize| {
            let records: Vec<_> = spans.iter().map(|&(s, e)| record(base, s, e)).collect();
            assert_eq!(max_concurrency(&records), expect, "{spans:?}");
        };
        check(&[], 0);
        check(&[(0, 10)], 1);
        check(&[(0, 10), (10, 20)], 1);
        check(&[(0, 10), (5, 20), (6, 7), (15, 30)], 3);
    }

    #[test]
    fn window_counts_starts() {
        let base = Instant::now();
        let records: Vec<_> = [0, 100, 900, 1000, 1050, 1999, 3000]
            .iter()
            .map(|&s| record(base, s, s + 1))
            .collect();
        let second = Duration::from_secs(1);
        assert_eq!(max_requests_in_window(&records, second), 4);
        assert_eq!(
            max_requests_in_window(&records, Duration::from_millis(1)),
            1
        );
        assert_eq!(max_requests_in_window(&[], second), 0);
    }
}
