//! The politeness limits as the server sees them: requests per second, requests in flight, the
//! identifying `User-Agent`, and no `Accept-Encoding`.

use std::time::Duration;

use mirror_fetch::{FetchErrorKind, FetchOptions, Fetcher};
use mirror_testkit::server::{Fault, max_concurrency, max_requests_in_window};

use crate::{CONTACT, Cdn};

/// Downloads every file of `cdn` at once, one task each, and checks each verified.
async fn fetch_all(cdn: &Cdn, fetcher: &Fetcher) {
    let mut tasks = Vec::new();
    for file in cdn.files.clone() {
        let fetcher = fetcher.clone();
        tasks.push(tokio::spawn(async move {
            let mut sink = Vec::new();
            let verified = fetcher.fetch(&file.download(), &mut sink).await;
            (file, sink, verified)
        }));
    }
    for task in tasks {
        let (file, sink, verified) = task.await.expect("the task ran");
        let verified = verified.unwrap_or_else(|e| panic!("{}: {e}", file.name));
        assert_eq!(verified.sha256, file.cksum);
        assert!(sink == file.bytes);
    }
}

/// 40 downloads at 20 requests per second with bursts of 4: no window of the server's log holds
/// more request starts than the quota allows (the burst plus the rate times the window).
#[tokio::test]
async fn the_request_rate_stays_under_the_limit() {
    let cdn = Cdn::many(40, 2000).await;
    let mut options = cdn.options();
    options.requests_per_second = 20.0;
    options.min_requests_per_second = 20.0;
    options.burst = 4;
    let fetcher = Fetcher::new(options).expect("valid options");
    fetch_all(&cdn, &fetcher).await;

    let requests = cdn.server.requests();
    assert_eq!(requests.len(), 40);
    for (window_ms, most) in [(1000, 4 + 20), (500, 4 + 10), (250, 4 + 5), (50, 4 + 1)] {
        let seen = max_requests_in_window(&requests, Duration::from_millis(window_ms));
        assert!(
            seen <= most,
            "{seen} requests in {window_ms} ms, limit {most}"
        );
    }
    // And the limit is not far below the setting: 40 requests took about (40 - 4) / 20 s.
    let first = requests.iter().map(|r| r.started).min().expect("requests");
    let last = requests.iter().map(|r| r.started).max().expect("requests");
    let span = last.duration_since(first);
    assert!(span >= Duration::from_millis(1700), "{span:?}");
    assert!(span < Duration::from_secs(4), "{span:?}");
}

/// 24 slow downloads with 3 in flight: the server never sees more than 3 at once, and does see 3.
#[tokio::test]
async fn requests_in_flight_stay_under_the_cap() {
    let cdn = Cdn::many(24, 50_000).await;
    for file in &cdn.files {
        let slow = Fault::SlowFirstByte(Duration::from_millis(60));
        cdn.server.inject(&file.path(), slow);
    }
    let mut options = cdn.options();
    options.max_in_flight = 3;
    let fetcher = Fetcher::new(options).expect("valid options");
    fetch_all(&cdn, &fetcher).await;
    let requests = cdn.server.requests();
    assert_eq!(requests.len(), 24);
    assert_eq!(max_concurrency(&requests), 3);
}

/// Every request says who is asking and how to reach them, and asks for no encoding.
#[tokio::test]
async fn requests_identify_themselves_and_ask_for_no_encoding() {
    let cdn = Cdn::many(1, 100).await;
    let fetcher = Fetcher::new(cdn.options()).expect("valid options");
    let expected = format!("mirror-cli/{} (+{CONTACT})", env!("CARGO_PKG_VERSION"));
    assert_eq!(fetcher.user_agent(), expected);
    fetch_all(&cdn, &fetcher).await;
    let request = &cdn.server.requests()[0];
    assert_eq!(request.header("user-agent"), Some(expected.as_str()));
    assert_eq!(request.header("accept-encoding"), None);

    let mut options = cdn.options();
    options.user_agent = Some("other-tool/2.0".into());
    options.contact = None;
    let fetcher = Fetcher::new(options).expect("valid options");
    assert_eq!(fetcher.user_agent(), "other-tool/2.0");
}

/// Unusable limits are refused up front.
#[tokio::test]
async fn unusable_options_are_refused() {
    let cdn = Cdn::many(1, 100).await;
    type Change = fn(&mut FetchOptions);
    let cases: [(&str, Change); 6] = [
        ("rate", |o| o.requests_per_second = 0.0),
        ("nan", |o| o.requests_per_second = f64::NAN),
        ("floor", |o| o.min_requests_per_second = 1000.0),
        ("in flight", |o| o.max_in_flight = 0),
        ("attempts", |o| o.max_attempts = 0),
        ("agent", |o| o.contact = Some("a\nb".into())),
    ];
    for (what, change) in cases {
        let mut options = cdn.options();
        change(&mut options);
        let error = Fetcher::new(options).expect_err(what);
        assert_eq!(error.kind(), &FetchErrorKind::Config, "{what}");
    }
}
