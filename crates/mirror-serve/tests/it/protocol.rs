//! The protocol side: HTTP/2 with prior knowledge, methods, graceful shutdown, the access log.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::{Mirror, client};

#[tokio::test]
async fn speaks_http2_with_prior_knowledge_on_the_same_port() {
    let mirror = Mirror::new();
    let path = mirror.write("crates/3/f/foo/foo-1.0.0+x.crate", &[1; 300_000]);
    let server = mirror.serve().await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for url in [
        "/crates/3/f/foo/foo-1.0.0+x.crate",
        "/crates/3/f/foo/foo-1.0.0%2Bx.crate",
    ] {
        let response = h2.get(server.url(url)).send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.unwrap(), crate::read(&path));
    }
    let config = h2
        .get(server.url("/index/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(config.version(), reqwest::Version::HTTP_2);
    let config: serde_json::Value = serde_json::from_slice(&config.bytes().await.unwrap()).unwrap();
    assert!(
        config["dl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{}/", server.addr))
    );

    let http1 = server.get("/index/config.json").await;
    assert_eq!(http1.version(), reqwest::Version::HTTP_11);
    assert_eq!(http1.status(), 200);
}

#[tokio::test]
async fn only_get_and_head_are_allowed() {
    let mirror = Mirror::new();
    let server = mirror.serve().await;
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let response = client()
            .request(method.clone(), server.url("/index/config.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "GET, HEAD");
    }
}

#[tokio::test]
async fn graceful_shutdown_returns() {
    let mirror = Mirror::new();
    let server = mirror.serve().await;
    // A keep-alive connection left idle must not hold the shutdown up.
    let client = client();
    assert_eq!(
        client
            .get(server.url("/index/config.json"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_a_download_in_flight_finish() {
    let mirror = Mirror::new();
    let rel = "crates/bi/g-/big-file/big-file-1.0.0.crate";
    let data = vec![9; 16 << 20];
    mirror.write(rel, &data);
    let server = mirror.serve().await;
    let mut response = server.get(&format!("/{rel}")).await;
    let mut received = response.chunk().await.unwrap().unwrap().len();
    let stopped = tokio::spawn(server.stop());
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len();
    }
    assert_eq!(received, data.len());
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .unwrap()
        .unwrap();
}

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged in this test process from the first call on.
///
/// A global subscriber, not `tracing::subscriber::set_default`: tracing caches whether a call site
/// is enabled process-wide, and with a single thread-local subscriber it computes that from
/// whichever thread reaches the call site first, so another test's thread would switch the
/// access log off for this one. Tests stay independent by looking only for paths no other test
/// requests.
fn captured_log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

#[tokio::test]
async fn every_response_is_logged() {
    let captured = captured_log();
    let mirror = Mirror::new();
    mirror.write("crates/3/l/log/log-1.0.0+x.crate", &[1; 1234]);
    let server = mirror.serve().await;
    let url = "/crates/3/l/log/log-1.0.0%2Bx.crate";
    server.get(url).await.bytes().await.unwrap();
    let head = client().head(server.url(url)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    server
        .get("/index/lo/gg/logged-nowhere")
        .await
        .bytes()
        .await
        .unwrap();
    server.stop().await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("path=/crates/3/l/log/") || l.contains("path=/index/lo/gg/logged"))
        .collect();
    let expected = [
        "request method=GET path=/crates/3/l/log/log-1.0.0%2Bx.crate status=200 bytes=1234 duration_ms=",
        "request method=HEAD path=/crates/3/l/log/log-1.0.0%2Bx.crate status=200 bytes=0 duration_ms=",
        "request method=GET path=/index/lo/gg/logged-nowhere status=404 bytes=0 duration_ms=",
    ];
    assert_eq!(lines.len(), expected.len(), "{log}");
    for (line, expected) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(" INFO mirror_serve::access_log: "),
            "{line}"
        );
        assert!(line.contains(expected), "{line}");
        assert!(line.ends_with(" complete=true"), "{line}");
    }
}
