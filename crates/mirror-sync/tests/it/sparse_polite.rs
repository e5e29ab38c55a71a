//! A sync over a sparse index is as polite to the index as to the downloads: the server's log of
//! index requests shows the `--rate` and `--jobs` of the run held, and the `User-Agent` with its
//! contact on every request.

use std::time::Duration;

use mirror_sync::{FetchSettings, Interrupt, NoProgress, SyncOptions, sync};
use mirror_testkit::server::{
    Fault, RegistryOptions, TestServer, max_concurrency, max_requests_in_window,
};
use sha2::{Digest as _, Sha256};

const CRATES: usize = 64;
const RATE: f64 = 20.0;
const JOBS: usize = 3;
const CONTACT: &str = "sparse-tests@example.invalid";

/// 64 crates named over a sparse index, each index file answered after 30 ms so that requests
/// overlap: at most `JOBS` index requests are in flight (and `JOBS` are seen), no window of the
/// log holds more request starts than the burst plus the rate allow, and every one says who
/// asks. Before the sparse source went through the fetcher, it ran 8 requests at once with no
/// rate limit: all 64 fell within a quarter of a second.
#[test]
#[allow(
    clippy::print_stderr,
    reason = "the measured figures are part of the test's output"
)]
fn a_sparse_sync_of_many_crates_keeps_the_rate_and_the_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let (index_root, cdn_root) = (tmp.path().join("index"), tmp.path().join("cdn"));
    let mut names = Vec::new();
    for i in 0..CRATES {
        let name = format!("crate{i:02}");
        let body = format!("the body of {name}").into_bytes();
        let cksum: String = Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let line = format!(
            r#"{{"name":"{name}","vers":"1.0.0","deps":[],"cksum":"{cksum}","features":{{}},"yanked":false}}"#
        );
        let index_file = index_root.join(&name[..2]).join(&name[2..4]).join(&name);
        std::fs::create_dir_all(index_file.parent().unwrap()).unwrap();
        std::fs::write(&index_file, format!("{line}\n")).unwrap();
        let crate_file = cdn_root
            .join("crates")
            .join(&name)
            .join(format!("{name}-1.0.0.crate"));
        std::fs::create_dir_all(crate_file.parent().unwrap()).unwrap();
        std::fs::write(&crate_file, &body).unwrap();
        names.push(name);
    }
    // The server runs on this runtime's threads while the blocking sync runs on the test's.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start_registry(RegistryOptions::new(
        index_root,
        Some(cdn_root),
    )));
    for name in &names {
        let path = format!("/index/{}/{}/{name}", &name[..2], &name[2..4]);
        server.inject(&path, Fault::SlowFirstByte(Duration::from_millis(30)));
    }

    let mut options = SyncOptions::default();
    options.index = Some(format!("sparse+{}", server.index_url()));
    options.dl = Some(server.dl_cdn_template());
    options.crates = names.iter().map(|n| n.parse().unwrap()).collect();
    let mut fetch = FetchSettings::default();
    fetch.rate = Some(RATE);
    fetch.jobs = Some(JOBS);
    fetch.contact = Some(CONTACT.into());
    options.fetch = fetch;
    let report = sync(
        &tmp.path().join("mirror"),
        &options,
        &NoProgress,
        &Interrupt::new(),
    )
    .unwrap();
    assert_eq!((report.downloaded, report.failed), (CRATES as u64, 0));

    let requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/index/"))
        .collect();
    assert_eq!(requests.len(), CRATES, "one request per crate");
    for request in &requests {
        let agent = request.header("user-agent").unwrap_or_default();
        assert!(agent.ends_with(&format!("(+{CONTACT})")), "{agent}");
    }
    let in_flight = max_concurrency(&requests);
    assert_eq!(in_flight, JOBS, "index requests in flight at once");
    // `--rate` also caps the burst at the rate (here 8, the default burst, is below it).
    let burst = 8;
    for (window_ms, most) in [(1000, burst + 20), (500, burst + 10), (250, burst + 5)] {
        let seen = max_requests_in_window(&requests, Duration::from_millis(window_ms));
        assert!(
            seen <= most,
            "{seen} index requests in {window_ms} ms, limit {most}"
        );
    }
    let first = requests.iter().map(|r| r.started).min().unwrap();
    let last = requests.iter().map(|r| r.started).max().unwrap();
    let span = last.duration_since(first);
    let rate = (requests.len() - 1) as f64 / span.as_secs_f64();
    eprintln!(
        "sparse sync: {} index requests over {span:?} ({rate:.1}/s, --rate {RATE}), at most {in_flight} in flight (--jobs {JOBS})",
        requests.len()
    );
    // 64 requests at 20 a second after a burst of 8 take about 2.8 s.
    assert!(span >= Duration::from_millis(2500), "{span:?}");
}
