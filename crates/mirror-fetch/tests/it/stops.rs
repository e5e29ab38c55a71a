//! A host that keeps failing is given up on (a bounded number of requests, then none), and a
//! pause a server asks for is readable while it lasts.

use std::time::{Duration, Instant};

use mirror_fetch::{FetchErrorKind, Fetcher, HostStop};
use mirror_testkit::server::{Fault, RateFaults};

use crate::Cdn;

/// A server that answers `403` to everything gets `max_consecutive_failures` refused downloads
/// and the few in flight when the last of them came back, then nothing: every other download
/// fails at once with `HostStopped`, without a request.
#[tokio::test]
async fn a_host_that_refuses_everything_gets_a_bounded_number_of_requests() {
    const LIMIT: u32 = 10;
    const IN_FLIGHT: usize = 4;
    let cdn = Cdn::many(120, 1000).await;
    cdn.server
        .inject_rate(RateFaults::new(1, vec![(1.0, Fault::Status(403))]));
    let mut options = cdn.options();
    options.max_consecutive_failures = LIMIT;
    options.max_in_flight = IN_FLIGHT;
    let fetcher = Fetcher::new(options).expect("valid options");
    let mut tasks = Vec::new();
    for file in cdn.files.clone() {
        let fetcher = fetcher.clone();
        tasks.push(tokio::spawn(async move {
            fetcher.fetch(&file.download(), &mut Vec::new()).await
        }));
    }
    let (mut refused, mut not_sent) = (0, 0);
    for task in tasks {
        let error = task
            .await
            .expect("the task ran")
            .expect_err("nothing verifies");
        match error.kind() {
            FetchErrorKind::Forbidden => refused += 1,
            FetchErrorKind::HostStopped => {
                assert_eq!(error.attempts(), 0, "{error}");
                not_sent += 1;
            }
            other => panic!("unexpected kind {other}: {error}"),
        }
    }
    let requests = cdn.server.requests().len();
    assert_eq!(requests, refused, "one request per refused download");
    assert!(
        (LIMIT as usize..LIMIT as usize + IN_FLIGHT).contains(&requests),
        "{requests} requests reached a server that refuses everything"
    );
    assert_eq!(refused + not_sent, cdn.files.len());
    let stop = fetcher.stopped_host().expect("the host was given up on");
    assert_eq!(stop.host, cdn.server.addr().to_string());
    assert_eq!(
        (stop.kind.clone(), stop.failures),
        (FetchErrorKind::Forbidden, LIMIT)
    );
    assert!(stop.last_error.contains("403"), "{}", stop.last_error);

    // Nothing more goes out, not even for a file never asked for.
    let file = &cdn.files[0];
    let error = fetcher
        .fetch(&file.download(), &mut Vec::new())
        .await
        .expect_err("the host is given up on");
    assert_eq!(error.kind(), &FetchErrorKind::HostStopped);
    assert_eq!(cdn.server.requests().len(), requests);
}

/// A download waiting out a long `Retry-After` stops waiting when its host is given up on, and
/// reports the failure it had; failures about one file (a `404`) never stop a host, and a
/// success starts the count again.
#[tokio::test]
async fn only_failures_in_a_row_about_the_host_stop_it_and_waiting_retries_end_at_once() {
    let cdn = Cdn::many(12, 1000).await;
    let mut options = cdn.options();
    options.max_consecutive_failures = 3;
    options.max_retry_after = Duration::from_secs(60);
    let fetcher = Fetcher::new(options).expect("valid options");
    let fetch = |i: usize| {
        let (fetcher, file) = (fetcher.clone(), cdn.files[i].clone());
        async move { fetcher.fetch(&file.download(), &mut Vec::new()).await }
    };
    for file in &cdn.files[..2] {
        cdn.server.inject(&file.path(), Fault::Status(500));
    }
    for file in &cdn.files[2..6] {
        cdn.server.inject(&file.path(), Fault::Status(404));
    }
    for i in 0..6 {
        fetch(i).await.expect_err("faults injected");
    }
    // Two server errors and four 404s: not three failures in a row about the host.
    assert_eq!(fetcher.stopped_host(), None);
    fetch(6).await.expect("a success");
    // The count starts again: two more server errors do not stop the host either.
    for i in 0..2 {
        fetch(i).await.expect_err("still failing");
    }
    assert_eq!(fetcher.stopped_host(), None);

    // One download waits a minute for its retry (503 with Retry-After only delays itself)...
    let waiting = &cdn.files[7];
    cdn.server.inject(
        &waiting.path(),
        Fault::ServiceUnavailable {
            retry_after: Some(60),
        },
    );
    let started = Instant::now();
    let waiter = tokio::spawn(fetch(7));
    while fetcher.server_pause().is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "no pause seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...when a third failure in a row stops the host.
    cdn.server.inject(&cdn.files[8].path(), Fault::Status(403));
    let error = fetch(8).await.expect_err("refused");
    assert_eq!(error.kind(), &FetchErrorKind::Forbidden);
    let stop: HostStop = fetcher.stopped_host().expect("three in a row");
    assert_eq!((stop.kind, stop.failures), (FetchErrorKind::Forbidden, 3));
    let error = waiter
        .await
        .expect("the task ran")
        .expect_err("no retry after the stop");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the waiting download took {:?}",
        started.elapsed()
    );
    assert_eq!(error.kind(), &FetchErrorKind::Http(503));
    assert_eq!(error.attempts(), 1);
    assert_eq!(cdn.requests_for(&waiting.path()).len(), 1);
}

/// A `Retry-After` longer than the longest honoured is readable while it lasts, with the pause
/// asked for, the pause honoured and the host; once over, there is none.
#[tokio::test]
async fn a_long_retry_after_is_shown_capped_while_it_lasts() {
    let cdn = Cdn::many(1, 1000).await;
    let file = cdn.files[0].clone();
    let mut options = cdn.options();
    options.max_retry_after = Duration::from_secs(1);
    let fetcher = Fetcher::new(options).expect("valid options");
    let day = Fault::TooManyRequests {
        retry_after: Some(86_400),
    };
    cdn.server.inject_times(&file.path(), day, 1);
    assert_eq!(fetcher.server_pause(), None);
    let started = Instant::now();
    let task = {
        let fetcher = fetcher.clone();
        tokio::spawn(async move { fetcher.fetch(&file.download(), &mut Vec::new()).await })
    };
    let pause = loop {
        if let Some(pause) = fetcher.server_pause() {
            break pause;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no pause seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(pause.host, cdn.server.addr().to_string());
    assert_eq!(pause.status, 429);
    assert_eq!(pause.asked, Duration::from_secs(86_400));
    assert_eq!(pause.honoured, Duration::from_secs(1));
    assert!(pause.is_capped() && pause.every_request);
    let verified = task
        .await
        .expect("the task ran")
        .expect("the retry verifies");
    assert_eq!(verified.attempts, 2);
    assert_eq!(fetcher.server_pause(), None, "the pause is over");
}
