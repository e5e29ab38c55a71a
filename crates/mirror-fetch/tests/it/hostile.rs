//! A hostile server: endless bodies, bodies longer than they declare, a gzip bomb. Each ends in
//! its error kind with memory bounded by the size limit, never by the server's goodwill. (Slow
//! drips are in `verify.rs`, redirect loops and odd schemes in `redirects.rs`.)

use std::time::{Duration, Instant};

use mirror_fetch::{Download, FetchErrorKind, Fetcher};
use mirror_index::{CrateName, Version};
use mirror_testkit::server::{Fault, gzip_zeros};

use crate::raw::RawServer;
use crate::{Cdn, content, options, sha256};

/// A body with no length that never ends is cut off just past the size limit: one attempt
/// (retrying would only fetch another endless body), and the sink never holds more than the limit.
#[tokio::test]
async fn an_endless_body_stops_at_the_size_limit() {
    let cdn = Cdn::many(1, 1000).await;
    let file = &cdn.files[0];
    cdn.server.inject(&file.path(), Fault::Endless);
    let mut options = cdn.options();
    options.max_size = 4 << 20;
    let fetcher = Fetcher::new(options).expect("valid options");
    let started = Instant::now();
    let mut sink = Vec::new();
    let error = fetcher
        .fetch(&file.download(), &mut sink)
        .await
        .expect_err("an endless body never verifies");
    assert_eq!(
        (error.kind(), error.attempts()),
        (&FetchErrorKind::TooLarge, 1),
        "{error}"
    );
    assert!(error.message().contains("over the limit"), "{error}");
    assert!(sink.len() <= 4 << 20, "the sink holds {} bytes", sink.len());
    // The size limit, not a timeout, ended it; this bound only catches a hang.
    assert!(started.elapsed() < Duration::from_secs(60));
    let requests = cdn.requests_for(&file.path());
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].fault, Some(Fault::Endless));
}

/// A gzip bomb served with `Content-Encoding: gzip` (which was never asked for) is not
/// decompressed: the sink receives exactly the compressed bytes, whose hash is not the index
/// checksum. Decompressed, the body would be eight times the size limit.
#[tokio::test]
async fn a_gzip_bomb_is_hashed_as_served_and_never_expanded() {
    let cdn = Cdn::many(1, 1000).await;
    let file = &cdn.files[0];
    let size = 64 << 20;
    cdn.server.inject(&file.path(), Fault::GzipBomb { size });
    let bomb = gzip_zeros(size);
    let mut options = cdn.options();
    options.max_size = 8 << 20;
    assert!((bomb.len() as u64) < options.max_size && size > options.max_size);
    let fetcher = Fetcher::new(options).expect("valid options");
    let mut sink = Vec::new();
    let error = fetcher
        .fetch(&file.download(), &mut sink)
        .await
        .expect_err("a bomb never verifies");
    assert_eq!(
        error.kind(),
        &FetchErrorKind::ChecksumMismatch {
            expected: file.cksum,
            actual: sha256(&bomb),
        },
        "{error}"
    );
    assert_eq!(error.attempts(), 1);
    assert!(sink == bomb, "the sink holds {} bytes", sink.len());
    let requests = cdn.requests_for(&file.path());
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("accept-encoding"), None);
}

/// A body longer than its `Content-Length` is read to the declared length and no further: the
/// bytes past it never reach the sink. When the declared length is the file's, the download
/// verifies; when it is shorter, the prefix fails the checksum.
#[tokio::test]
async fn a_body_longer_than_declared_is_read_to_the_declared_length() {
    let file = content(7, 5000);
    let cksum = sha256(&file);
    let served = file.clone();
    let server = RawServer::start(move |path| {
        let declared = match path {
            "/exact/x-1.0.0.crate" => served.len(),
            _ => 3000,
        };
        let mut answer =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {declared}\r\nconnection: close\r\n\r\n")
                .into_bytes();
        answer.extend_from_slice(&served);
        // Far more than declared, to see that none of it is taken.
        answer.extend_from_slice(&content(8, 1 << 20));
        answer
    })
    .await;
    let name: CrateName = "x".parse().expect("valid name");
    let vers: Version = "1.0.0".parse().expect("valid version");
    let download = Download::new(&name, &vers, &cksum);

    let exact = Fetcher::new(options(&server.url("/exact/{crate}-{version}.crate")))
        .expect("valid options");
    let mut sink = Vec::new();
    let verified = exact
        .fetch(&download, &mut sink)
        .await
        .expect("the declared bytes are the file");
    assert_eq!((verified.len, verified.attempts), (5000, 1));
    assert!(sink == file);

    let short = Fetcher::new(options(&server.url("/short/{crate}-{version}.crate")))
        .expect("valid options");
    let mut sink = Vec::new();
    let error = short
        .fetch(&download, &mut sink)
        .await
        .expect_err("a prefix never verifies");
    assert_eq!(
        error.kind(),
        &FetchErrorKind::ChecksumMismatch {
            expected: cksum,
            actual: sha256(&file[..3000]),
        },
        "{error}"
    );
    assert_eq!((error.attempts(), sink.len()), (1, 3000));
}
