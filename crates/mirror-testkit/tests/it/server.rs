//! The registry server: routes (index, CDN, API redirect), every fault class as a client sees it,
//! counted and rated fault injection, and the request records with their measures.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mirror_testkit::server::{
    Fault, RateFaults, RegistryOptions, TestServer, max_concurrency, max_requests_in_window,
};
use mirror_testkit::{RealRegistryOptions, real_registry};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A small registry: `sparse/config.json` pointing elsewhere, and crate files of 4 KiB, one with
/// build metadata in its version.
struct Small {
    dir: tempfile::TempDir,
}

const PLUS: &str = "/crates/Abc/Abc-0.2.0+build.5.crate";
const PLAIN: &str = "/crates/ab/ab-1.0.0.crate";

impl Small {
    fn new() -> Small {
        let small = Small {
            dir: tempfile::tempdir().unwrap(),
        };
        small.write(
            "sparse/config.json",
            br#"{"dl":"http://127.0.0.1:1/api/v1/crates"}"#,
        );
        small.write(&format!("cdn{PLUS}"), &content(1));
        small.write(&format!("cdn{PLAIN}"), &content(2));
        small.write("secret.crate", b"outside the cdn root");
        small
    }

    fn write(&self, relative: &str, bytes: &[u8]) {
        let path = self.dir.path().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn cdn_file(&self, path: &str) -> Vec<u8> {
        fs::read(self.dir.path().join("cdn").join(&path[1..])).unwrap()
    }

    fn options(&self) -> RegistryOptions {
        let root = self.dir.path();
        RegistryOptions::new(root.join("sparse"), Some(root.join("cdn")))
    }
}

/// 4 KiB of bytes that differ with `seed`.
fn content(seed: u8) -> Vec<u8> {
    (0..4096_u32)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed)
        .collect()
}

async fn small_server() -> (Small, TestServer) {
    let small = Small::new();
    let server = TestServer::start_registry(small.options()).await;
    (small, server)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// The URL of a server path.
fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.addr())
}

/// Sends a bare HTTP/1.1 GET and returns every byte the server sent before closing, or the error
/// that ended the read.
async fn raw_get(server: &TestServer, path: &str) -> (Vec<u8>, Option<std::io::Error>) {
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let error = stream.read_to_end(&mut got).await.err();
    (got, error)
}

#[tokio::test]
async fn api_path_redirects_to_the_cdn_of_a_real_registry() {
    let out = tempfile::tempdir().unwrap();
    let dl = "http://127.0.0.1:1/api/v1/crates";
    let registry = real_registry(out.path(), &RealRegistryOptions::with_dl(dl)).unwrap();
    // A version with build metadata when the cargo cache has one, which it does when this
    // workspace's toml dependencies are built.
    let version = registry
        .versions
        .iter()
        .find(|v| v.vers().as_str().contains('+'))
        .unwrap_or(&registry.versions[0]);
    let (name, vers) = (version.name().as_str(), version.vers().as_str());
    let server = TestServer::start_registry(RegistryOptions::real(&registry)).await;
    let client = client();

    let config = client
        .get(format!("{}config.json", server.index_url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["dl"], server.dl_api());
    assert_eq!(config["api"], server.url().trim_end_matches('/'));

    let api = format!("{}/{name}/{vers}/download", server.dl_api());
    let response = client.get(&api).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let encoded = vers.replace('+', "%2B");
    assert_eq!(
        location,
        format!("{}{name}/{name}-{encoded}.crate", server.cdn_url())
    );
    let template = server
        .dl_cdn_template()
        .replace("{crate}", name)
        .replace("{version}", &encoded);
    assert_eq!(location, template);

    let following = reqwest::Client::new();
    let response = following.get(&api).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.url().as_str(), location);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["content-length"], version.size.to_string().as_str());
    assert!(headers.get("content-encoding").is_none());
    let bytes = response.bytes().await.unwrap();
    assert_eq!(
        format!("{:x}", Sha256::digest(&bytes)),
        version.cksum().to_string()
    );
    let paths: Vec<_> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), 4);
    assert!(
        paths[3].ends_with(&format!("{name}-{encoded}.crate")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn cdn_decodes_versions_and_stays_inside_its_root() {
    let (small, server) = small_server().await;
    let client = client();
    let get = |path: &str| client.get(url(&server, path)).send();

    for path in [PLUS.replace('+', "%2B"), PLUS.to_owned()] {
        let response = get(&path).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let bytes = response.bytes().await.unwrap();
        assert_eq!(bytes.as_ref(), small.cdn_file(PLUS), "{path}");
    }
    for (path, status) in [
        ("/crates/ab/ab-9.9.9.crate", 404),
        ("/crates/AB/AB-1.0.0.crate", 404),
        ("/crates/ab/abc-1.0.0.crate", 404),
        ("/crates/ab/ab-1.0.0.tar", 404),
        ("/crates/ab/ab-.crate", 404),
        ("/crates/../secret.crate", 404),
        ("/crates/ab/ab-..%2F..%2F..%2Fsecret.crate", 400),
    ] {
        assert_eq!(get(path).await.unwrap().status(), status, "{path}");
    }
    // Clients resolve `%2E%2E` segments themselves; sent as is, the server refuses them.
    let (got, _) = raw_get(&server, "/crates/%2E%2E/%2E%2E-secret.crate").await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    // The API redirects without looking; the CDN then says 404.
    let response = get("/api/v1/crates/nope/1.0.0/download").await.unwrap();
    assert_eq!(response.status(), 302);
}

#[tokio::test]
async fn plain_start_serves_config_from_disk_and_no_crates() {
    let small = Small::new();
    let server = TestServer::start(small.dir.path().join("sparse")).await;
    let client = client();
    let config = client
        .get(format!("{}config.json", server.index_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(config, r#"{"dl":"http://127.0.0.1:1/api/v1/crates"}"#);
    let response = client.get(url(&server, PLAIN)).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn status_faults_carry_retry_after() {
    let (_small, server) = small_server().await;
    let client = client();
    let cases = [
        (Fault::Status(403), 403, None),
        (Fault::Status(500), 500, None),
        (
            Fault::TooManyRequests {
                retry_after: Some(7),
            },
            429,
            Some("7"),
        ),
        (Fault::TooManyRequests { retry_after: None }, 429, None),
        (
            Fault::ServiceUnavailable {
                retry_after: Some(2),
            },
            503,
            Some("2"),
        ),
    ];
    for (fault, status, retry_after) in cases {
        server.inject(PLAIN, fault.clone());
        let response = client.get(url(&server, PLAIN)).send().await.unwrap();
        assert_eq!(response.status(), status, "{fault:?}");
        let header = response.headers().get("retry-after");
        assert_eq!(
            header.map(|v| v.to_str().unwrap()),
            retry_after,
            "{fault:?}"
        );
        let record = server.requests().pop().unwrap();
        assert_eq!((record.status, record.fault), (status, Some(fault)));
    }
    server.clear_faults();
    let response = client.get(url(&server, PLAIN)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.requests().pop().unwrap().fault, None);
}

#[tokio::test]
async fn reset_closes_without_an_answer() {
    let (_small, server) = small_server().await;
    server.inject(PLAIN, Fault::Reset);
    let (got, _) = raw_get(&server, PLAIN).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));

    for client in [client(), h2_client()] {
        let error = client.get(url(&server, PLAIN)).send().await;
        let error = match error {
            Ok(response) => response.bytes().await.unwrap_err(),
            Err(error) => error,
        };
        assert!(!error.is_status(), "{error:?}");
    }
    // The encoded path matches a fault injected for the decoded one.
    server.inject(PLUS, Fault::Reset);
    let (got, _) = raw_get(&server, &PLUS.replace('+', "%2B")).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
}

#[tokio::test]
async fn truncate_sends_the_full_length_and_less_body() {
    let (_small, server) = small_server().await;
    server.inject(PLAIN, Fault::Truncate { after: 1000 });

    let (got, _) = raw_get(&server, PLAIN).await;
    let text = String::from_utf8_lossy(&got);
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_lowercase().contains("content-length: 4096"),
        "{text}"
    );
    assert_eq!(got.len() - head_end, 1000);

    for client in [client(), h2_client()] {
        let response = client.get(url(&server, PLAIN)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.content_length(), Some(4096));
        let error = response.bytes().await.unwrap_err();
        assert!(error.is_body() || error.is_decode(), "{error:?}");
    }

    // A cut at or past the end still leaves the body one byte short.
    server.inject(PLAIN, Fault::Truncate { after: 1 << 40 });
    let (got, _) = raw_get(&server, PLAIN).await;
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(got.len() - head_end, 4095);
}

#[tokio::test]
async fn wrong_bytes_have_the_right_length() {
    let (small, server) = small_server().await;
    server.inject(PLAIN, Fault::WrongBytes);
    let response = client().get(url(&server, PLAIN)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    let right = small.cdn_file(PLAIN);
    assert_eq!(bytes.len(), right.len());
    assert_ne!(bytes.as_ref(), right);
}

#[tokio::test]
async fn stall_and_slow_first_byte_take_time() {
    let (small, server) = small_server().await;
    let pause = Duration::from_millis(300);
    server.inject(
        PLAIN,
        Fault::Stall {
            after: 100,
            duration: pause,
        },
    );
    server.inject(PLUS, Fault::SlowFirstByte(pause));
    let client = client();

    let start = Instant::now();
    let mut response = client.get(url(&server, PLAIN)).send().await.unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    let head_and_first = start.elapsed();
    assert!(first.len() <= 100);
    let mut bytes = first.to_vec();
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    assert!(head_and_first < pause, "{head_and_first:?}");
    assert!(start.elapsed() >= pause, "{:?}", start.elapsed());
    assert_eq!(bytes, small.cdn_file(PLAIN));

    let start = Instant::now();
    let response = client.get(url(&server, PLUS)).send().await.unwrap();
    assert!(start.elapsed() >= pause, "{:?}", start.elapsed());
    assert_eq!(response.bytes().await.unwrap(), small.cdn_file(PLUS));

    // The stalled request's record lasts until its body was sent.
    let records = server.requests();
    assert!(records[0].finished - records[0].started >= pause);
    assert_eq!(
        records[1].fault,
        Some(Fault::SlowFirstByte(pause)),
        "{records:?}"
    );
}

#[tokio::test]
async fn inject_times_recovers_after_n() {
    let (_small, server) = small_server().await;
    let fault = Fault::ServiceUnavailable {
        retry_after: Some(1),
    };
    server.inject_times(PLAIN, fault, 2);
    server.inject_times(PLUS, Fault::Reset, 1);
    let client = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = client.get(url(&server, PLAIN)).send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [503, 503, 200, 200]);
    assert!(client.get(url(&server, PLUS)).send().await.is_err());
    let response = client.get(url(&server, PLUS)).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

/// Requests `paths` in order from a fresh server with `rate`, and returns each path's faults.
async fn rated(rate: &RateFaults, paths: &[String]) -> BTreeMap<String, Vec<Option<Fault>>> {
    let (_small, server) = small_server().await;
    server.inject_rate(rate.clone());
    let client = client();
    for path in paths {
        client.get(url(&server, path)).send().await.unwrap();
    }
    let mut faults: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for record in server.requests() {
        faults.entry(record.path).or_default().push(record.fault);
    }
    faults
}

#[tokio::test]
async fn inject_rate_is_deterministic_and_near_the_rate() {
    let rate = RateFaults::new(
        42,
        vec![
            (0.2, Fault::Status(500)),
            (0.1, Fault::TooManyRequests { retry_after: None }),
        ],
    );
    // Each path twice, so second attempts draw afresh.
    let paths: Vec<_> = (0..300)
        .flat_map(|i| {
            let path = format!("/crates/c{i}/c{i}-1.0.0.crate");
            [path.clone(), path]
        })
        .collect();
    let forward = rated(&rate, &paths).await;
    let reversed: Vec<_> = paths.iter().rev().cloned().collect();
    assert_eq!(forward, rated(&rate, &reversed).await);
    let other = RateFaults::new(43, rate.faults.clone());
    assert_ne!(forward, rated(&other, &paths).await);

    let all: Vec<_> = forward.values().flatten().collect();
    let count = |fault: &Fault| all.iter().filter(|f| f.as_ref() == Some(fault)).count();
    let errors = count(&Fault::Status(500));
    let throttled = count(&Fault::TooManyRequests { retry_after: None });
    assert!((80..160).contains(&errors), "{errors} of 600");
    assert!((30..90).contains(&throttled), "{throttled} of 600");
    for (path, faults) in &forward {
        let expect: Vec<_> = (0..2).map(|attempt| rate.pick(path, attempt)).collect();
        assert_eq!(faults, &expect, "{path}");
    }

    // The index is never rate-faulted.
    let index: Vec<_> = (0..50).map(|_| "/index/config.json".to_owned()).collect();
    let faults = rated(&rate, &index).await;
    assert!(faults.values().flatten().all(Option::is_none));
}

#[tokio::test]
async fn records_measure_concurrency_and_rate() {
    let (_small, server) = small_server().await;
    let stall = Fault::Stall {
        after: 10,
        duration: Duration::from_millis(200),
    };
    server.inject(PLAIN, stall.clone());
    server.inject(PLUS, stall);

    for client in [client(), h2_client()] {
        server.clear_requests();
        let gets = (0..4).map(|i| {
            let path = if i % 2 == 0 { PLAIN } else { PLUS };
            let request = client.get(url(&server, path)).send();
            async move { request.await.unwrap().bytes().await.unwrap().len() }
        });
        let lengths = futures_join(gets).await;
        assert_eq!(lengths, [4096; 4]);
        let records = server.requests();
        assert_eq!(records.len(), 4);
        assert_eq!(max_concurrency(&records), 4, "{records:?}");
        assert_eq!(max_requests_in_window(&records, Duration::from_secs(10)), 4);
    }

    server.clear_requests();
    let client = client();
    for _ in 0..3 {
        client
            .get(url(&server, PLAIN))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    let records = server.requests();
    assert_eq!(max_concurrency(&records), 1, "{records:?}");
    assert_eq!(
        max_requests_in_window(&records, Duration::from_millis(50)),
        1
    );
}

#[tokio::test]
async fn many_concurrent_connections_over_h1_and_h2() {
    let (small, server) = small_server().await;
    let want = small.cdn_file(PLAIN);
    for client in [client(), h2_client()] {
        let gets = (0..64).map(|_| {
            let request = client.get(url(&server, PLAIN)).send();
            async move { request.await.unwrap().bytes().await.unwrap() }
        });
        for bytes in futures_join(gets).await {
            assert_eq!(bytes.as_ref(), want);
        }
    }
    assert_eq!(server.requests().len(), 128);
    let fresh = PathBuf::from(server.index_root());
    assert!(fresh.ends_with("sparse"));
}

/// Runs futures concurrently on the test's runtime and returns their outputs in order.
async fn futures_join<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
