//! `cargo xtask bench fetch`: downloads over loopback from a real static server. `mirror-cli
//! sync` (its release build, with its full safety: hashing, temp file, fsync, atomic rename,
//! state) and the bare `mirror_fetch::Fetcher` library, against `curl --parallel --parallel-max
//! J` fetching the same URL list to disk, all in the same run.
//!
//! The files are a deterministic CDN tree of synthetic `.crate` files (random bytes; names,
//! versions and sizes from the generator `bench verify` uses: most a few KB to tens of KB, a few
//! of several MB) under `target/bench/fetch-cdn/crates/{name}/{name}-{version}.crate`, with their
//! SHA-256 in `manifest.tsv`. A sparse-layout index directory (`target/bench/fetch-index`) lists
//! them, with `config.json` pointing `dl` at the server's CDN path, so `mirror-cli sync --index
//! DIR` mirrors exactly those files. They are served by nginx when it can be started, else by the
//! testkit server in a process of its own. Everything runs in the release build of this binary
//! (the hidden `--in-release`).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mirror_fetch::{Download, FetchOptions, Fetcher};
use mirror_index::{Checksum, DlTemplate, index_path};
use mirror_store::Store;
use sha2::{Digest as _, Sha256};

use super::common::{self, CrateFile, clock_ticks, parse_manifest, self_cpu, sync, tool_version};

/// Arguments of `cargo xtask bench fetch`.
#[derive(clap::Args)]
pub(super) struct FetchArgs {
    /// How many synthetic `.crate` files to download.
    #[arg(long, default_value_t = 20_000)]
    files: usize,
    /// How many of them are large (2–8 MB). Default: one in 200.
    #[arg(long)]
    large: Option<usize>,
    /// Downloads in flight at once, for every client (`mirror-cli sync --jobs`, the Fetcher's
    /// tasks and in-flight cap, curl's `--parallel-max`).
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Measured runs of each client; the fastest is reported (after one unmeasured warm-up each).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seed of the synthetic files' names, sizes and contents.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// The server: nginx when it can be started, else the testkit server (`auto`), or only one.
    #[arg(long, value_enum, default_value_t = ServerChoice::Auto)]
    server: ServerChoice,
    /// Where the clients' temporary output directories (curl's files, the Fetcher's files, the
    /// whole mirror of `mirror-cli sync`) go. Default: `/dev/shm` (tmpfs) when it exists, so that
    /// the clients are measured and not the disk; else `target/bench`.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Another `mirror-cli` binary to time like this build's (a build of an earlier commit, say),
    /// for before-and-after numbers measured in the same run.
    #[arg(long, value_name = "PATH")]
    baseline_cli: Option<PathBuf>,
    /// What to call `--baseline-cli` in the report.
    #[arg(long, value_name = "TEXT", default_value = "the baseline build")]
    baseline_label: String,
    /// Leave out the `mirror_fetch::Fetcher` row (the library alone, without store and state).
    #[arg(long)]
    no_fetcher: bool,
    /// Afterwards, record one more `mirror-cli sync` with `perf record` and print where its time
    /// went (not written to the docs).
    #[arg(long)]
    profile: bool,
    /// Install curl, nginx-light or linux-perf with apt-get when missing (needs root).
    #[arg(long)]
    apt: bool,
    /// Print the results without rewriting the fetch section of docs/benchmarks.md.
    #[arg(long)]
    no_docs: bool,
    /// Internal: this is the release build; run the benchmark here.
    #[arg(long, hide = true)]
    in_release: bool,
    /// Internal: serve this CDN tree with the testkit server, print its URL, and stop when stdin
    /// closes.
    #[arg(long, hide = true)]
    serve_testkit: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ServerChoice {
    Auto,
    Nginx,
    Testkit,
}

/// One in this many files is large by default.
const LARGE_EVERY: usize = 200;
/// The contact `mirror-cli sync` and the Fetcher send in their User-Agent.
const CONTACT: &str = "bench@localhost";
/// `mirror-cli sync --rate`: high enough that the rate limit never waits.
const NO_RATE_LIMIT: &str = "1000000";

pub(super) fn run(args: FetchArgs) -> anyhow::Result<()> {
    if let Some(cdn) = &args.serve_testkit {
        return serve_testkit(cdn);
    }
    if args.in_release {
        return bench(&args);
    }
    // Measurements of a debug build would say nothing; build and re-run ourselves in release.
    let exe = crate::fixtures::release_binary()?;
    let root = crate::common::workspace_root();
    let mut command = Command::new(&exe);
    command
        .args(["bench", "fetch", "--in-release", "--files"])
        .arg(args.files.to_string())
        .arg("--jobs")
        .arg(args.jobs.to_string())
        .arg("--runs")
        .arg(args.runs.to_string())
        .arg("--seed")
        .arg(args.seed.to_string())
        .arg("--server")
        .arg(match args.server {
            ServerChoice::Auto => "auto",
            ServerChoice::Nginx => "nginx",
            ServerChoice::Testkit => "testkit",
        });
    if let Some(large) = args.large {
        command.arg("--large").arg(large.to_string());
    }
    if let Some(dir) = &args.out_dir {
        command.arg("--out-dir").arg(root.join(dir));
    }
    if let Some(cli) = &args.baseline_cli {
        command.arg("--baseline-cli").arg(root.join(cli));
        command.arg("--baseline-label").arg(&args.baseline_label);
    }
    for (set, flag) in [
        (args.no_fetcher, "--no-fetcher"),
        (args.profile, "--profile"),
        (args.apt, "--apt"),
        (args.no_docs, "--no-docs"),
    ] {
        if set {
            command.arg(flag);
        }
    }
    let status = command
        .status()
        .with_context(|| format!("running {}", exe.display()))?;
    if !status.success() {
        bail!("bench fetch failed ({status})");
    }
    Ok(())
}

impl CrateFile {
    /// Its path below the CDN root, as crates.io's CDN lays it out.
    fn cdn_path(&self) -> String {
        format!("crates/{0}/{0}-{1}.crate", self.name, self.vers)
    }

    /// The name it is saved under in curl's and the Fetcher's output directories.
    fn file_name(&self) -> String {
        format!("{}-{}.crate", self.name, self.vers)
    }
}

/// The clients, in the order of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Sync,
    /// `mirror-cli sync` of `--baseline-cli`.
    Baseline,
    Fetcher,
    Curl,
}

impl Client {
    fn label(self) -> &'static str {
        match self {
            Client::Sync => "sync",
            Client::Baseline => "baseline",
            Client::Fetcher => "fetcher",
            Client::Curl => "curl",
        }
    }
}

/// What one run of a client measured.
#[derive(Clone, Copy, Debug)]
struct Measure {
    wall: Duration,
    /// CPU time of the client (user + system), from /proc.
    cpu: Duration,
    /// CPU time of the server's processes meanwhile, when it can be read (nginx's workers).
    server_cpu: Option<Duration>,
    /// `duration_ms` of `mirror-cli sync --json`: its own time from opening the mirror on.
    inner: Option<Duration>,
}

/// Everything one client's runs share.
struct Setup<'a> {
    files: &'a Arc<Vec<CrateFile>>,
    total: u64,
    server: &'a Server,
    index: &'a Path,
    cli: &'a Path,
    baseline: Option<&'a Path>,
    jobs: usize,
    ticks: f64,
    bench_dir: &'a Path,
}

/// The benchmark, in the release build.
fn bench(args: &FetchArgs) -> anyhow::Result<()> {
    let jobs = args.jobs.max(1);
    let runs = args.runs.max(1);
    let root = crate::common::workspace_root();
    let bench_dir = crate::common::target_dir(&root).join("bench");
    let cdn = bench_dir.join("fetch-cdn");
    let index = bench_dir.join("fetch-index");
    let shm = Path::new("/dev/shm");
    let (out_dir, out_desc) = match &args.out_dir {
        Some(dir) => (dir.clone(), "the directory given with `--out-dir`"),
        None if shm.is_dir() => (shm.to_path_buf(), "tmpfs (`/dev/shm`)"),
        None => (bench_dir.clone(), "the target directory's file system"),
    };
    let curl_version = tool_version(args.apt, "curl", &["--version"], "curl")?
        .context("curl is needed: `apt-get install -y curl`, or pass --apt")?;
    // "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 …": the name and version are enough.
    let curl_version = curl_version
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let cli = common::release_cli(&root)?;

    let started = Instant::now();
    let large = args
        .large
        .unwrap_or(args.files / LARGE_EVERY)
        .min(args.files);
    let files = Arc::new(cdn_tree(&cdn, args.files, large, args.seed)?);
    let total: u64 = files.iter().map(|f| f.size).sum();
    eprintln!(
        "==> {} files, {:.1} MB in {} ({:.1?})",
        files.len(),
        total as f64 / 1e6,
        cdn.display(),
        started.elapsed()
    );

    let server = start_server(args, &cdn, &bench_dir)?;
    eprintln!("==> serving with {} at {}", server.label, server.url);
    write_index(&index, &server.url, &files)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let setup = Setup {
        files: &files,
        total,
        server: &server,
        index: &index,
        cli: &cli,
        baseline: args.baseline_cli.as_deref(),
        jobs,
        ticks: clock_ticks(),
        bench_dir: &bench_dir,
    };

    let clients: Vec<Client> = [
        Client::Sync,
        Client::Baseline,
        Client::Fetcher,
        Client::Curl,
    ]
    .into_iter()
    .filter(|c| match c {
        Client::Baseline => args.baseline_cli.is_some(),
        Client::Fetcher => !args.no_fetcher,
        Client::Sync | Client::Curl => true,
    })
    .collect();
    let mut measured: Vec<Vec<Measure>> = vec![Vec::new(); clients.len()];
    // Run 0 is the unmeasured warm-up. The order rotates so that no client always goes first.
    for run in 0..=runs {
        for k in 0..clients.len() {
            let which = (k + run) % clients.len();
            let client = clients[which];
            let out = tempfile::Builder::new()
                .prefix("fetch-out-")
                .tempdir_in(&out_dir)
                .with_context(|| format!("making an output directory in {}", out_dir.display()))?;
            sync();
            let m = match client {
                Client::Sync => run_sync(&setup, setup.cli, out.path())?,
                Client::Baseline => run_sync(
                    &setup,
                    setup.baseline.expect("only with --baseline-cli"),
                    out.path(),
                )?,
                Client::Fetcher => run_fetcher(&runtime, &setup, out.path())?,
                Client::Curl => run_curl(&setup, out.path())?,
            };
            check_outputs(&files, client, out.path())?;
            let secs = m.wall.as_secs_f64();
            eprintln!(
                "{:<8} {}: {secs:>6.2} s, {:>7.0} files/s, {:>6.0} MB/s, {:.2} s CPU{}{}",
                client.label(),
                if run == 0 {
                    "warm-up".to_owned()
                } else {
                    format!("run {run}  ")
                },
                files.len() as f64 / secs,
                total as f64 / 1e6 / secs,
                m.cpu.as_secs_f64(),
                m.server_cpu
                    .map(|d| format!(", server {:.2} s CPU", d.as_secs_f64()))
                    .unwrap_or_default(),
                m.inner
                    .map(|d| format!(", {} ms inside", d.as_millis()))
                    .unwrap_or_default(),
            );
            // Deleting a few GB from tmpfs takes a moment; not inside anyone's clock.
            drop(out);
            if run > 0 {
                measured[which].push(m);
            }
        }
    }

    let mut report = report(&files, args, large, jobs, runs, &clients, &measured);
    for (client, runs) in clients.iter().zip(&measured) {
        let all = runs
            .iter()
            .map(|m| format!("{:.2}", m.wall.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ");
        report.push_str(&format!(
            "Every run of {}, in seconds: {all}",
            client.label()
        ));
        if matches!(client, Client::Sync | Client::Baseline) {
            let inner = runs
                .iter()
                .filter_map(|m| m.inner)
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ");
            report.push_str(&format!(" (its own `duration_ms`: {inner})"));
        }
        report.push_str(".\n");
    }
    println!("{report}");
    if args.profile {
        profile(args, &setup, &out_dir)?;
    }
    let label = server.label.clone();
    drop(server);
    if !args.no_docs {
        common::write_section(
            "fetch",
            &section(args, jobs, runs, &label, &curl_version, out_desc, &report),
        )?;
    }
    Ok(())
}

/// The best (fastest) of a client's runs.
fn best(runs: &[Measure]) -> Measure {
    *runs
        .iter()
        .min_by_key(|m| m.wall)
        .expect("at least one run")
}

/// The results as a markdown table, with the goal checked.
fn report(
    files: &[CrateFile],
    args: &FetchArgs,
    large: usize,
    jobs: usize,
    runs: usize,
    clients: &[Client],
    measured: &[Vec<Measure>],
) -> String {
    let (seed, baseline_label) = (args.seed, &args.baseline_label);
    let total: u64 = files.iter().map(|f| f.size).sum();
    let mut sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
    sizes.sort_unstable();
    let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
    let max = sizes.last().copied().unwrap_or(0);
    let small = sizes.iter().filter(|&&s| s < 40_000).count();
    let big: u64 = sizes.iter().filter(|&&s| s >= 2_000_000).sum();
    let crates = files
        .iter()
        .map(|f| f.name.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let count = files.len() as f64;
    let mut out = format!(
        "{} files of {crates} crates, {:.2} GB (median {:.1} KB, {:.0}% under 40 KB, largest {:.1} MB; {large} files of 2–8 MB hold {:.0}% of the bytes; seed {seed}); {jobs} downloads in flight; best of {runs} runs after one warm-up each.\n\n",
        files.len(),
        total as f64 / 1e9,
        median as f64 / 1e3,
        small as f64 * 100.0 / count.max(1.0),
        max as f64 / 1e6,
        big as f64 * 100.0 / (total as f64).max(1.0),
    );
    out.push_str(
        "| client | wall | files/s | MB/s | client CPU | server CPU | files/s and MB/s vs. curl |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let curl = clients
        .iter()
        .position(|c| *c == Client::Curl)
        .map(|i| best(&measured[i]))
        .expect("curl is always measured");
    let curl_secs = curl.wall.as_secs_f64().max(1e-9);
    let mut sync_ratio = None;
    for (client, runs) in clients.iter().zip(measured) {
        let m = best(runs);
        let secs = m.wall.as_secs_f64().max(1e-9);
        let ratio = curl_secs / secs;
        let (what, vs) = match client {
            Client::Sync => {
                sync_ratio = Some(ratio);
                (
                    format!("`mirror-cli sync --jobs {jobs}` (process start to exit)"),
                    format!("{ratio:.2}x"),
                )
            }
            Client::Baseline => (
                format!("`mirror-cli sync --jobs {jobs}` of {baseline_label}"),
                format!("{ratio:.2}x"),
            ),
            Client::Fetcher => (
                format!("`mirror_fetch::Fetcher` alone, {jobs} tasks into `tokio::fs::File`"),
                format!("{ratio:.2}x"),
            ),
            Client::Curl => (
                format!("`curl --parallel --parallel-max {jobs}`"),
                "1.00x (baseline)".to_owned(),
            ),
        };
        out.push_str(&format!(
            "| {what} | {secs:.2} s | {:.0} | {:.0} | {:.2} s | {} | {vs} |\n",
            count / secs,
            total as f64 / 1e6 / secs,
            m.cpu.as_secs_f64(),
            m.server_cpu
                .map_or_else(|| "?".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
        ));
    }
    if let Some(ratio) = sync_ratio {
        out.push_str(&format!(
            "\nGoal: `mirror-cli sync` at {ratio:.2}x curl's files/s and MB/s (≥ 1.0x: {}).\n",
            if ratio >= 1.0 { "met" } else { "MISSED" }
        ));
    }
    let best_of = |which: Client| {
        clients
            .iter()
            .position(|c| *c == which)
            .map(|i| best(&measured[i]))
    };
    if let (Some(now), Some(then)) = (best_of(Client::Sync), best_of(Client::Baseline)) {
        out.push_str(&format!(
            "This build against {baseline_label}: {:.2}x its files/s and MB/s, with {:.0}% less client CPU.\n",
            then.wall.as_secs_f64() / now.wall.as_secs_f64().max(1e-9),
            (1.0 - now.cpu.as_secs_f64() / then.cpu.as_secs_f64().max(1e-9)) * 100.0,
        ));
    }
    out
}

/// The fetch section of docs/benchmarks.md, without its markers.
fn section(
    args: &FetchArgs,
    jobs: usize,
    runs: usize,
    server: &str,
    curl_version: &str,
    out_desc: &str,
    report: &str,
) -> String {
    let date = common::today();
    let machine = common::machine();
    let mut command = format!(
        "cargo xtask bench fetch --files {} --jobs {jobs} --runs {runs}",
        args.files
    );
    if let Some(large) = args.large {
        command.push_str(&format!(" --large {large}"));
    }
    if args.seed != 2026 {
        command.push_str(&format!(" --seed {}", args.seed));
    }
    if args.out_dir.is_some() {
        command.push_str(" --out-dir DIR");
    }
    if args.baseline_cli.is_some() {
        command.push_str(&format!(
            " --baseline-cli PATH --baseline-label {:?}",
            args.baseline_label
        ));
    }
    if args.no_fetcher {
        command.push_str(" --no-fetcher");
    }
    match args.server {
        ServerChoice::Auto => {}
        ServerChoice::Nginx => command.push_str(" --server nginx"),
        ServerChoice::Testkit => command.push_str(" --server testkit"),
    }
    format!(
        "## Downloading `.crate` files over loopback

- Command: `{command}`
- Date: {date}
- Machine: {machine} when the report was
  written (the server and the clients share the machine's cores)
- Server: {server}; baseline: {curl_version}

{report}
How it is measured:

- The files are a deterministic CDN tree of synthetic `.crate` files (random, incompressible
  bytes) of crates with random lowercase names and 1–29 versions each, laid out as the CDN
  serves them (`crates/{{name}}/{{name}}-{{version}}.crate`), with their SHA-256 computed when
  they are made. Sizes come from the generator of `bench verify`: 75% of 2–40 KB, 22% of
  40–400 KB, 3% of 0.4–2 MB, and one file in {large_every} of 2–8 MB (`--large`). They sit in
  the page cache.
- A sparse-layout index directory lists every file with a valid index line whose `cksum` is its
  SHA-256; its `config.json` points `dl` at the server's CDN path
  (`http://127.0.0.1:PORT/crates/{{crate}}/{{crate}}-{{version}}.crate`).
- `mirror-cli sync --dest DIR --index INDEX --jobs {jobs} --rate {NO_RATE_LIMIT} --attempts 1
  --contact {CONTACT} --json` is the release build, timed from spawn to exit, into a fresh mirror: reading the
  index, planning against an empty state, every download hashed while it streams into a temp
  file, fsync, rename into `crates/…` (parent directories created and synced), each version
  recorded verified in the state, the published index written, the state flushed. Its JSON must
  say every version was downloaded, none failed, with the expected bytes.
- `curl --parallel --parallel-max {jobs} -s -S --fail -K CONFIG` gets one config file of `url` /
  `output` pairs for the same URLs, into a fresh flat directory (no hashing, no fsync, no
  rename); its process start is timed.
- The Fetcher row is the library alone, in this process: `mirror_fetch::Fetcher` with its rate
  limit effectively off and its in-flight cap at the number of jobs, one attempt per file, {jobs}
  tasks each streaming (and hashing) one download at a time into a `tokio::fs::File` created
  inside the timed part; no temp file, fsync, rename or state.
- Every client downloads every file over HTTP/1.1 on loopback from the same server, with the
  same number of downloads in flight, in the same run, in an order that rotates between runs.
  The outputs are written to {out_desc}, so this measures the clients and loopback, not a disk
  or a network (on tmpfs an fsync costs next to nothing: on a disk `mirror-cli sync` pays for
  its durability and curl does not; `--out-dir` measures that). Every output is checked (sizes
  and SHA-256) after the clock stops.
- *Client CPU* is user + system time of the client process (for the Fetcher, of this process,
  which does nothing else meanwhile); *server CPU* that of nginx's worker processes during the
  same run.
",
        large_every = LARGE_EVERY,
    )
}

// ---------------------------------------------------------------------------------------------
// The CDN tree and the index.

/// The tree of `count` files (`large` of 2–8 MB) from `seed` under `cdn`: reused when its
/// manifest says it was made from the same parameters and every file has its size, made again
/// otherwise (on every core).
fn cdn_tree(cdn: &Path, count: usize, large: usize, seed: u64) -> anyhow::Result<Vec<CrateFile>> {
    let header =
        format!("# mirror-cli bench fetch: {count} files, {large} large, seed {seed}, format 2");
    let manifest = cdn.join("manifest.tsv");
    if let Ok(text) = std::fs::read_to_string(&manifest)
        && text.lines().next() == Some(header.as_str())
        && let Ok(files) = parse_manifest(&text)
        && files.len() == count
        && files.iter().all(|f| {
            std::fs::metadata(cdn.join(f.cdn_path()))
                .is_ok_and(|m| m.is_file() && m.len() == f.size)
        })
    {
        return Ok(files);
    }
    eprintln!(
        "==> generating {count} synthetic .crate files in {}",
        cdn.display()
    );
    if cdn.exists() {
        std::fs::remove_dir_all(cdn).with_context(|| format!("removing {}", cdn.display()))?;
    }
    let plan = common::plan(count, large, seed)?;
    let sums = common::write_files(&plan, seed, &|name, vers| {
        cdn.join(format!("crates/{name}/{name}-{vers}.crate"))
    })?;
    let mut text = format!("{header}\n");
    let mut files = Vec::with_capacity(count);
    for ((name, vers, size), cksum) in plan.into_iter().zip(sums) {
        text.push_str(&format!("{name}\t{vers}\t{size}\t{cksum}\n"));
        files.push(CrateFile {
            name,
            vers,
            size,
            cksum,
        });
    }
    std::fs::write(&manifest, text).with_context(|| format!("writing {}", manifest.display()))?;
    Ok(files)
}

/// Writes the sparse-layout index of `files` into `dir` (made again every run: the server's port
/// is in `config.json`): one file per crate at its index path, one line per version, in order.
fn write_index(dir: &Path, base_url: &str, files: &[CrateFile]) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = serde_json::json!({
        "dl": format!("{base_url}/crates/{{crate}}/{{crate}}-{{version}}.crate"),
    });
    std::fs::write(dir.join("config.json"), format!("{config}\n"))?;
    let mut lines: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for f in files {
        // The fields Cargo requires, in the order crates.io writes them.
        let line = serde_json::json!({
            "name": f.name.as_str(),
            "vers": f.vers.to_string(),
            "deps": [],
            "cksum": f.cksum.to_string(),
            "features": {},
            "yanked": false,
        });
        let text = lines.entry(index_path(&f.name)).or_default();
        text.push_str(&line.to_string());
        text.push('\n');
    }
    for (path, text) in lines {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("an index path has a directory"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Checks that a client left every file whole, with its checksum, where it belongs: in a flat
/// directory for curl and the Fetcher, at `Store::crate_path` in the mirror of `mirror-cli sync`.
/// Hashes on every core.
fn check_outputs(files: &[CrateFile], client: Client, out: &Path) -> anyhow::Result<()> {
    let store = match client {
        Client::Sync | Client::Baseline => Some(Store::open(&out.join("mirror"))?),
        Client::Fetcher | Client::Curl => None,
    };
    let path_of = |file: &CrateFile| match &store {
        Some(store) => store.crate_path(&file.name, &file.vers),
        None => out.join(file.file_name()),
    };
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            return Ok(());
                        };
                        let path = path_of(file);
                        let bytes = std::fs::read(&path).with_context(|| {
                            format!("{} left no {}", client.label(), path.display())
                        })?;
                        if bytes.len() as u64 != file.size {
                            bail!(
                                "{} has {} bytes, not {}",
                                path.display(),
                                bytes.len(),
                                file.size
                            );
                        }
                        if Checksum::from_bytes(Sha256::digest(&bytes).into()) != file.cksum {
                            bail!("{} does not have its checksum", path.display());
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a checker does not panic"))
    })
}

// ---------------------------------------------------------------------------------------------
// The clients.

/// `mirror-cli sync` into a fresh mirror at `out/mirror`, timed from spawn to exit.
fn run_sync(setup: &Setup<'_>, cli: &Path, out: &Path) -> anyhow::Result<Measure> {
    let mut command = sync_command(setup, cli, &out.join("mirror"));
    let cpu = self_cpu(setup.ticks).1;
    let server_cpu = setup.server.cpu(setup.ticks);
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("running {}", cli.display()))?;
    let wall = started.elapsed();
    let cpu = self_cpu(setup.ticks).1 - cpu;
    let server_cpu = server_cpu
        .zip(setup.server.cpu(setup.ticks))
        .map(|(before, after)| Duration::from_secs_f64((after - before).max(0.0)));
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "mirror-cli sync failed ({}): {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let last = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(last)
        .with_context(|| format!("parsing the JSON summary of mirror-cli sync: {last:?}"))?;
    let n = |k: &str| json[k].as_u64().unwrap_or(u64::MAX);
    let count = setup.files.len() as u64;
    if n("index_versions") != count
        || n("downloaded") != count
        || n("downloaded_bytes") != setup.total
        || n("failed") != 0
    {
        bail!(
            "mirror-cli sync should have downloaded {count} versions and {} bytes, none failed: {last}",
            setup.total
        );
    }
    Ok(Measure {
        wall,
        cpu: Duration::from_secs_f64(cpu.max(0.0)),
        server_cpu,
        inner: json["duration_ms"].as_u64().map(Duration::from_millis),
    })
}

/// The `mirror-cli sync` command line of the benchmark, into the mirror at `dest`.
fn sync_command(setup: &Setup<'_>, cli: &Path, dest: &Path) -> Command {
    let mut command = Command::new(cli);
    command
        .arg("sync")
        .arg("--dest")
        .arg(dest)
        .arg("--index")
        .arg(setup.index)
        .arg("--jobs")
        .arg(setup.jobs.to_string())
        .args([
            "--rate",
            NO_RATE_LIMIT,
            "--attempts",
            "1",
            "--contact",
            CONTACT,
        ])
        .arg("--json")
        .env_remove("RUST_LOG")
        .env_remove("MIRROR_CLI_INDEX")
        .env_remove("MIRROR_CLI_CONTACT")
        .stdin(Stdio::null());
    command
}

/// The Fetcher alone, in this process: `jobs` tasks, each streaming one download at a time into
/// a `tokio::fs::File` in `out`.
fn run_fetcher(
    runtime: &tokio::runtime::Runtime,
    setup: &Setup<'_>,
    out: &Path,
) -> anyhow::Result<Measure> {
    let (files, jobs, ticks) = (setup.files, setup.jobs, setup.ticks);
    let dl = DlTemplate::new(&format!(
        "{}/crates/{{crate}}/{{crate}}-{{version}}.crate",
        setup.server.url
    ))?;
    let mut options = FetchOptions::new(dl);
    options.contact = Some(CONTACT.into());
    options.requests_per_second = 1e6;
    options.burst = 1000;
    options.max_in_flight = jobs;
    options.max_attempts = 1;

    let cpu = self_cpu(ticks);
    let server_cpu = setup.server.cpu(ticks);
    let started = Instant::now();
    let bytes = runtime.block_on(async {
        let fetcher = Fetcher::new(options)?;
        let next = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            let (fetcher, files, next, bytes) = (
                fetcher.clone(),
                Arc::clone(files),
                Arc::clone(&next),
                Arc::clone(&bytes),
            );
            let out = out.to_path_buf();
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else {
                        return anyhow::Ok(());
                    };
                    let path = out.join(file.file_name());
                    let mut sink = tokio::fs::File::create(&path)
                        .await
                        .with_context(|| format!("creating {}", path.display()))?;
                    let download = Download::new(&file.name, &file.vers, &file.cksum);
                    let verified = fetcher.fetch(&download, &mut sink).await?;
                    bytes.fetch_add(verified.len, Ordering::Relaxed);
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        anyhow::Ok(bytes.load(Ordering::Relaxed))
    })?;
    let wall = started.elapsed();
    let cpu = self_cpu(ticks).0 - cpu.0;
    let server_cpu = server_cpu
        .zip(setup.server.cpu(ticks))
        .map(|(before, after)| Duration::from_secs_f64((after - before).max(0.0)));
    if bytes != setup.total {
        bail!("the Fetcher verified {bytes} bytes, not {}", setup.total);
    }
    Ok(Measure {
        wall,
        cpu: Duration::from_secs_f64(cpu.max(0.0)),
        server_cpu,
        inner: None,
    })
}

/// A `-K` config for curl: one `url` / `output` pair per file.
fn write_curl_config(
    conf: &Path,
    base_url: &str,
    files: &[CrateFile],
    out: &Path,
) -> anyhow::Result<()> {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut text = String::new();
    for file in files {
        text.push_str(&format!(
            "url = {}\noutput = {}\n",
            quote(&format!("{base_url}/{}", file.cdn_path())),
            quote(&out.join(file.file_name()).to_string_lossy()),
        ));
    }
    std::fs::write(conf, text).with_context(|| format!("writing {}", conf.display()))
}

/// `curl --parallel` over the same URLs into `out`, timed from spawn to exit.
fn run_curl(setup: &Setup<'_>, out: &Path) -> anyhow::Result<Measure> {
    let conf = setup.bench_dir.join("fetch-curl.conf");
    write_curl_config(&conf, &setup.server.url, setup.files, out)?;
    let ticks = setup.ticks;
    let cpu = self_cpu(ticks).1;
    let server_cpu = setup.server.cpu(ticks);
    let started = Instant::now();
    let output = Command::new("curl")
        .args(["--parallel", "--parallel-max"])
        .arg(setup.jobs.to_string())
        .args(["-s", "-S", "--fail", "-K"])
        .arg(&conf)
        .stdin(Stdio::null())
        .output()
        .context("running curl")?;
    let wall = started.elapsed();
    let cpu = self_cpu(ticks).1 - cpu;
    let server_cpu = server_cpu
        .zip(setup.server.cpu(ticks))
        .map(|(before, after)| Duration::from_secs_f64((after - before).max(0.0)));
    if !output.status.success() {
        bail!(
            "curl failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(Measure {
        wall,
        cpu: Duration::from_secs_f64(cpu.max(0.0)),
        server_cpu,
        inner: None,
    })
}

/// `perf record` of one more `mirror-cli sync` into a fresh mirror, and where its time went.
fn profile(args: &FetchArgs, setup: &Setup<'_>, out_dir: &Path) -> anyhow::Result<()> {
    tool_version(args.apt, "perf", &["--version"], "linux-perf")?
        .context("perf is needed for --profile: `apt-get install -y linux-perf`, or pass --apt")?;
    let out = tempfile::Builder::new()
        .prefix("fetch-profile-")
        .tempdir_in(out_dir)?;
    let data = setup.bench_dir.join("fetch-perf.data");
    eprintln!(
        "==> perf record (cpu-clock) of one mirror-cli sync into {}",
        data.display()
    );
    let sync = sync_command(setup, setup.cli, &out.path().join("mirror"));
    let mut command = Command::new("perf");
    command
        .args(["record", "-e", "cpu-clock", "-F", "2000", "-g", "-o"])
        .arg(&data)
        .arg("--")
        .arg(sync.get_program())
        .args(sync.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (key, value) in sync.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let status = command.status().context("running perf record")?;
    if !status.success() {
        bail!("perf record failed ({status})");
    }
    common::print_perf_report(&data)
}

// ---------------------------------------------------------------------------------------------
// The servers.

/// A running server process, stopped when dropped.
struct Server {
    url: String,
    label: String,
    child: Child,
    /// nginx stops gracefully on `SIGTERM` (its workers with it); the testkit server when its
    /// stdin closes.
    nginx: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// CPU seconds (user + system) of the server so far: its process and the processes it
    /// started (nginx's workers). `None` when /proc cannot tell.
    fn cpu(&self, ticks: f64) -> Option<f64> {
        let pid = self.child.id();
        let mut total = None;
        for entry in std::fs::read_dir("/proc").ok()? {
            let Ok(entry) = entry else { continue };
            let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // Fields after the command name, from the state (field 3) on.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest)
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            let field = |k: usize| fields.get(k - 3).and_then(|f| f.parse::<f64>().ok());
            let ppid = field(4).map(|p| p as u32);
            if n == pid || ppid == Some(pid) {
                let cpu = field(14).unwrap_or(0.0) + field(15).unwrap_or(0.0);
                *total.get_or_insert(0.0) += cpu / ticks;
            }
        }
        total
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.nginx {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
        } else {
            drop(self.child.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(args: &FetchArgs, cdn: &Path, bench_dir: &Path) -> anyhow::Result<Server> {
    let server = match args.server {
        ServerChoice::Testkit => start_testkit(cdn)?,
        ServerChoice::Nginx => start_nginx(args.apt, cdn, bench_dir)?,
        ServerChoice::Auto => match start_nginx(args.apt, cdn, bench_dir) {
            Ok(server) => server,
            Err(error) => {
                eprintln!("warning: no nginx ({error:#}); falling back to the testkit server");
                start_testkit(cdn)?
            }
        },
    };
    Ok(server)
}

/// A loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts nginx serving `cdn` on a free loopback port, with a generated configuration in a
/// temporary directory; tries a few ports in case one is taken in between.
fn start_nginx(apt: bool, cdn: &Path, bench_dir: &Path) -> anyhow::Result<Server> {
    let version = tool_version(apt, "nginx", &["-v"], "nginx-light")?
        .context("nginx is not installed (`apt-get install -y nginx-light`, or pass --apt)")?;
    let version = version
        .strip_prefix("nginx version: ")
        .unwrap_or(&version)
        .to_owned();
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let mut last_error = None;
    for _ in 0..5 {
        let dir = tempfile::Builder::new()
            .prefix("fetch-nginx-")
            .tempdir_in(bench_dir)?;
        let port = free_port()?;
        let d = dir.path().display();
        let conf = format!(
            "# Generated by `cargo xtask bench fetch`.
{user}daemon off;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {cdn};
    }}
}}
",
            user = if root_user { "user root root;\n" } else { "" },
            cdn = cdn.display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting nginx")?;
        let url = format!("http://127.0.0.1:{port}");
        match wait_ready(port, &mut child) {
            Ok(()) => {
                let workers = std::thread::available_parallelism().map_or(1, usize::from);
                return Ok(Server {
                    url,
                    label: format!(
                        "{version} (`worker_processes auto` = {workers}, `sendfile on`, access log off)"
                    ),
                    child,
                    nginx: true,
                    _dir: Some(dir),
                });
            }
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                last_error = Some(anyhow::anyhow!(
                    "{error:#}: {}{}",
                    stderr.trim(),
                    log.trim()
                ));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nginx did not start")))
}

/// Starts the testkit server in a process of its own (this binary, `--serve-testkit`).
fn start_testkit(cdn: &Path) -> anyhow::Result<Server> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let mut child = Command::new(exe)
        .args(["bench", "fetch", "--serve-testkit"])
        .arg(cdn)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the testkit server")?;
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().context("no stdout")?);
    std::io::BufRead::read_line(&mut stdout, &mut line)?;
    let url = line.trim().trim_end_matches('/').to_owned();
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("the testkit server printed {line:?}"))?;
    wait_ready(port, &mut child)?;
    Ok(Server {
        url,
        label:
            "the testkit server (`mirror_testkit::server::TestServer`, axum; a process of its own)"
                .into(),
        child,
        nginx: false,
        _dir: None,
    })
}

/// Waits until something answers HTTP on `port`, or `child` exits, or 10 s pass.
fn wait_ready(port: u16, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the server exited ({status})");
        }
        if let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let request = "GET /crates/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
            let mut head = [0u8; 12];
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_exact(&mut head).is_ok()
                && head.starts_with(b"HTTP/1.")
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("the server did not answer on port {port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--serve-testkit`: serves `cdn` until stdin closes.
fn serve_testkit(cdn: &Path) -> anyhow::Result<()> {
    use mirror_testkit::server::{RegistryOptions, TestServer};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let index = tempfile::tempdir()?;
    runtime.block_on(async {
        let options = RegistryOptions::new(index.path().to_path_buf(), Some(cdn.to_path_buf()));
        let server = TestServer::start_registry(options).await;
        println!("{}", server.url());
        std::io::stdout().flush()?;
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
        drop(server);
        anyhow::Ok(())
    })
}
