//! The "done when" test: every version of the real-crates fixture, downloaded through the API
//! redirect and about 20% injected faults, is verified against its checksum, or reported by kind;
//! the request rate never passes the limit.

use std::collections::BTreeMap;
use std::time::Duration;

use mirror_fetch::{FetchErrorKind, Fetcher};
use mirror_testkit::server::{
    Fault, RateFaults, RegistryOptions, TestServer, max_requests_in_window,
};
use mirror_testkit::{RealRegistryOptions, real_registry};

use crate::{options, sha256, sha256_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_crate_verifies_through_faults() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let options_dl = RealRegistryOptions::with_dl("http://127.0.0.1:1/api/v1/crates");
    let registry = real_registry(dir.path(), &options_dl).expect("the real-crates fixture");
    assert!(registry.versions.len() > 50, "{}", registry.versions.len());
    let server = TestServer::start_registry(RegistryOptions::real(&registry)).await;
    server.inject_rate(RateFaults::new(
        2026,
        vec![
            (0.10, Fault::Status(500)),
            (0.05, Fault::Truncate { after: 100 }),
            (
                0.05,
                Fault::TooManyRequests {
                    retry_after: Some(0),
                },
            ),
        ],
    ));

    let mut fetch_options = options(&server.dl_api());
    fetch_options.max_attempts = 4;
    // The injected 429s slow the fetcher down; a high floor keeps the test short.
    fetch_options.min_requests_per_second = 150.0;
    let rate = fetch_options.requests_per_second;
    let burst = fetch_options.burst;
    let fetcher = Fetcher::new(fetch_options).expect("valid options");
    let mut tasks = Vec::new();
    for version in registry.versions.clone() {
        let fetcher = fetcher.clone();
        tasks.push(tokio::spawn(async move {
            let mut sink = Vec::new();
            let download = mirror_fetch::Download::from(&version.entry);
            let result = fetcher.fetch(&download, &mut sink).await;
            (version, sink, result)
        }));
    }

    let mut verified = 0;
    let mut retried = 0;
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for task in tasks {
        let (version, sink, result) = task.await.expect("the task ran");
        match result {
            Ok(ok) => {
                // Verified means the bytes are the published file.
                assert_eq!(ok.sha256, *version.cksum());
                assert_eq!(sha256(&sink), *version.cksum());
                assert_eq!(sha256_file(&version.crate_file), *version.cksum());
                assert_eq!(ok.len, version.size);
                verified += 1;
                retried += usize::from(ok.attempts > 1);
            }
            Err(error) => {
                // Only the injected classes, and only after every attempt.
                assert!(
                    matches!(
                        *error.kind(),
                        FetchErrorKind::Http(500 | 429) | FetchErrorKind::Truncated
                    ),
                    "{error}"
                );
                assert_eq!(error.attempts(), 4, "{error}");
                *failed.entry(error.kind().to_string()).or_default() += 1;
            }
        }
    }
    let total = registry.versions.len();
    let failures: usize = failed.values().sum();
    assert_eq!(verified + failures, total);
    // With a 20% fault rate and four attempts, about 0.2^4 of the files fail.
    assert!(failures * 100 <= total, "{failed:?} of {total}");
    assert!(
        retried * 10 >= total,
        "only {retried} of {total} needed a retry"
    );

    let requests = server.requests();
    let api = requests
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .count();
    assert!(api <= 5, "{api} requests to the API");
    assert!(requests.iter().filter(|r| r.fault.is_some()).count() * 10 >= total);
    for window_ms in [1000, 250] {
        let most = burst as usize + (rate * window_ms as f64 / 1000.0) as usize;
        let seen = max_requests_in_window(&requests, Duration::from_millis(window_ms));
        assert!(
            seen <= most,
            "{seen} requests in {window_ms} ms, limit {most}"
        );
    }
}
