//! `mirror-cli publish` and `serve` end to end, with real cargo as the judge: a mirror built by
//! `mirror-cli sync` from the real-crates fixture, served by `mirror-cli serve` and by a plain
//! nginx, and a fresh `CARGO_HOME` whose crates.io is replaced by it fetching a whole dependency
//! graph. Every proxy variable points at a trap on loopback, so a request meant for anywhere but
//! 127.0.0.1 would be caught (and counted) instead of leaving the machine.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mirror_testkit::server::Fault;
use serde_json::Value;

use crate::sync::Fixture;
use crate::{stderr, stdout};

/// The test project's dependencies: small, no target-specific dependencies, and all built by this
/// workspace, so the fixture (made from the crates that build downloaded) holds their whole graph.
const DEPENDENCIES: &str = r#"
anyhow = "1"
memchr = "2"
serde = { version = "1", features = ["derive"] }
"#;

/// Every crate of that graph, for a clear message when the fixture lacks one.
const GRAPH: &[&str] = &[
    "anyhow",
    "memchr",
    "serde",
    "serde_core",
    "serde_derive",
    "proc-macro2",
    "quote",
    "syn",
    "unicode-ident",
];

/// The real-crates registry on a loopback server, and a mirror of it: the sync tests' fixture,
/// checked to hold the test project's whole dependency graph.
struct Mirror(Fixture);

impl std::ops::Deref for Mirror {
    type Target = Fixture;

    fn deref(&self) -> &Fixture {
        &self.0
    }
}

impl Mirror {
    fn new() -> Mirror {
        let fixture = Fixture::new();
        let missing: Vec<&str> = GRAPH
            .iter()
            .copied()
            .filter(|name| {
                !fixture
                    .registry
                    .versions
                    .iter()
                    .any(|v| v.name().as_str() == *name)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "the real-crates fixture (built from $CARGO_HOME/registry) lacks {missing:?}: build the workspace first"
        );
        Mirror(fixture)
    }

    fn dest(&self) -> &str {
        self.dest.to_str().unwrap()
    }

    /// `mirror-cli sync` of the whole fixture (its git index over `file://`); returns the exit
    /// code.
    fn sync(&self) -> Option<i32> {
        self.sync_with(&[])
    }

    /// Like [`Mirror::sync`], with more arguments.
    fn sync_with(&self, extra: &[&str]) -> Option<i32> {
        let index = format!("file://{}", self.registry.git.display());
        let out = self
            .command(&[
                "sync",
                "--dest",
                self.dest(),
                "--index",
                &index,
                "--rate",
                "1000",
                "--backoff-ms",
                "5",
                "--attempts",
                "2",
                "--contact",
                "tests@example.org",
            ])
            .args(extra)
            .output()
            .unwrap();
        out.status.code()
    }

    /// `mirror-cli publish --json`: the summary, after checking it exited 0.
    fn publish(&self, extra: &[&str]) -> Value {
        let mut args = vec!["publish", "--dest", self.dest(), "--json"];
        args.extend_from_slice(extra);
        let out = self.command(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap()
    }
}

/// `mirror-cli serve` in a process of its own, its log in a file.
struct Serve {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Serve {
    fn start(mirror: &Mirror) -> Serve {
        let log = mirror.tmp.path().join("serve.log");
        let mut child = mirror
            .command(&["serve", "--dest", mirror.dest(), "--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        // Keep reading, so the server never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| {
                panic!(
                    "serve printed {first:?}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_owned();
        Serve { child, addr, log }
    }

    /// Sends SIGTERM and waits for the exit; returns the status and the log.
    fn stop(self) -> (ExitStatus, String) {
        self.stop_with("-TERM")
    }

    /// Sends `signal` (`-TERM`, `-INT`) and waits for the exit; returns the status and the log.
    fn stop_with(mut self, signal: &str) -> (ExitStatus, String) {
        let _ = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
        let status = wait(&mut self.child, Duration::from_secs(15));
        (status, std::fs::read_to_string(&self.log).unwrap())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx serving the mirror directory as static files, as docs/serving.md configures it.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn start(root: &Path, dir: &Path) -> Nginx {
        // `/usr/sbin` is not on every user's PATH.
        let nginx = ["nginx", "/usr/sbin/nginx"]
            .into_iter()
            .find(|nginx| {
                Command::new(nginx)
                    .arg("-v")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .expect(
                "nginx is not installed, and this test needs it to serve the mirror as static \
                 files: `apt-get install -y nginx-light` (`cargo xtask ci` installs it)",
            );
        let mut last = String::new();
        // The port is free when picked, but another process may take it before nginx binds it.
        for attempt in 0..5 {
            let dir = dir.join(format!("nginx-{attempt}"));
            std::fs::create_dir_all(&dir).unwrap();
            let port = free_port();
            let conf = dir.join("nginx.conf");
            std::fs::write(&conf, nginx_conf(&dir, root, port)).unwrap();
            let mut child = Command::new(nginx)
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            if wait_listening(port, &mut child) {
                return Nginx { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            last = format!("{err}{log}");
        }
        panic!("nginx did not start: {last}");
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        terminate(&self.child);
        wait(&mut self.child, Duration::from_secs(5));
    }
}

/// The configuration docs/serving.md gives, with the paths of this test. One process
/// (`master_process off`), so nothing changes user and the temp dir's files stay readable.
fn nginx_conf(dir: &Path, root: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 64;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    sendfile on;
    types {{
        application/json json;
    }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            return 404;
        }}
        location ~ /\\. {{
            return 404;
        }}
        location /index/ {{
            default_type text/plain;
            add_header Cache-Control no-cache;
        }}
        location /crates/ {{
            default_type application/octet-stream;
        }}
    }}
}}
",
        root = root.display()
    )
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `port` accepts connections (true) or `child` exits or 10 s pass (false).
fn wait_listening(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

fn wait(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A listener every proxy variable points at: it counts and drops each connection, so a request
/// that would have left loopback fails fast and is seen.
struct ProxyTrap {
    url: String,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl ProxyTrap {
    fn start() -> ProxyTrap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (hits, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        h.fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ProxyTrap { url, hits, stop }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for ProxyTrap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A cargo project depending on [`DEPENDENCIES`], and a fresh `CARGO_HOME` whose crates.io is
/// replaced by the sparse index at `index_url`.
struct CargoProject {
    project: PathBuf,
    home: PathBuf,
}

impl CargoProject {
    fn new(dir: &Path, index_url: &str) -> CargoProject {
        let project = dir.join("project");
        std::fs::create_dir_all(project.join("src")).unwrap();
        std::fs::write(
            project.join("Cargo.toml"),
            format!(
                "[package]\nname = \"uses-the-mirror\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]{DEPENDENCIES}"
            ),
        )
        .unwrap();
        std::fs::write(project.join("src/lib.rs"), "").unwrap();
        let home = dir.join("cargo-home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join("config.toml"),
            format!(
                "[source.crates-io]\nreplace-with = \"mirror\"\n\n[source.mirror]\nregistry = \"sparse+{index_url}\"\n\n[net]\noffline = false\nretry = 1\n"
            ),
        )
        .unwrap();
        CargoProject { project, home }
    }

    /// `cargo fetch` with nothing but this home's configuration, and every proxy variable at
    /// `trap`.
    fn fetch(&self, trap: &ProxyTrap) -> Output {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        // Nothing of the surrounding build (target dir, registries, offline mode) leaks in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CARGO") {
                command.env_remove(key);
            }
        }
        for proxy in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            command.env(proxy, &trap.url);
        }
        command
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .env("CARGO_HOME", &self.home)
            .env("CARGO_TERM_COLOR", "never")
            .env("CARGO_HTTP_TIMEOUT", "30")
            .arg("fetch")
            .current_dir(&self.project)
            .output()
            .unwrap()
    }

    /// The `.crate` files cargo downloaded, by file name.
    fn downloaded(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dir in std::fs::read_dir(self.home.join("registry/cache")).unwrap() {
            for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                out.push(file.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }

    /// The packages in the `Cargo.lock` cargo wrote, as `name version`.
    fn locked(&self) -> Vec<String> {
        let lock = std::fs::read_to_string(self.project.join("Cargo.lock")).unwrap();
        let mut out = Vec::new();
        let mut name = None;
        for line in lock.lines() {
            if let Some(n) = line.strip_prefix("name = ") {
                name = Some(n.trim_matches('"').to_owned());
            } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
                out.push(format!("{n} {}", v.trim_matches('"')));
            }
        }
        out.retain(|p| !p.starts_with("uses-the-mirror "));
        out
    }
}

/// Runs `cargo fetch` through `index_url` and checks it fetched the whole graph from the mirror,
/// with nothing caught by the proxy trap.
fn assert_cargo_fetches_through(mirror: &Mirror, index_url: &str, dir: &Path) {
    let trap = ProxyTrap::start();
    let project = CargoProject::new(dir, index_url);
    let out = project.fetch(&trap);
    assert!(
        out.status.success(),
        "cargo fetch through {index_url} failed:\n{}",
        stderr(&out)
    );
    assert_eq!(trap.hits(), 0, "cargo tried to leave loopback");
    let locked = project.locked();
    for name in GRAPH {
        assert!(
            locked.iter().any(|p| p.split(' ').next() == Some(*name)),
            "{name} not in the resolved graph {locked:?}"
        );
    }
    // Every package of the graph was downloaded (and checked against its index checksum by
    // cargo), and each is a version the mirror holds.
    let downloaded = project.downloaded();
    let expected: Vec<String> = {
        let mut e: Vec<String> = locked
            .iter()
            .map(|p| p.replacen(' ', "-", 1) + ".crate")
            .collect();
        e.sort();
        e
    };
    assert_eq!(downloaded, expected);
    for package in &locked {
        let (name, vers) = package.split_once(' ').unwrap();
        assert!(
            mirror
                .registry
                .versions
                .iter()
                .any(|v| v.name().as_str() == name && v.vers().as_str() == vers),
            "{package} is not a fixture version"
        );
    }
}

#[test]
fn cargo_fetches_a_whole_graph_through_mirror_cli_serve() {
    let mirror = Mirror::new();
    // What the sync published by itself is what cargo gets: no `publish` in between.
    assert_eq!(mirror.sync(), Some(0), "the sync failed");
    let serve = Serve::start(&mirror);
    let index_url = format!("http://{}/index/", serve.addr);
    assert_cargo_fetches_through(&mirror, &index_url, &mirror.tmp.path().join("cargo"));

    // Ctrl-C or SIGTERM stops the server cleanly.
    let (status, log) = serve.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    // The access log names each request, with its status.
    assert!(
        log.lines()
            .any(|l| l.contains("path=/index/config.json") && l.contains("status=200")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("path=/crates/se/rd/serde/serde-") && l.contains("status=200")),
        "{log}"
    );
}

#[test]
fn cargo_fetches_a_whole_graph_from_the_published_tree_on_static_nginx() {
    let mirror = Mirror::new();
    // The static server comes first, so the sync can be told its URL and publish for it.
    std::fs::create_dir_all(&mirror.dest).unwrap();
    let nginx = Nginx::start(&mirror.dest, mirror.tmp.path());
    let base = format!("http://127.0.0.1:{}", nginx.port);
    assert_eq!(
        mirror.sync_with(&["--base-url", &base]),
        Some(0),
        "the sync failed"
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(mirror.dest.join("index/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["dl"],
        format!("{base}/crates/{{lowerprefix}}/{{crate}}/{{crate}}-{{version}}.crate")
    );

    assert_cargo_fetches_through(
        &mirror,
        &format!("{base}/index/"),
        &mirror.tmp.path().join("cargo"),
    );
    let log = nginx.access_log();
    assert!(
        log.contains("GET /index/config.json HTTP/1.1\" 200"),
        "{log}"
    );
    assert!(log.contains("GET /crates/me/mc/memchr/memchr-"), "{log}");
}

#[test]
fn the_published_index_is_upstream_byte_for_byte_minus_what_is_not_verified() {
    let mirror = Mirror::new();
    // One version cannot be downloaded: its line must not be published.
    let failed = mirror
        .registry
        .versions
        .iter()
        .find(|v| v.name().as_str() == "memchr")
        .unwrap()
        .clone();
    mirror.server.inject(
        &format!("/crates/memchr/memchr-{}.crate", failed.vers()),
        Fault::Status(404),
    );
    assert_eq!(mirror.sync(), Some(1), "the sync should report the failure");
    let report = mirror.publish(&[]);
    assert_eq!(report["left_out"], 1);
    assert_eq!(
        report["versions"],
        mirror.registry.versions.len() as u64 - 1
    );

    let published = mirror.dest.join("index");
    let upstream = &mirror.registry.sparse;
    let mut files = 0;
    for v in &mirror.registry.versions {
        let path = mirror_index::index_path(v.name());
        let mine = std::fs::read(published.join(&path)).unwrap_or_default();
        let theirs = std::fs::read(upstream.join(&path)).unwrap();
        if v.name().as_str() == "memchr" {
            let expected: Vec<u8> = theirs
                .split_inclusive(|b| *b == b'\n')
                .filter(|line| line.trim_ascii_end() != failed.entry.raw())
                .flatten()
                .copied()
                .collect();
            assert_eq!(mine, expected, "{path}");
        } else {
            assert_eq!(mine, theirs, "{path} differs from upstream");
        }
        files += 1;
    }
    assert!(files > 50);
    let config: Value =
        serde_json::from_slice(&std::fs::read(published.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config,
        serde_json::json!({
            "dl": "http://127.0.0.1:8080/crates/{lowerprefix}/{crate}/{crate}-{version}.crate"
        })
    );

    // Once the version is mirrored, publishing brings its line back.
    mirror.server.clear_faults();
    assert_eq!(mirror.sync(), Some(0));
    let report = mirror.publish(&[]);
    assert_eq!(report["left_out"], 0);
    // Nothing else changed, so nothing else was written (by this publish, or by the sync's own).
    assert!(report["written"].as_u64().unwrap() <= 1, "{report}");
    let path = mirror_index::index_path(failed.name());
    assert_eq!(
        std::fs::read(published.join(&path)).unwrap(),
        std::fs::read(upstream.join(&path)).unwrap()
    );
}

#[test]
fn publish_needs_a_synced_mirror_and_a_usable_base_url() {
    let mirror = Mirror::new();
    let out = mirror
        .command(&["publish", "--dest", mirror.dest()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a mirror"), "{}", stderr(&out));

    assert_eq!(mirror.sync(), Some(0));
    let out = mirror
        .command(&["publish", "--dest", mirror.dest(), "--base-url", "ftp://x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid base url"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_needs_a_mirror_directory_and_a_usable_base_url() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-mirror");
    let out = crate::run(
        tmp.path(),
        &[
            "serve",
            "--dest",
            missing.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );

    let out = crate::run(
        tmp.path(),
        &[
            "serve",
            "--dest",
            tmp.path().to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
            "--base-url",
            "ftp://mirror.example.org",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid base url"),
        "{}",
        stderr(&out)
    );
}

/// A base URL no client could use is refused by `publish` and `serve` alike, while the arguments
/// are read: nothing printed on stdout, nothing written (before, `publish` recorded and published
/// such a URL and `serve` printed its configuration with it).
#[test]
fn unusable_base_urls_are_refused_before_anything_is_printed_or_written() {
    let mirror = Mirror::new();
    assert_eq!(mirror.sync(), Some(0));
    let config = mirror.dest.join("index/config.json");
    let before = std::fs::read(&config).unwrap();
    for (url, reason) in [
        ("http://x:99999", "invalid port number"),
        ("http://x:0", "port 0 is no port a client can connect to"),
        ("http://[::1", "invalid IPv6 address"),
    ] {
        let expected = format!("invalid base url \"{url}\": {reason}");
        for command in ["publish", "serve"] {
            let mut child = mirror
                .command(&[command, "--dest", mirror.dest(), "--base-url", url])
                .args(if command == "serve" {
                    &["--addr", "127.0.0.1:0"][..]
                } else {
                    &[]
                })
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // A serve that accepted the URL would run until killed.
            let status = wait(&mut child, Duration::from_secs(20));
            let out = child.wait_with_output().unwrap();
            assert_eq!(status.code(), Some(2), "{command} {url}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(&expected),
                "{command} {url}: {}",
                stderr(&out)
            );
            assert_eq!(stdout(&out), "", "{command} {url}");
        }
        assert_eq!(std::fs::read(&config).unwrap(), before, "{url}");
    }
}

/// A plain HTTP/1.1 GET on loopback: the status and the body.
fn http_get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "this little client reads only whole bodies: {head}"
    );
    (status, response[end + 4..].to_vec())
}

/// Serving while a sync runs: whenever a client reads an index file, every line in it has its
/// crate file in place, with the bytes its checksum names. Checked over and over while the
/// sync downloads, publishes and finishes.
#[test]
fn a_client_never_sees_a_line_whose_file_is_not_in_place_while_a_sync_runs() {
    use sha2::{Digest as _, Sha256};
    let mirror = Mirror::new();
    std::fs::create_dir_all(&mirror.dest).unwrap();
    let serve = Serve::start(&mirror);
    // A first sync of a few crates, so that something is published from the start.
    let mut first: Vec<String> = mirror
        .registry
        .versions
        .iter()
        .map(|v| v.name().to_string())
        .collect();
    first.dedup();
    first.truncate(5);
    let mut args: Vec<&str> = Vec::new();
    for name in &first {
        args.extend(["--crate", name]);
    }
    assert_eq!(mirror.sync_with(&args), Some(0));

    let index = format!("file://{}", mirror.registry.git.display());
    let mut sync = mirror
        .command(&[
            "sync",
            "--dest",
            mirror.dest(),
            "--index",
            &index,
            "--rate",
            "100",
            "--contact",
            "tests@example.org",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut paths: Vec<String> = mirror
        .registry
        .versions
        .iter()
        .map(|v| mirror_index::index_path(v.name()))
        .collect();
    paths.dedup();
    let (mut lines_checked, mut rounds, mut during) = (0, 0, 0);
    let mut finished = false;
    while !finished {
        // One more whole round after the sync ended, over the final state.
        finished = sync.try_wait().unwrap().is_some();
        rounds += 1;
        lines_checked = 0;
        for path in &paths {
            let (status, body) = http_get(&serve.addr, &format!("/index/{path}"));
            if status == 404 {
                continue;
            }
            assert_eq!(status, 200, "/index/{path}");
            let file = mirror_index::IndexFile::parse(path, &body);
            assert!(
                file.problems.is_empty(),
                "/index/{path}: {:?}",
                file.problems
            );
            for entry in &file.entries {
                let url = format!(
                    "/crates/{}/{}/{}-{}.crate",
                    mirror_index::index_prefix(entry.name()).to_lowercase(),
                    entry.name(),
                    entry.name(),
                    entry.vers()
                );
                let (status, bytes) = http_get(&serve.addr, &url);
                assert_eq!(status, 200, "{url} is listed but not served");
                assert_eq!(
                    format!("{:x}", Sha256::digest(&bytes)),
                    entry.cksum().to_string(),
                    "{url} is listed with other bytes"
                );
                lines_checked += 1;
            }
        }
        if !finished {
            during += 1;
        }
    }
    assert!(sync.wait().unwrap().success());
    assert!(
        during >= 1 && rounds == during + 1,
        "the sync ended before a client could look ({rounds} rounds)"
    );
    // The last round, after the sync, saw every version published.
    assert_eq!(lines_checked, mirror.registry.versions.len());
    // Ctrl-C stops it as cleanly as SIGTERM does.
    let (status, log) = serve.stop_with("-INT");
    assert_eq!(status.code(), Some(0), "{log}");
}
