//! Slow-client floods against `mirror-cli serve`: many idle connections and many half-sent
//! requests past the common limit of 1024 descriptors, and silent connections past a limit of
//! 256. While each flood stays
//! open, a normal request (a new connection asking for `config.json`) is timed; it must be
//! answered in under a second, right away and after the flood has been held for a while.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use super::Soak;

/// A normal request must be answered within this, whatever the flood.
const LIMIT: Duration = Duration::from_secs(1);
/// How long the soak waits for an answer before calling it stalled.
const GIVE_UP: Duration = Duration::from_secs(10);
/// How long each flood is held before the second timing.
const HOLD: Duration = Duration::from_secs(12);

/// One flood and its timings.
pub(super) struct Flood {
    pub(super) what: String,
    /// Connections the flood managed to open.
    pub(super) opened: u32,
    /// The normal request's time before the flood, right after it was opened, and after it was
    /// held for [`HOLD`]; `None`: no answer within [`GIVE_UP`].
    pub(super) before: Option<Duration>,
    pub(super) at_once: Option<Duration>,
    pub(super) held: Option<Duration>,
}

/// A `mirror-cli serve` child and its address.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a normal request takes to get its status line; `None` past [`GIVE_UP`].
fn timed_request(addr: SocketAddr) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, GIVE_UP).ok()?;
    stream.set_read_timeout(Some(GIVE_UP)).ok()?;
    stream
        .write_all(
            b"GET /index/config.json HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
        )
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    (&head == b"HTTP/1.1 200").then(|| started.elapsed())
}

impl Soak {
    /// Starts `mirror-cli serve` on the mirror, on a free port; `fd_limit` caps its descriptors.
    fn start_serve(&self, fd_limit: Option<u32>) -> anyhow::Result<Server> {
        let dest = self.dest.to_str().context("a UTF-8 temp path")?;
        let args = ["serve", "--dest", dest, "--addr", "127.0.0.1:0"];
        let mut command = match fd_limit {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg(&self.cli.exe)
                    .args(args);
                c.env("HOME", &self.cli.home).env_remove("RUST_LOG");
                c
            }
            None => self.cli.command(&args),
        };
        let log = std::fs::File::create(self.work.join("serve.stderr"))?;
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting mirror-cli serve")?;
        let stdout = child.stdout.take().context("serve's stdout")?;
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first)?;
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .with_context(|| format!("serve said {first:?}"))?
            .parse()
            .context("serve's address")?;
        Ok(Server { child, addr })
    }

    /// Phase: slow-client floods against `mirror-cli serve`.
    pub(super) fn flood(&mut self) -> anyhow::Result<()> {
        eprintln!("==> flood: slow clients against mirror-cli serve");
        if !self.dest.join("index/config.json").is_file() {
            self.fresh_dest()?;
            self.converge()?;
        }
        let n = self.args.flood_connections;
        let half = b"GET /index/config.json HTTP/1.1\r\nhost: 127.0.0.1\r\n";
        let scenarios: [(String, Option<u32>, u32, &[u8]); 3] = [
            (
                format!("{n} idle connections (nothing sent), serve limited to 1024 descriptors"),
                Some(1024),
                n,
                b"",
            ),
            (
                format!(
                    "{n} half-sent requests (head never ended), serve limited to 1024 descriptors"
                ),
                Some(1024),
                n,
                half,
            ),
            (
                "300 silent connections, serve limited to 256 descriptors".to_owned(),
                Some(256),
                300,
                b"",
            ),
        ];
        for (what, fd_limit, count, send) in scenarios {
            self.context = format!("flood: {what}");
            eprintln!("    {what}");
            let server = self.start_serve(fd_limit)?;
            let before = timed_request(server.addr);
            ensure!(before.is_some(), "serve does not answer before any flood");
            let mut held = Vec::new();
            let opening = Instant::now();
            for _ in 0..count {
                if opening.elapsed() > Duration::from_secs(30) {
                    break;
                }
                match TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)) {
                    Ok(mut stream) => {
                        if !send.is_empty() {
                            let _ = stream.write_all(send);
                        }
                        held.push(stream);
                    }
                    Err(_) => continue,
                }
            }
            let at_once = timed_request(server.addr);
            std::thread::sleep(HOLD);
            let after = timed_request(server.addr);
            let flood = Flood {
                what,
                opened: held.len() as u32,
                before,
                at_once,
                held: after,
            };
            drop(held);
            drop(server);
            for (when, took) in [("right after it opened", at_once), ("after 12 s", after)] {
                let ok = took.is_some_and(|t| t < LIMIT);
                if !ok {
                    let v = format!(
                        "{}: a normal request {when} took {}, the limit is {LIMIT:?}",
                        flood.what,
                        took.map_or_else(
                            || format!("longer than {GIVE_UP:?} (no answer)"),
                            |t| format!("{t:?}")
                        )
                    );
                    self.violation(v);
                }
            }
            eprintln!(
                "    {} connections held; a normal request: {} before, {} at once, {} after {HOLD:?}",
                flood.opened,
                show(flood.before),
                show(flood.at_once),
                show(flood.held),
            );
            self.figures.floods.push(flood);
        }
        Ok(())
    }
}

/// A timing for the table: milliseconds, or that no answer came.
pub(super) fn show(took: Option<Duration>) -> String {
    took.map_or_else(
        || format!("no answer in {} s", GIVE_UP.as_secs()),
        |t| format!("{:.0} ms", t.as_secs_f64() * 1000.0),
    )
}
