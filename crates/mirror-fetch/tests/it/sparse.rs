//! The sparse index client (`mirror_fetch::SparseIndex`) against the test server, over a small
//! sparse tree each test writes itself.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mirror_fetch::{SparseFile, SparseIndex, SparseOptions};
use mirror_index::{CrateName, Error};
use mirror_testkit::server::{Fault, TestServer};

const USER_AGENT: &str = "mirror-testkit-tests/0 (test@example.invalid)";

/// One index line for `name` `vers`, with a checksum derived from the version so lines differ.
fn line(name: &str, vers: &str) -> String {
    let digit = vers.len() % 10;
    format!(
        r#"{{"name":"{name}","vers":"{vers}","deps":[],"cksum":"{}","features":{{}},"yanked":false}}"#,
        digit.to_string().repeat(64)
    )
}

/// A temporary sparse tree: `config.json`, crates of 1, 2, 3 and 7 letters (two in mixed case),
/// and a bad line in `2/ab`.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let tree = Tree {
            dir: tempfile::tempdir().unwrap(),
        };
        tree.write(
            "config.json",
            r#"{"dl":"http://127.0.0.1:1/api/v1/crates","api":"http://127.0.0.1:1"}"#,
        );
        tree.write("1/a", &format!("{}\n", line("a", "0.1.0")));
        tree.write(
            "2/ab",
            &format!(
                "{}\nnot json\n{}\n",
                line("ab", "1.0.0"),
                line("ab", "1.0.1")
            ),
        );
        tree.write(
            "3/a/abc",
            &format!(
                "{}\n{}\n",
                line("Abc", "0.1.0"),
                line("Abc", "0.2.0+build.5")
            ),
        );
        tree.write(
            "my/cr/mycrate",
            &format!("{}\n", line("MyCrate", "2.0.0-rc.1")),
        );
        tree
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("sparse")
    }

    fn write(&self, relative: &str, content: &str) {
        let path = self.root().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn read(&self, relative: &str) -> Vec<u8> {
        fs::read(self.root().join(relative)).unwrap()
    }
}

/// Default options with `USER_AGENT`, and backoffs short enough for tests that exhaust their
/// attempts.
fn options() -> SparseOptions {
    let mut options = SparseOptions::new(USER_AGENT);
    options.fetch.backoff_initial = Duration::from_millis(10);
    options.fetch.backoff_max = Duration::from_millis(50);
    options
}

/// A server over a fresh tree, and a client for it caching in `cache` if given.
async fn setup(cache: Option<&Path>) -> (Tree, TestServer, SparseIndex) {
    let tree = Tree::new();
    let server = TestServer::start(tree.root()).await;
    let mut options = options();
    options.cache_dir = cache.map(Path::to_path_buf);
    let index = SparseIndex::new(&server.index_url(), options).unwrap();
    (tree, server, index)
}

fn name(s: &str) -> CrateName {
    s.parse().unwrap()
}

/// The entries' raw lines, each followed by `\n`, as they were in the file.
fn raw_lines(file: &mirror_index::IndexFile) -> Vec<u8> {
    file.entries
        .iter()
        .flat_map(|e| e.raw().iter().copied().chain([b'\n']))
        .collect()
}

#[tokio::test]
async fn fetches_crates_of_every_name_length_and_case() {
    let (tree, server, index) = setup(None).await;
    // (name asked for, index path, published name, versions)
    let cases = [
        ("a", "1/a", "a", &["0.1.0"][..]),
        ("ab", "2/ab", "ab", &["1.0.0", "1.0.1"]),
        ("abc", "3/a/abc", "Abc", &["0.1.0", "0.2.0+build.5"]),
        ("ABC", "3/a/abc", "Abc", &["0.1.0", "0.2.0+build.5"]),
        ("MyCrate", "my/cr/mycrate", "MyCrate", &["2.0.0-rc.1"]),
        ("mycrate", "my/cr/mycrate", "MyCrate", &["2.0.0-rc.1"]),
    ];
    for (asked, path, published, versions) in cases {
        let fetched = index.fetch(&name(asked)).await.unwrap();
        let SparseFile::Fresh(file) = fetched else {
            panic!("{asked}: expected a fresh file, got {fetched:?}");
        };
        assert_eq!(file.path, path, "{asked}");
        let got: Vec<_> = file
            .entries
            .iter()
            .map(|e| (e.name().to_string(), e.vers().to_string()))
            .collect();
        let want: Vec<_> = versions
            .iter()
            .map(|v| (published.to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(got, want, "{asked}");
        if asked != "ab" {
            assert_eq!(raw_lines(&file), tree.read(path), "{asked}: raw bytes");
            assert!(file.problems.is_empty(), "{asked}: {:?}", file.problems);
        }
    }
    let paths: Vec<_> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/index/1/a",
            "/index/2/ab",
            "/index/3/a/abc",
            "/index/3/a/abc",
            "/index/my/cr/mycrate",
            "/index/my/cr/mycrate"
        ]
    );
}

#[tokio::test]
async fn bad_lines_are_skipped_and_name_the_url() {
    let (_tree, _server, index) = setup(None).await;
    let ab = name("ab");
    let file = index.fetch(&ab).await.unwrap().into_file().unwrap();
    assert_eq!(file.entries.len(), 2);
    // The good lines keep their bytes; the bad one is left out.
    assert_eq!(
        raw_lines(&file),
        format!("{}\n{}\n", line("ab", "1.0.0"), line("ab", "1.0.1")).into_bytes()
    );
    assert_eq!(file.problems.len(), 1);
    assert_eq!(file.problems[0].file, index.file_url(&ab));
    assert_eq!(file.problems[0].line, 2);
}

#[tokio::test]
async fn absent_crates_are_not_found() {
    let cache = tempfile::tempdir().unwrap();
    let (_tree, server, index) = setup(Some(cache.path())).await;
    assert_eq!(
        index.fetch(&name("nope")).await.unwrap(),
        SparseFile::NotFound
    );
    assert_eq!(
        index.fetch(&name("zz")).await.unwrap(),
        SparseFile::NotFound
    );
    let statuses: Vec<_> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 404]);
    assert!(!cache.path().join("no/pe/nope").exists());
}

#[tokio::test]
async fn gone_and_legally_unavailable_mean_not_found() {
    let (_tree, server, index) = setup(None).await;
    for status in [410, 451] {
        server.inject("/index/1/a", Fault::Status(status));
        assert_eq!(
            index.fetch(&name("a")).await.unwrap(),
            SparseFile::NotFound,
            "{status}"
        );
    }
}

#[tokio::test]
async fn second_fetch_is_answered_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let (tree, server, index) = setup(Some(cache.path())).await;
    let abc = name("Abc");

    let first = index.fetch(&abc).await.unwrap();
    let SparseFile::Fresh(fresh) = first else {
        panic!("expected a fresh file, got {first:?}");
    };
    assert!(cache.path().join("3/a/abc").is_file());
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("if-none-match"), None);

    let second = index.fetch(&abc).await.unwrap();
    let SparseFile::NotModified(cached) = second else {
        panic!("expected a cached file, got {second:?}");
    };
    assert_eq!(cached, fresh);
    assert_eq!(raw_lines(&cached), tree.read("3/a/abc"));

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one request per fetch");
    let revalidation = &requests[1];
    assert_eq!(revalidation.path, "/index/3/a/abc");
    assert_eq!(revalidation.status, 304);
    let etag = revalidation.header("if-none-match").unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 66,
        "a strong SHA-256 ETag: {etag}"
    );
    assert!(revalidation.header("if-modified-since").is_some());
}

#[tokio::test]
async fn a_changed_file_is_fetched_afresh_and_recached() {
    let cache = tempfile::tempdir().unwrap();
    let (tree, server, index) = setup(Some(cache.path())).await;
    let a = name("a");
    index.fetch(&a).await.unwrap();

    let changed = format!("{}\n{}\n", line("a", "0.1.0"), line("a", "0.1.1"));
    tree.write("1/a", &changed);
    let fetched = index.fetch(&a).await.unwrap();
    let SparseFile::Fresh(file) = fetched else {
        panic!("expected a fresh file, got {fetched:?}");
    };
    assert_eq!(raw_lines(&file), changed.as_bytes());

    // The new copy replaced the old one in the cache.
    let again = index.fetch(&a).await.unwrap();
    assert!(matches!(&again, SparseFile::NotModified(f) if raw_lines(f) == changed.as_bytes()));

    let requests = server.requests();
    let seen: Vec<_> = requests
        .iter()
        .map(|r| (r.status, r.header("if-none-match").is_some()))
        .collect();
    assert_eq!(seen, [(200, false), (200, true), (304, true)]);
    assert_ne!(
        requests[1].header("if-none-match"),
        requests[2].header("if-none-match"),
        "the second revalidation carries the new ETag"
    );
}

#[tokio::test]
async fn a_deleted_crate_leaves_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let (tree, server, index) = setup(Some(cache.path())).await;
    let ab = name("ab");
    index.fetch(&ab).await.unwrap();
    fs::remove_file(tree.root().join("2/ab")).unwrap();
    assert_eq!(index.fetch(&ab).await.unwrap(), SparseFile::NotFound);
    assert!(!cache.path().join("2/ab").exists());

    tree.write("2/ab", &format!("{}\n", line("ab", "3.0.0")));
    let file = index.fetch(&ab).await.unwrap().into_file().unwrap();
    assert_eq!(file.entries[0].vers().to_string(), "3.0.0");
    let last = server.requests().pop().unwrap();
    assert_eq!((last.status, last.header("if-none-match")), (200, None));
}

#[tokio::test]
async fn every_request_carries_the_user_agent() {
    let cache = tempfile::tempdir().unwrap();
    let (_tree, server, index) = setup(Some(cache.path())).await;
    index.config().await.unwrap();
    index.fetch(&name("a")).await.unwrap();
    index.fetch(&name("a")).await.unwrap();
    index.fetch(&name("missing")).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    for request in requests {
        assert_eq!(
            request.header("user-agent"),
            Some(USER_AGENT),
            "{request:?}"
        );
        // Bodies are kept as sent: nothing asks for a compressed one.
        assert_eq!(request.header("accept-encoding"), None, "{request:?}");
    }
}

#[tokio::test]
async fn server_errors_are_http_errors_naming_the_url() {
    let cache = tempfile::tempdir().unwrap();
    let (_tree, server, index) = setup(Some(cache.path())).await;
    let abc = name("abc");
    index.fetch(&abc).await.unwrap();

    server.inject("/index/3/a/abc", Fault::Status(500));
    let error = index.fetch(&abc).await.unwrap_err();
    let Error::Http { url, message } = &error else {
        panic!("expected an HTTP error, got {error:?}");
    };
    assert_eq!(url, &format!("{}3/a/abc", server.index_url()));
    assert!(message.contains("500"), "{message}");
    assert!(error.to_string().contains(url.as_str()), "{error}");
    // A failure keeps the cached copy for the next attempt.
    assert!(cache.path().join("3/a/abc").is_file());

    server.inject("/index/config.json", Fault::Status(503));
    let error = index.config().await.unwrap_err();
    assert!(
        matches!(&error, Error::Http { url, message } if url.ends_with("/index/config.json") && message.contains("503")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_an_http_error() {
    // A port that was just free: nothing listens there now (barring a rare reuse by another
    // process, which would not serve this index either).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/index/");
    let index = SparseIndex::new(&url, options()).unwrap();
    let error = index.fetch(&name("a")).await.unwrap_err();
    assert!(
        matches!(&error, Error::Http { url: u, .. } if u == &format!("{url}1/a")),
        "{error:?}"
    );
}

#[tokio::test]
async fn config_is_read() {
    let (_tree, _server, index) = setup(None).await;
    let config = index.config().await.unwrap();
    assert_eq!(config.dl, "http://127.0.0.1:1/api/v1/crates");
    assert_eq!(config.api.as_deref(), Some("http://127.0.0.1:1"));
}

#[tokio::test]
async fn a_missing_config_is_an_error() {
    let (tree, _server, index) = setup(None).await;
    fs::remove_file(tree.root().join("config.json")).unwrap();
    let error = index.config().await.unwrap_err();
    assert!(
        matches!(&error, Error::Http { message, .. } if message.contains("404")),
        "{error:?}"
    );
}

/// Sends one raw HTTP/1.1 request (bypassing any client-side path normalisation) and returns the
/// status code and the body.
async fn raw_get(server: &TestServer, target: &str, headers: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = server.addr();
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_server_never_leaves_its_root() {
    let (tree, server, _index) = setup(None).await;
    fs::write(tree.dir.path().join("secret"), "SECRET").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(tree.dir.path().join("secret"), tree.root().join("link")).unwrap();
    for target in [
        "/index/../secret",
        "/index/1/../../secret",
        "/index/%2e%2e/secret",
        "/index/..%2fsecret",
        "/index/%2Fetc%2Fpasswd",
        "/index//etc/passwd",
        "/index/..%5csecret",
        "/index/link",
        "/index/",
        "/index/1",
        "/secret",
    ] {
        let (status, body) = raw_get(&server, target, "").await;
        assert!(matches!(status, 400 | 404), "{target}: status {status}");
        assert!(!body.contains("SECRET"), "{target}");
    }
    let (status, body) = raw_get(&server, "/index/1/a", "").await;
    assert_eq!((status, body), (200, format!("{}\n", line("a", "0.1.0"))));
}

#[tokio::test]
async fn the_server_honours_if_modified_since() {
    let (_tree, server, _index) = setup(None).await;
    let future = httpdate::fmt_http_date(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    let past = "Thu, 01 Jan 1970 00:00:00 GMT";
    let (status, _) = raw_get(
        &server,
        "/index/1/a",
        &format!("If-Modified-Since: {future}\r\n"),
    )
    .await;
    assert_eq!(status, 304);
    let (status, _) = raw_get(
        &server,
        "/index/1/a",
        &format!("If-Modified-Since: {past}\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    // If-None-Match wins over If-Modified-Since.
    let both = format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {future}\r\n");
    let (status, _) = raw_get(&server, "/index/1/a", &both).await;
    assert_eq!(status, 200);
    let statuses: Vec<_> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [304, 200, 200]);
}

/// Index requests are retried like downloads: a `503` with `Retry-After: 1` is asked again no
/// sooner than a second later, and two `500`s in a row are retried after a backoff; both files
/// then arrive. (The sparse client used to make one attempt and fail.)
#[tokio::test]
async fn failed_requests_are_retried_after_backoff_and_retry_after() {
    let (tree, server, index) = setup(None).await;
    server.inject_times(
        "/index/1/a",
        Fault::ServiceUnavailable {
            retry_after: Some(1),
        },
        1,
    );
    server.inject_times("/index/2/ab", Fault::Status(500), 2);

    let a = index.fetch(&name("a")).await.unwrap().into_file().unwrap();
    assert_eq!(raw_lines(&a), tree.read("1/a"));
    let ab = index.fetch(&name("ab")).await.unwrap().into_file().unwrap();
    assert_eq!(ab.entries.len(), 2);

    let requests = server.requests();
    let seen: Vec<_> = requests
        .iter()
        .map(|r| (r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("/index/1/a", 503),
            ("/index/1/a", 200),
            ("/index/2/ab", 500),
            ("/index/2/ab", 500),
            ("/index/2/ab", 200)
        ]
    );
    let waited = requests[1].started.duration_since(requests[0].started);
    assert!(waited >= Duration::from_millis(990), "{waited:?}");
    for request in &requests {
        assert_eq!(
            request.header("user-agent"),
            Some(USER_AGENT),
            "{request:?}"
        );
    }
}

/// A `429` from the index pauses every request of the source for its `Retry-After`, as it does
/// for downloads: a fetch of another crate asked for 100 ms later starts only after the pause.
#[tokio::test]
async fn too_many_requests_pauses_the_source() {
    let (_tree, server, index) = setup(None).await;
    server.inject_times(
        "/index/1/a",
        Fault::TooManyRequests {
            retry_after: Some(1),
        },
        1,
    );
    let other = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        index.fetch(&name("ab")).await
    };
    let a = name("a");
    let (a, ab) = tokio::join!(index.fetch(&a), other);
    assert!(a.unwrap().file().is_some() && ab.unwrap().file().is_some());
    let requests = server.requests();
    let seen: Vec<_> = requests
        .iter()
        .map(|r| (r.path.as_str(), r.status))
        .collect();
    assert_eq!(seen[0], ("/index/1/a", 429));
    let ab = requests.iter().find(|r| r.path == "/index/2/ab").unwrap();
    let waited = ab.started.duration_since(requests[0].started);
    assert!(waited >= Duration::from_millis(990), "{waited:?}");
}
