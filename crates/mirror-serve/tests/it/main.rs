//! Integration tests for mirror-serve: one binary, one module per feature. Each test builds its own
//! mirror in a temp dir and its own server on 127.0.0.1:0.
#![allow(clippy::unwrap_used, reason = "tests")]

mod config;
mod files;
mod protocol;
mod security;
mod slow;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mirror_serve::{Limits, ServeOptions, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The `config.json` a published index holds, as upstream wrote it.
const CONFIG: &str = r#"{"dl":"https://static.example/crates","api":"https://registry.example","auth-required":false,"future-field":7}"#;

/// A mirror directory, populated by hand with the layout another component writes.
struct Mirror {
    /// Holds the mirror at `root/mirror` and, next to it, files the server must never reach.
    parent: tempfile::TempDir,
}

impl Mirror {
    fn new() -> Self {
        let mirror = Mirror {
            parent: tempfile::tempdir().unwrap(),
        };
        mirror.write("index/config.json", CONFIG.as_bytes());
        mirror.write(".mirror/state", b"private state");
        std::fs::write(mirror.parent.path().join("secret"), b"outside the mirror").unwrap();
        mirror
    }

    fn root(&self) -> PathBuf {
        self.parent.path().join("mirror")
    }

    /// Writes `rel` under the mirror root, creating its directories.
    fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        path
    }

    /// Replaces `rel` the way a sync does: a complete new file renamed over the old one.
    fn replace(&self, rel: &str, data: &[u8]) {
        let path = self.root().join(rel);
        let tmp = self.root().join(".mirror/tmp-replace");
        std::fs::write(&tmp, data).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// Starts a server on this mirror with the default base URL.
    async fn serve(&self) -> Server {
        self.serve_with(None).await
    }

    async fn serve_with(&self, base_url: Option<&str>) -> Server {
        Server::start(ServeOptions {
            dest: self.root(),
            base_url: base_url.map(str::to_owned),
            limits: Limits::default(),
        })
        .await
    }

    /// Starts a server on this mirror with the default base URL and these limits.
    async fn serve_limited(&self, limits: Limits) -> Server {
        Server::start(ServeOptions {
            dest: self.root(),
            base_url: None,
            limits,
        })
        .await
    }
}

/// A running server and the means to stop it.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), mirror_serve::Error>>,
}

impl Server {
    async fn start(options: ServeOptions) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, options, async {
            stopped.await.ok();
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        client().get(self.url(path)).send().await.unwrap()
    }

    /// Sends `request_target` exactly as written, over HTTP/1.1, and returns the status and body.
    /// reqwest would normalise `..` and percent-encodings away before they reach the server.
    async fn raw_get(&self, request_target: &str) -> (u16, Vec<u8>) {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let request = format!(
            "GET {request_target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&response);
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {text:?}"))
            .parse()
            .unwrap();
        let body = match response.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) => response[end + 4..].to_vec(),
            None => Vec::new(),
        };
        (status, body)
    }

    /// Signals shutdown and waits for `serve` to return.
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve returns after the shutdown signal")
            .unwrap()
            .unwrap();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The file at `path` on disk, for comparing with what was served.
fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}
