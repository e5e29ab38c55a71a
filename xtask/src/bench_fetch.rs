//! `cargo xtask bench fetch`: raw download throughput over loopback of `mirror_fetch::Fetcher`,
//! against `curl --parallel` downloading the same files from the same server in the same run.
//!
//! The files are a deterministic CDN tree of synthetic `.crate` files (random bytes, sizes drawn
//! from a seeded generator: most a few KB to tens of KB, a few of several MB) under
//! `target/bench/fetch-cdn/crates/{name}/{name}-{version}.crate`, with their SHA-256 in
//! `manifest.tsv`. They are served by nginx when it can be started (a neutral server, faster than
//! either client), else by the testkit server in a process of its own. Everything runs in the
//! release build of this binary (the hidden `--in-release`).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mirror_fetch::{Download, FetchOptions, Fetcher};
use mirror_index::{Checksum, CrateName, DlTemplate, Version};
use sha2::{Digest as _, Sha256};

/// Arguments of `cargo xtask bench fetch`.
#[derive(clap::Args)]
pub(crate) struct FetchArgs {
    /// How many synthetic `.crate` files to download.
    #[arg(long, default_value_t = 2000)]
    files: usize,
    /// Downloads in flight at once, for both clients (Fetcher tasks and in-flight cap, curl's
    /// `--parallel-max`).
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Measured runs of each client; the fastest is reported (after one unmeasured warm-up each).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seed of the synthetic files' sizes and contents.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// The server: nginx when it can be started, else the testkit server (`auto`), or only one.
    #[arg(long, value_enum, default_value_t = ServerChoice::Auto)]
    server: ServerChoice,
    /// Where the clients' temporary output directories go. Default: `/dev/shm` (tmpfs) when it
    /// exists, so that the clients are measured and not the disk; else `target/bench`.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Install curl or nginx-light with apt-get when missing (needs root).
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

pub(crate) fn run(args: FetchArgs) -> anyhow::Result<()> {
    if let Some(cdn) = &args.serve_testkit {
        return serve_testkit(cdn);
    }
    if args.in_release {
        return bench(&args);
    }
    // Measurements of a debug build would say nothing; build and re-run ourselves in release.
    let exe = crate::fixtures::release_binary()?;
    let root = crate::workspace_root();
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
    if let Some(dir) = &args.out_dir {
        command.arg("--out-dir").arg(root.join(dir));
    }
    if args.apt {
        command.arg("--apt");
    }
    if args.no_docs {
        command.arg("--no-docs");
    }
    let status = command
        .status()
        .with_context(|| format!("running {}", exe.display()))?;
    if !status.success() {
        bail!("bench fetch failed ({status})");
    }
    Ok(())
}

/// One synthetic `.crate` file.
struct CrateFile {
    name: CrateName,
    vers: Version,
    size: u64,
    cksum: Checksum,
}

impl CrateFile {
    /// Its path below the CDN root, as crates.io's CDN lays it out.
    fn cdn_path(&self) -> String {
        format!("crates/{0}/{0}-{1}.crate", self.name, self.vers)
    }

    /// The name it is saved under in a client's output directory.
    fn file_name(&self) -> String {
        format!("{}-{}.crate", self.name, self.vers)
    }
}

/// What one run of a client measured.
#[derive(Clone, Copy, Debug)]
struct Measure {
    wall: Duration,
    /// CPU time of the client (user + system), from /proc.
    cpu: Duration,
}

/// The benchmark, in the release build.
fn bench(args: &FetchArgs) -> anyhow::Result<()> {
    let jobs = args.jobs.max(1);
    let runs = args.runs.max(1);
    let root = crate::workspace_root();
    let bench_dir = crate::bench::target_dir(&root).join("bench");
    let cdn = bench_dir.join("fetch-cdn");
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

    let started = Instant::now();
    let files = Arc::new(cdn_tree(&cdn, args.files, args.seed)?);
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let ticks = clock_ticks();

    let mut fetcher_runs = Vec::new();
    let mut curl_runs = Vec::new();
    // Run 0 is the unmeasured warm-up. The order alternates so neither client always goes first.
    for run in 0..=runs {
        for fetcher_turn in [run % 2 == 0, run % 2 != 0] {
            let out = tempfile::Builder::new()
                .prefix("fetch-out-")
                .tempdir_in(&out_dir)
                .with_context(|| format!("making an output directory in {}", out_dir.display()))?;
            sync();
            let (client, m) = if fetcher_turn {
                let m = run_fetcher(&runtime, &server.url, &files, out.path(), jobs, ticks)?;
                check_outputs(&files, out.path(), false)?;
                ("fetcher", m)
            } else {
                let conf = bench_dir.join("fetch-curl.conf");
                write_curl_config(&conf, &server.url, &files, out.path())?;
                let m = run_curl(&conf, jobs, ticks)?;
                check_outputs(&files, out.path(), true)?;
                ("curl", m)
            };
            let secs = m.wall.as_secs_f64();
            eprintln!(
                "{client:<8} {}: {secs:>6.2} s, {:>7.0} files/s, {:>6.0} MB/s, {:.2} s CPU",
                if run == 0 {
                    "warm-up".to_owned()
                } else {
                    format!("run {run}  ")
                },
                files.len() as f64 / secs,
                total as f64 / 1e6 / secs,
                m.cpu.as_secs_f64(),
            );
            if run > 0 {
                if fetcher_turn {
                    fetcher_runs.push(m);
                } else {
                    curl_runs.push(m);
                }
            }
        }
    }
    let label = server.label.clone();
    drop(server);

    let best = |runs: &[Measure]| -> Measure {
        *runs
            .iter()
            .min_by_key(|m| m.wall)
            .expect("at least one run")
    };
    let (fetcher, curl) = (best(&fetcher_runs), best(&curl_runs));
    let mut report = report(&files, args.seed, jobs, runs, fetcher, curl);
    let all = |runs: &[Measure]| {
        runs.iter()
            .map(|m| format!("{:.2}", m.wall.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    report.push_str(&format!(
        "Every run, in seconds: Fetcher {}; curl {}.\n",
        all(&fetcher_runs),
        all(&curl_runs)
    ));
    println!("{report}");
    if !args.no_docs {
        crate::bench::write_section(
            "fetch",
            &section(args, jobs, runs, &label, &curl_version, out_desc, &report),
        )?;
    }
    Ok(())
}

/// The results as a markdown table.
fn report(
    files: &[CrateFile],
    seed: u64,
    jobs: usize,
    runs: usize,
    fetcher: Measure,
    curl: Measure,
) -> String {
    let total: u64 = files.iter().map(|f| f.size).sum();
    let mut sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
    sizes.sort_unstable();
    let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
    let max = sizes.last().copied().unwrap_or(0);
    let big = sizes.iter().filter(|&&s| s >= 1_000_000).count();
    let mut out = format!(
        "{} files, {:.1} MB (median {:.1} KB, largest {:.1} MB, {big} of 1 MB or more; seed {seed}); {jobs} downloads in flight; best of {runs} runs after one warm-up each.\n\n",
        files.len(),
        total as f64 / 1e6,
        median as f64 / 1e3,
        max as f64 / 1e6,
    );
    out.push_str(
        "| client | wall | files/s | MB/s | client CPU | wall vs. curl |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let curl_secs = curl.wall.as_secs_f64().max(1e-9);
    for (client, m, baseline) in [
        (
            format!("`mirror_fetch::Fetcher`, {jobs} tasks into `tokio::fs::File`"),
            fetcher,
            false,
        ),
        (
            format!("`curl --parallel --parallel-max {jobs}`"),
            curl,
            true,
        ),
    ] {
        let secs = m.wall.as_secs_f64().max(1e-9);
        let ratio = if baseline {
            "1.00x (baseline)".to_owned()
        } else {
            format!("{:.2}x", secs / curl_secs)
        };
        out.push_str(&format!(
            "| {client} | {secs:.2} s | {:.0} | {:.0} | {:.2} s | {ratio} |\n",
            files.len() as f64 / secs,
            total as f64 / 1e6 / secs,
            m.cpu.as_secs_f64(),
        ));
    }
    let ratio = fetcher.wall.as_secs_f64() / curl_secs;
    out.push_str(&format!(
        "\nFetcher/curl wall time: {ratio:.2}x ({}).\n",
        if ratio <= 1.0 {
            format!("the Fetcher is {:.0}% faster", (1.0 / ratio - 1.0) * 100.0)
        } else {
            format!("the Fetcher is {:.0}% slower", (ratio - 1.0) * 100.0)
        }
    ));
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
    let date = crate::bench::today();
    let machine = crate::bench::machine();
    let mut command = format!(
        "cargo xtask bench fetch --files {} --jobs {jobs} --runs {runs}",
        args.files
    );
    if args.seed != 2026 {
        command.push_str(&format!(" --seed {}", args.seed));
    }
    if args.out_dir.is_some() {
        command.push_str(" --out-dir DIR");
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
  written (the server and both clients share the machine's cores)
- Server: {server}; client: {curl_version}

{report}
How it is measured:

- The files are a deterministic CDN tree of synthetic `.crate` files (random, incompressible
  bytes; sizes from a seeded generator: most 2–40 KB, a quarter 40–400 KB, a few up to 2 MB, and
  one in 200 of 2–8 MB) with their SHA-256 computed when they are made. They sit in the page
  cache. The downloads are written to {out_desc},
  so this measures the clients and loopback, not a disk or a network (writing to a disk adds the
  same cost to both clients, and on a busy virtual machine it varies from run to run more than the
  clients differ; `--out-dir` measures it).
- Both clients download every file over HTTP/1.1 on loopback from the same server, with the same
  number of downloads in flight, into a fresh temporary directory, in the same run; the order of
  the two alternates between runs.
- The Fetcher has its rate limit effectively off (10⁶ requests/s) and its in-flight cap at the
  number of jobs, one attempt per file; it hashes and verifies every body as it streams it into a
  `tokio::fs::File`, and the files are created inside the timed part. curl gets one `-K` config
  file of `url` / `output` pairs (`-s --fail`), and its process start is timed; its outputs are
  checked (sizes and SHA-256) after the clock stops.
- *Client CPU* is user + system time: of the xtask process for the Fetcher (it does nothing else
  meanwhile), of the curl process for curl.
"
    )
}

// ---------------------------------------------------------------------------------------------
// The CDN tree.

/// SplitMix64: small, fast and the same everywhere, so the tree depends only on the seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-uniform in [lo, hi).
    pub(crate) fn log_uniform(&mut self, lo: f64, hi: f64) -> u64 {
        (lo * (hi / lo).powf(self.unit())) as u64
    }
}

/// The size of file `i`: one in 200 of several MB, the others mostly small.
fn size_of(i: usize, rng: &mut Rng) -> u64 {
    if i % 200 == 100 {
        return rng.log_uniform(2e6, 8e6);
    }
    let class = rng.unit();
    if class < 0.70 {
        rng.log_uniform(2e3, 40e3)
    } else if class < 0.95 {
        rng.log_uniform(40e3, 400e3)
    } else {
        rng.log_uniform(400e3, 2e6)
    }
}

/// The tree of `count` files from `seed` under `cdn`: reused when its manifest says it was made
/// from the same parameters and every file has its size, made again otherwise.
fn cdn_tree(cdn: &Path, count: usize, seed: u64) -> anyhow::Result<Vec<CrateFile>> {
    let header = format!("# mirror-cli bench fetch: {count} files, seed {seed}, format 1");
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
    let mut sizes = Rng(seed);
    let mut files = Vec::with_capacity(count);
    let mut text = format!("{header}\n");
    let mut body = Vec::new();
    for i in 0..count {
        let size = size_of(i, &mut sizes);
        let (minor, patch) = (sizes.next_u64() % 40, sizes.next_u64() % 20);
        let name = CrateName::new(&format!("bench-fetch-{i:05}"))?;
        let vers = Version::new(&format!("0.{minor}.{patch}"))?;
        // Random bytes, like the gzip stream of a real .crate: nothing for a server to compress.
        let mut content = Rng(seed ^ (i as u64).wrapping_mul(0xa076_1d64_78bd_642f));
        body.clear();
        body.reserve(size as usize);
        while (body.len() as u64) < size {
            body.extend_from_slice(&content.next_u64().to_le_bytes());
        }
        body.truncate(size as usize);
        let cksum = Checksum::from_bytes(Sha256::digest(&body).into());
        let file = CrateFile {
            name,
            vers,
            size,
            cksum,
        };
        let path = cdn.join(file.cdn_path());
        std::fs::create_dir_all(path.parent().expect("a crate file has a directory"))?;
        std::fs::write(&path, &body).with_context(|| format!("writing {}", path.display()))?;
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            file.name, file.vers, file.size, file.cksum
        ));
        files.push(file);
    }
    std::fs::write(&manifest, text).with_context(|| format!("writing {}", manifest.display()))?;
    Ok(files)
}

fn parse_manifest(text: &str) -> anyhow::Result<Vec<CrateFile>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, vers, size, cksum] = fields[..] else {
                bail!("bad manifest line {line:?}");
            };
            Ok(CrateFile {
                name: name.parse()?,
                vers: vers.parse()?,
                size: size.parse()?,
                cksum: cksum.parse()?,
            })
        })
        .collect()
}

/// Checks that a client left every file in `out` whole (and, with `hash`, with its checksum).
fn check_outputs(files: &[CrateFile], out: &Path, hash: bool) -> anyhow::Result<()> {
    for file in files {
        let path = out.join(file.file_name());
        let bytes = if hash {
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
        } else {
            Vec::new()
        };
        let len = std::fs::metadata(&path)
            .with_context(|| format!("no {}", path.display()))?
            .len();
        if len != file.size {
            bail!("{} has {len} bytes, not {}", path.display(), file.size);
        }
        if hash && Checksum::from_bytes(Sha256::digest(&bytes).into()) != file.cksum {
            bail!("{} does not have its checksum", path.display());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The clients.

fn run_fetcher(
    runtime: &tokio::runtime::Runtime,
    base_url: &str,
    files: &Arc<Vec<CrateFile>>,
    out: &Path,
    jobs: usize,
    ticks: f64,
) -> anyhow::Result<Measure> {
    let dl = DlTemplate::new(&format!(
        "{base_url}/crates/{{crate}}/{{crate}}-{{version}}.crate"
    ))?;
    let mut options = FetchOptions::new(dl);
    options.contact = Some("bench@localhost".into());
    options.requests_per_second = 1e6;
    options.burst = 1000;
    options.max_in_flight = jobs;
    options.max_attempts = 1;

    let cpu = self_cpu(ticks);
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
    let expected: u64 = files.iter().map(|f| f.size).sum();
    if bytes != expected {
        bail!("the Fetcher verified {bytes} bytes, not {expected}");
    }
    Ok(Measure {
        wall,
        cpu: Duration::from_secs_f64(cpu.max(0.0)),
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

fn run_curl(conf: &Path, jobs: usize, ticks: f64) -> anyhow::Result<Measure> {
    let cpu = self_cpu(ticks).1;
    let started = Instant::now();
    let output = Command::new("curl")
        .args(["--parallel", "--parallel-max"])
        .arg(jobs.to_string())
        .args(["-s", "-S", "--fail", "-K"])
        .arg(conf)
        .stdin(Stdio::null())
        .output()
        .context("running curl")?;
    let wall = started.elapsed();
    let cpu = self_cpu(ticks).1 - cpu;
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
    })
}

/// CPU seconds (user + system) of this process, and of its waited-for children.
pub(crate) fn self_cpu(ticks: f64) -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), from the state (field 3) on.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0) / ticks;
    (field(14) + field(15), field(16) + field(17))
}

/// Clock ticks per second, for /proc times.
pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Writes dirty pages back, so that one run's writes do not slow the next.
pub(crate) fn sync() {
    let _ = Command::new("sync").status();
}

/// The first line of `tool args`, or `None` when it cannot run (after installing `package` with
/// apt-get, with `apt`).
pub(crate) fn tool_version(
    apt: bool,
    tool: &str,
    args: &[&str],
    package: &str,
) -> anyhow::Result<Option<String>> {
    let version = || {
        Command::new(tool)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                // nginx prints its version on stderr.
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
    };
    if let Some(v) = version() {
        return Ok(Some(v));
    }
    if apt {
        eprintln!("==> apt-get install -y {package}");
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let status = Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("apt-get install -y {package} failed ({status})");
        }
    }
    Ok(version())
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
