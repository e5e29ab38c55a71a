//! Every fault class ends as the right error kind, retryable ones recover, retries reset the sink,
//! and `Retry-After` is honoured and capped.

use std::time::{Duration, Instant};

use mirror_fetch::{FetchErrorKind, Fetcher, Sink};
use mirror_testkit::server::Fault;

use crate::{Cdn, sha256};

const SIZE: usize = 20_000;

fn stall() -> Fault {
    Fault::Stall {
        after: 1000,
        duration: Duration::from_secs(3),
    }
}

/// Every fault, injected on every request, gives its kind after the right number of attempts
/// (all three for retryable kinds, one for the rest), one request per attempt.
#[tokio::test]
async fn each_fault_gives_its_kind() {
    let cases: Vec<(Fault, FetchErrorKind)> = vec![
        (Fault::Status(404), FetchErrorKind::NotFound),
        (Fault::Status(410), FetchErrorKind::NotFound),
        (Fault::Status(451), FetchErrorKind::NotFound),
        (Fault::Status(403), FetchErrorKind::Forbidden),
        (Fault::Status(401), FetchErrorKind::Forbidden),
        (Fault::Status(418), FetchErrorKind::Http(418)),
        (Fault::Status(500), FetchErrorKind::Http(500)),
        (Fault::Status(502), FetchErrorKind::Http(502)),
        (Fault::Status(408), FetchErrorKind::Http(408)),
        (
            Fault::TooManyRequests { retry_after: None },
            FetchErrorKind::Http(429),
        ),
        (
            Fault::ServiceUnavailable { retry_after: None },
            FetchErrorKind::Http(503),
        ),
        (Fault::Reset, FetchErrorKind::Network),
        (Fault::Truncate { after: 1000 }, FetchErrorKind::Truncated),
        (stall(), FetchErrorKind::Timeout),
        (
            Fault::SlowFirstByte(Duration::from_secs(3)),
            FetchErrorKind::Timeout,
        ),
    ];
    let cdn = Cdn::many(cases.len() + 1, SIZE).await;
    let fetcher = Fetcher::new(cdn.options()).expect("valid options");
    let mut tasks = Vec::new();
    for ((fault, kind), file) in cases.into_iter().zip(&cdn.files) {
        cdn.server.inject(&file.path(), fault.clone());
        let (fetcher, file) = (fetcher.clone(), file.clone());
        tasks.push(tokio::spawn(async move {
            let mut sink = Vec::new();
            let result = fetcher.fetch(&file.download(), &mut sink).await;
            (fault, kind, file, result)
        }));
    }
    for task in tasks {
        let (fault, kind, file, result) = task.await.expect("the task ran");
        let error = result.expect_err(&format!("{fault:?} cannot verify"));
        assert_eq!(error.kind(), &kind, "{fault:?}: {error}");
        let attempts = if kind.is_retryable() { 3 } else { 1 };
        assert_eq!(error.attempts(), attempts, "{fault:?}: {error}");
        // The server records a request when it answers; a request the client gave up on before
        // the slow head was ready is never answered, so it is not in the log.
        if !matches!(fault, Fault::SlowFirstByte(_)) {
            let requests = cdn.requests_for(&file.path());
            assert_eq!(requests.len(), attempts as usize, "{fault:?}");
        }
        assert!(
            error.url().ends_with(&file.path()),
            "{fault:?}: {}",
            error.url()
        );
        let text = error.to_string();
        assert!(text.contains(&file.path()), "{text}");
    }

    // Wrong bytes: the one fault whose body is whole. Not retried: the checksum will not change.
    let file = cdn.files.last().expect("a spare file");
    cdn.server.inject(&file.path(), Fault::WrongBytes);
    let mut sink = Vec::new();
    let error = fetcher
        .fetch(&file.download(), &mut sink)
        .await
        .expect_err("wrong bytes never verify");
    assert_eq!(
        error.kind(),
        &FetchErrorKind::ChecksumMismatch {
            expected: file.cksum,
            actual: sha256(&sink),
        }
    );
    assert_ne!(sha256(&sink), file.cksum);
    assert_eq!((error.attempts(), sink.len()), (1, SIZE));
}

/// A retryable fault on the first two requests: the third attempt verifies, and the sink holds
/// exactly the file (nothing of the failed attempts).
#[tokio::test]
async fn retryable_faults_recover() {
    let faults = [
        Fault::Status(500),
        Fault::Status(503),
        Fault::TooManyRequests { retry_after: None },
        Fault::Reset,
        Fault::Truncate { after: 5000 },
        stall(),
        Fault::SlowFirstByte(Duration::from_secs(3)),
    ];
    let cdn = Cdn::many(faults.len(), SIZE).await;
    let fetcher = Fetcher::new(cdn.options()).expect("valid options");
    let mut tasks = Vec::new();
    for (fault, file) in faults.into_iter().zip(&cdn.files) {
        cdn.server.inject_times(&file.path(), fault.clone(), 2);
        let (fetcher, file) = (fetcher.clone(), file.clone());
        tasks.push(tokio::spawn(async move {
            let mut sink = Vec::new();
            let result = fetcher.fetch(&file.download(), &mut sink).await;
            (fault, file, sink, result)
        }));
    }
    for task in tasks {
        let (fault, file, sink, result) = task.await.expect("the task ran");
        let verified = result.unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(verified.attempts, 3, "{fault:?}");
        assert_eq!(verified.sha256, file.cksum, "{fault:?}");
        assert_eq!(verified.len, SIZE as u64, "{fault:?}");
        assert!(
            sink == file.bytes,
            "{fault:?}: the sink holds {} bytes",
            sink.len()
        );
        // As above, requests abandoned before a slow head was ready are not in the log.
        if !matches!(fault, Fault::SlowFirstByte(_)) {
            let requests = cdn.requests_for(&file.path());
            assert_eq!(requests.len(), 3, "{fault:?}");
            let faulty = requests.iter().filter(|r| r.fault.is_some()).count();
            assert_eq!(faulty, 2, "{fault:?}");
        }
    }
}

/// A file sink is rewound and truncated between attempts.
#[tokio::test]
async fn file_sinks_are_reset_between_attempts() {
    let cdn = Cdn::many(1, SIZE).await;
    let file = &cdn.files[0];
    let fetcher = Fetcher::new(cdn.options()).expect("valid options");
    cdn.server
        .inject_times(&file.path(), Fault::Truncate { after: 15_000 }, 1);
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("out.crate");
    // Leftovers from an earlier run go too.
    std::fs::write(&path, vec![7u8; 3 * SIZE]).expect("a stale file");
    let mut sink = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .await
        .expect("an open file");
    let verified = fetcher
        .fetch(&file.download(), &mut sink)
        .await
        .expect("the second attempt verifies");
    drop(sink);
    assert_eq!(verified.attempts, 2);
    assert!(std::fs::read(&path).expect("the file") == file.bytes);
}

/// A sink that fails: the download stops at once with the sink's error, not retried.
#[tokio::test]
async fn sink_errors_are_not_retried() {
    struct Full;
    impl Sink for Full {
        async fn reset(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        async fn write(&mut self, _: &[u8]) -> std::io::Result<()> {
            Err(std::io::Error::other("no space left"))
        }
    }
    let cdn = Cdn::many(1, SIZE).await;
    let file = &cdn.files[0];
    let fetcher = Fetcher::new(cdn.options()).expect("valid options");
    let error = fetcher
        .fetch(&file.download(), &mut Full)
        .await
        .expect_err("a full disk");
    assert_eq!((error.kind(), error.attempts()), (&FetchErrorKind::Sink, 1));
    assert!(error.message().contains("no space left"), "{error}");
}

/// The retry after a `429` or `503` with `Retry-After: 1` starts no earlier than a second after
/// the answer; a `429` also lowers the effective rate.
#[tokio::test]
async fn retry_after_is_honoured() {
    let cdn = Cdn::many(2, SIZE).await;
    let fetcher = Fetcher::new(cdn.options()).expect("valid options");
    let faults = [
        Fault::TooManyRequests {
            retry_after: Some(1),
        },
        Fault::ServiceUnavailable {
            retry_after: Some(1),
        },
    ];
    for (fault, file) in faults.into_iter().zip(&cdn.files) {
        cdn.server.inject_times(&file.path(), fault.clone(), 1);
        let mut sink = Vec::new();
        let verified = fetcher
            .fetch(&file.download(), &mut sink)
            .await
            .expect("the retry verifies");
        assert_eq!(verified.attempts, 2);
        let requests = cdn.requests_for(&file.path());
        let waited = requests[1].started.duration_since(requests[0].finished);
        assert!(waited >= Duration::from_secs(1), "{fault:?}: {waited:?}");
    }
    assert!(
        fetcher.effective_rate() < 150.0,
        "{}",
        fetcher.effective_rate()
    );
}

/// A `Retry-After` longer than the cap is cut to it.
#[tokio::test]
async fn retry_after_is_capped() {
    let cdn = Cdn::many(1, SIZE).await;
    let file = &cdn.files[0];
    let mut options = cdn.options();
    options.max_retry_after = Duration::from_millis(300);
    let fetcher = Fetcher::new(options).expect("valid options");
    let fault = Fault::TooManyRequests {
        retry_after: Some(3600),
    };
    cdn.server.inject_times(&file.path(), fault, 1);
    let start = Instant::now();
    let verified = fetcher
        .fetch(&file.download(), &mut Vec::new())
        .await
        .expect("the retry verifies");
    assert_eq!(verified.attempts, 2);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
}
