//! Slow and silent clients: the header and idle timeouts, and the connection cap that keeps a
//! flood of idle or half-sent connections from stopping a normal request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mirror_serve::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Mirror, client};

/// A request head that never ends: the blank line is missing.
const HALF_SENT: &[u8] = b"GET /index/config.json HTTP/1.1\r\nHost: x\r\n";

fn limits(header_timeout: Duration, idle_timeout: Duration, max_connections: usize) -> Limits {
    Limits {
        header_timeout,
        idle_timeout,
        max_connections,
    }
}

/// Reads until the server closes the connection or `deadline` passes: the bytes read, and whether
/// it was closed.
async fn read_until_closed(
    stream: &mut TcpStream,
    deadline: tokio::time::Instant,
) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_elapsed) => return (got, false),
            Ok(Ok(0)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            // The server closed it with a reset: closed all the same.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Ok(Err(e)) => panic!("reading: {e}"),
        }
    }
}

fn after(duration: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + duration
}

#[tokio::test]
async fn a_connection_that_sends_no_complete_request_is_closed_after_the_header_timeout() {
    let mirror = Mirror::new();
    let header_timeout = Duration::from_millis(300);
    let server = mirror
        .serve_limited(limits(header_timeout, Duration::from_secs(60), 512))
        .await;
    for sent in [&b""[..], HALF_SENT] {
        let started = Instant::now();
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let (_, closed) = read_until_closed(&mut stream, after(Duration::from_secs(10))).await;
        let took = started.elapsed();
        assert!(closed, "{sent:?}: still open after 10 s");
        assert!(took >= header_timeout, "{sent:?}: closed after {took:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let mirror = Mirror::new();
    let idle_timeout = Duration::from_millis(1500);
    let server = mirror
        .serve_limited(limits(Duration::from_millis(200), idle_timeout, 512))
        .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /index/config.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The whole response: its head, then as many bytes as it announces.
    let mut response = Vec::new();
    let mut buf = [0; 4096];
    let answered = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(n, 0, "closed before the response was complete");
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")?
                        .parse()
                        .ok()
                })
                .unwrap();
            if response.len() >= end + 4 + len {
                break Instant::now();
            }
        }
    };
    assert!(response.starts_with(b"HTTP/1.1 200"));
    let (more, closed) = read_until_closed(&mut stream, after(Duration::from_secs(10))).await;
    let idle = answered.elapsed();
    assert!(more.is_empty(), "{:?}", String::from_utf8_lossy(&more));
    assert!(closed, "still open after 10 s idle");
    assert!(idle >= idle_timeout, "closed after {idle:?} idle");
    server.stop().await;
}

#[tokio::test]
async fn a_download_in_progress_outlives_both_timeouts() {
    let mirror = Mirror::new();
    let rel = "crates/sl/ow/slow-reader/slow-reader-1.0.0.crate";
    let data = vec![5; 8 << 20];
    mirror.write(rel, &data);
    let server = mirror
        .serve_limited(limits(
            Duration::from_millis(200),
            Duration::from_millis(200),
            512,
        ))
        .await;
    let mut response = server.get(&format!("/{rel}")).await;
    let started = Instant::now();
    let mut received = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len();
        if started.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(received, data.len());
    assert!(started.elapsed() >= Duration::from_secs(1));
    server.stop().await;
}

/// Shutting down does not wait for clients that never finish a request head, whatever the
/// timeouts; the download in progress is still sent whole.
#[tokio::test]
async fn shutdown_does_not_wait_for_silent_or_half_sent_connections() {
    let mirror = Mirror::new();
    let rel = "crates/st/op/stop/stop-1.0.0.crate";
    let data = vec![3; 4 << 20];
    mirror.write(rel, &data);
    let server = mirror
        .serve_limited(limits(
            Duration::from_secs(60),
            Duration::from_secs(60),
            512,
        ))
        .await;
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(HALF_SENT).await.unwrap();
    let mut download = server.get(&format!("/{rel}")).await;
    let mut received = download.chunk().await.unwrap().unwrap().len();
    let started = Instant::now();
    let stopped = tokio::spawn(server.stop());
    while let Some(chunk) = download.chunk().await.unwrap() {
        received += chunk.len();
    }
    assert_eq!(received, data.len());
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("serve returns within 5 s")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    drop((silent, half));
}

/// 1,100 connections, half of them silent and half with a request head that never ends, against a
/// server that holds at most 64 and whose timeouts are far away: a normal request is still
/// answered in under a second, because the connections idle the longest make room.
#[tokio::test]
async fn a_flood_of_idle_and_half_sent_connections_does_not_stop_a_normal_request() {
    const FLOOD: usize = 1100;
    const CAP: usize = 64;
    raise_open_file_limit(2 * FLOOD as u64 + 256);
    let mirror = Mirror::new();
    let server = mirror
        .serve_limited(limits(
            Duration::from_secs(60),
            Duration::from_secs(60),
            CAP,
        ))
        .await;
    let mut flood = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        if i % 2 == 1 {
            stream.write_all(HALF_SENT).await.unwrap();
        }
        flood.push(stream);
    }

    let started = Instant::now();
    let response = client()
        .get(server.url("/index/config.json"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "answered after {took:?}");

    // The server made that room by closing flood connections, the oldest first: all but the
    // cap's worth.
    let deadline = after(Duration::from_secs(5));
    let mut closed = 0;
    for stream in &mut flood {
        if read_until_closed(stream, deadline).await.1 {
            closed += 1;
            if closed == FLOOD - CAP {
                break;
            }
        }
    }
    assert!(closed >= FLOOD - CAP, "only {closed} of {FLOOD} closed");
    drop(flood);
    server.stop().await;
}

/// At the cap with every connection busy, a new connection waits until one is free, then is served.
#[tokio::test]
async fn at_the_cap_a_busy_connection_is_never_closed_and_a_new_one_waits_its_turn() {
    let mirror = Mirror::new();
    let rel = "crates/bu/sy/busy/busy-1.0.0.crate";
    let data = vec![7; 16 << 20];
    mirror.write(rel, &data);
    let server = mirror
        .serve_limited(limits(Duration::from_secs(60), Duration::from_secs(60), 1))
        .await;
    // A download that stops reading: the connection keeps a request in progress.
    let mut download = server.get(&format!("/{rel}")).await;
    let mut received = download.chunk().await.unwrap().unwrap().len();
    let waiting = tokio::spawn(request(server.addr));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a second connection was served past a cap of 1"
    );
    while let Some(chunk) = download.chunk().await.unwrap() {
        received += chunk.len();
    }
    assert_eq!(received, data.len());
    drop(download);
    let status = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting request is served once the download is done")
        .unwrap();
    assert_eq!(status, 200);
    server.stop().await;
}

/// A normal request on a new connection: its status.
async fn request(addr: SocketAddr) -> u16 {
    client()
        .get(format!("http://{addr}/index/config.json"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Raises this process's soft limit on open files to at least `needed` (the test holds both ends
/// of every connection).
fn raise_open_file_limit(needed: u64) {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current.is_some_and(|n| n < needed) {
            assert!(
                limit.maximum.is_none_or(|n| n >= needed),
                "this test needs {needed} open files; the hard limit is {:?}",
                limit.maximum
            );
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(needed),
                    maximum: limit.maximum,
                },
            )
            .unwrap();
        }
    }
    #[cfg(not(unix))]
    let _ = needed;
}
