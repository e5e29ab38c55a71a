//! Nothing is verified unless its digest matched, and bodies over the size limit are refused.

use mirror_fetch::{Download, FetchErrorKind, Fetcher};
use mirror_index::{Checksum, CrateName, Version};

use crate::raw::{RawServer, chunked};
use crate::{Cdn, content, options, sha256};

/// Right bytes against a wrong index checksum: a mismatch naming both digests, never verified.
#[tokio::test]
async fn a_wrong_checksum_is_a_mismatch() {
    let cdn = Cdn::many(1, 5000).await;
    let file = &cdn.files[0];
    let fetcher = Fetcher::new(cdn.options()).expect("valid options");
    let wrong = Checksum::from_bytes([0x11; 32]);
    let mut sink = Vec::new();
    let error = fetcher
        .fetch(&Download::new(&file.name, &file.vers, &wrong), &mut sink)
        .await
        .expect_err("never verified");
    assert_eq!(
        error.kind(),
        &FetchErrorKind::ChecksumMismatch {
            expected: wrong,
            actual: file.cksum,
        }
    );
    assert_eq!(error.attempts(), 1);
    let text = error.to_string();
    assert!(
        text.contains(&wrong.to_string()) && text.contains(&file.cksum.to_string()),
        "{text}"
    );
}

/// A `Content-Length` over the limit is refused before the body is read; exactly the limit is
/// fine.
#[tokio::test]
async fn the_size_limit_is_checked_against_content_length() {
    let cdn = Cdn::many(1, 5000).await;
    let file = &cdn.files[0];
    let mut options = cdn.options();
    options.max_size = 4999;
    let fetcher = Fetcher::new(options).expect("valid options");
    let mut sink = Vec::new();
    let error = fetcher
        .fetch(&file.download(), &mut sink)
        .await
        .expect_err("too large");
    assert_eq!(
        (error.kind(), error.attempts()),
        (&FetchErrorKind::TooLarge, 1)
    );
    assert!(sink.is_empty(), "nothing was written");

    let mut options = cdn.options();
    options.max_size = 5000;
    let fetcher = Fetcher::new(options).expect("valid options");
    let verified = fetcher
        .fetch(&file.download(), &mut Vec::new())
        .await
        .expect("verified at the limit");
    assert_eq!(verified.len, 5000);
}

/// A body without a length is cut off as soon as it passes the limit.
#[tokio::test]
async fn the_size_limit_is_checked_while_streaming() {
    let body = content(1, 100_000);
    let cksum = sha256(&body);
    let server = RawServer::start(move |_| chunked(&body)).await;
    let name: CrateName = "big".parse().expect("valid name");
    let vers: Version = "1.0.0".parse().expect("valid version");
    let download = Download::new(&name, &vers, &cksum);
    let dl = server.url("/crates/{crate}/{crate}-{version}.crate");

    let mut limited = options(&dl);
    limited.max_size = 50_000;
    let fetcher = Fetcher::new(limited).expect("valid options");
    let mut sink = Vec::new();
    let error = fetcher
        .fetch(&download, &mut sink)
        .await
        .expect_err("too large");
    assert_eq!(
        (error.kind(), error.attempts()),
        (&FetchErrorKind::TooLarge, 1)
    );
    assert!(sink.len() <= 50_000, "{}", sink.len());

    let fetcher = Fetcher::new(options(&dl)).expect("valid options");
    let mut sink = Vec::new();
    let verified = fetcher
        .fetch(&download, &mut sink)
        .await
        .expect("a chunked body verifies");
    assert_eq!(verified.len, 100_000);
    assert_eq!(sha256(&sink), cksum);
}

/// A body that drips a byte at a time, each just inside the stall timeout, is abandoned once it
/// has run for the stall timeout below the minimum speed, instead of holding a slot in flight.
#[tokio::test]
async fn a_slow_drip_is_a_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..1000 {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    if socket.write_all(b"x").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut options = options(&format!("http://{addr}/{{crate}}-{{version}}.crate"));
    options.stall_timeout = std::time::Duration::from_millis(200);
    options.min_bytes_per_second = 1000;
    options.max_attempts = 1;
    let fetcher = Fetcher::new(options).expect("valid options");
    let name: CrateName = "drip".parse().expect("a valid name");
    let vers: Version = "1.0.0".parse().expect("a valid version");
    let started = std::time::Instant::now();
    let error = fetcher
        .fetch(
            &Download::new(&name, &vers, &sha256(&[b'x'; 1000])),
            &mut Vec::new(),
        )
        .await
        .expect_err("too slow");
    assert_eq!(error.kind(), &FetchErrorKind::Timeout, "{error}");
    assert!(error.to_string().contains("too slowly"), "{error}");
    // Without the speed floor the drip would take 20 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
