//! Integration tests of mirror-fetch against loopback registry servers: fault classes, retries,
//! politeness limits, redirect learning, size and checksum checks, and the whole real-crates
//! fixture through injected faults.

mod faults;
mod hostile;
mod limits;
mod raw;
mod real;
mod redirects;
mod sparse;
mod stops;
mod verify;

use std::path::Path;
use std::time::Duration;

use mirror_fetch::{Download, FetchOptions};
use mirror_index::{Checksum, CrateName, DlTemplate, Version};
use mirror_testkit::server::{RegistryOptions, TestServer};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// The contact every test fetcher sends.
const CONTACT: &str = "tests@example.invalid";

/// One crate file served by a [`Cdn`].
#[derive(Clone, Debug)]
struct CrateFile {
    name: CrateName,
    vers: Version,
    cksum: Checksum,
    bytes: Vec<u8>,
}

impl CrateFile {
    fn download(&self) -> Download<'_> {
        Download::new(&self.name, &self.vers, &self.cksum)
    }

    /// The CDN path, as the server matches it (percent-decoded, `+` literal).
    fn path(&self) -> String {
        format!("/crates/{0}/{0}-{1}.crate", self.name, self.vers)
    }

    /// The download API path (version percent-encoded, as sent).
    fn api_path(&self) -> String {
        format!(
            "/api/v1/crates/{}/{}/download",
            self.name,
            self.vers.url_encoded()
        )
    }
}

/// A test server with a CDN tree of generated crate files.
struct Cdn {
    _dir: TempDir,
    server: TestServer,
    files: Vec<CrateFile>,
}

impl Cdn {
    /// Serves one file per `(name, version, size)`, with deterministic pseudo-random content.
    async fn start(specs: &[(&str, &str, usize)]) -> Cdn {
        let dir = tempfile::tempdir().expect("a temp dir");
        let index = dir.path().join("index");
        std::fs::create_dir_all(&index).expect("an index dir");
        let mut files = Vec::new();
        for (i, &(name, vers, size)) in specs.iter().enumerate() {
            let bytes = content(i as u64, size);
            let file = CrateFile {
                name: name.parse().expect("valid name"),
                vers: vers.parse().expect("valid version"),
                cksum: sha256(&bytes),
                bytes,
            };
            let path = dir.path().join("cdn").join(&file.path()[1..]);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("a crate dir");
            std::fs::write(&path, &file.bytes).expect("a crate file");
            files.push(file);
        }
        let options = RegistryOptions::new(index, Some(dir.path().join("cdn")));
        let server = TestServer::start_registry(options).await;
        Cdn {
            _dir: dir,
            server,
            files,
        }
    }

    /// `count` files `c0 1.0.0`, `c1 1.0.0`, … of `size` bytes.
    async fn many(count: usize, size: usize) -> Cdn {
        let names: Vec<String> = (0..count).map(|i| format!("c{i}")).collect();
        let specs: Vec<_> = names.iter().map(|n| (n.as_str(), "1.0.0", size)).collect();
        Cdn::start(&specs).await
    }

    /// Fast test options downloading straight from the CDN.
    fn options(&self) -> FetchOptions {
        options(&self.server.dl_cdn_template())
    }

    /// Server requests for `path` (percent-decoded comparison is left to callers: paths here
    /// have no escapes unless a version has `+`).
    fn requests_for(&self, path: &str) -> Vec<mirror_testkit::server::RequestRecord> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

/// Options that keep tests fast: a high rate, small backoffs and short timeouts.
fn options(dl: &str) -> FetchOptions {
    let mut options = FetchOptions::new(DlTemplate::new(dl).expect("valid dl"));
    options.contact = Some(CONTACT.into());
    options.requests_per_second = 200.0;
    options.min_requests_per_second = 50.0;
    options.api_requests_per_second = 200.0;
    options.burst = 8;
    options.max_attempts = 3;
    options.backoff_initial = Duration::from_millis(10);
    options.backoff_max = Duration::from_millis(100);
    options.connect_timeout = Duration::from_secs(2);
    options.read_timeout = Duration::from_millis(400);
    options.stall_timeout = Duration::from_millis(400);
    options
}

/// Deterministic bytes (xorshift), so that every file differs and truncation shows.
fn content(seed: u64, size: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> Checksum {
    Checksum::from_bytes(Sha256::digest(bytes).into())
}

fn sha256_file(path: &Path) -> Checksum {
    sha256(&std::fs::read(path).expect("a readable file"))
}
