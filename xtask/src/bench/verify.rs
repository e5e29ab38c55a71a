//! `cargo xtask bench verify`: `mirror-cli verify` (its release build) over a mirror of synthetic
//! `.crate` files, against `sha256sum --check` hashing the same page-cached files serially in one
//! process, and against the SHA-256 limit of the cores as `openssl speed` measures it.
//!
//! The mirror lives in `target/bench/verify/mirror`: each file at `Store::crate_path`, with sizes
//! from a seeded generator (most a few KB to tens of KB, some hundreds of KB, a few of several
//! MB), and the state seeded with their real checksums and sizes through `mirror_state::Batch`
//! in this process, which lets go of it before the CLI runs (the CLI takes the state's lock). The
//! files are reused while `manifest.tsv` says they were made from the same parameters.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mirror_state::{Batch, Record, State, StateOptions, Status};
use mirror_store::Store;

use super::common::{
    self, CrateFile, clock_ticks, parse_manifest, plan, print_perf_report, release_cli, self_cpu,
    sync, tool_version, write_files,
};

/// Arguments of `cargo xtask bench verify`.
#[derive(clap::Args)]
pub(super) struct VerifyArgs {
    /// How many `.crate` files the mirror holds.
    #[arg(long, default_value_t = 20_000)]
    files: usize,
    /// How many of them are large (2–8 MB). Default: one in 200.
    #[arg(long)]
    large: Option<usize>,
    /// Measured runs of each command; the fastest is reported (after one unmeasured warm-up
    /// each, which also fills the page cache).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seed of the files' names, sizes and contents.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// `mirror-cli verify --threads`; 0 means its default, one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Seconds of each `openssl speed` measurement.
    #[arg(long, default_value_t = 3)]
    openssl_seconds: u32,
    /// Afterwards, record one more `mirror-cli verify` with `perf record` and print where its
    /// time went (not written to the docs).
    #[arg(long)]
    profile: bool,
    /// Install coreutils, openssl or linux-perf with apt-get when missing (needs root).
    #[arg(long)]
    apt: bool,
    /// Print the results without rewriting the verify section of docs/benchmarks.md.
    #[arg(long)]
    no_docs: bool,
}

/// File sizes: one in this many files is large by default.
const LARGE_EVERY: usize = 200;
/// Records per `State::apply` when seeding.
const SEED_CHUNK: usize = 4096;
/// The buffer size `openssl speed` hashes: large enough that per-call costs vanish.
const OPENSSL_BYTES: usize = 1 << 20;

/// What one run of a command measured.
#[derive(Clone, Copy, Debug)]
struct Measure {
    wall: Duration,
    /// User + system time of the child process.
    cpu: Duration,
    /// `duration_ms` of `mirror-cli verify --json`: its own time from opening the mirror on.
    inner: Option<Duration>,
}

/// What `openssl speed` measured.
struct Openssl {
    /// One core, bytes per second.
    single: f64,
    /// `-multi N` over `threads` processes, bytes per second.
    multi: f64,
    /// The buffer size measured (`-bytes`), or the largest block of the default table.
    block: String,
    version: String,
}

pub(super) fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let root = crate::common::workspace_root();
    let work = crate::common::target_dir(&root)
        .join("bench")
        .join("verify");
    let mirror = work.join("mirror");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = if args.threads == 0 {
        cores
    } else {
        args.threads
    };
    let large = args
        .large
        .unwrap_or(args.files / LARGE_EVERY)
        .min(args.files);
    let runs = args.runs.max(1);

    let sha256sum = tool_version(args.apt, "sha256sum", &["--version"], "coreutils")?
        .context("sha256sum is needed: `apt-get install -y coreutils`, or pass --apt")?;
    let openssl = tool_version(args.apt, "openssl", &["version"], "openssl")?
        .context("openssl is needed: `apt-get install -y openssl`, or pass --apt")?;
    let exe = release_cli(&root)?;

    let started = Instant::now();
    let files = mirror_files(&work, &mirror, args.files, large, args.seed)?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    let crates = files
        .iter()
        .map(|f| f.name.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    eprintln!(
        "==> {} files of {crates} crates, {:.1} MB in {} ({:.1?})",
        files.len(),
        total as f64 / 1e6,
        mirror.display(),
        started.elapsed()
    );
    seed_state(&mirror, &files)?;
    let sums = work.join("sums.txt");
    write_sums(&sums, &mirror, &files)?;
    // Dirty pages of the files just written would be written back during the timed runs.
    sync();

    let ticks = clock_ticks();
    let expect = Expect {
        files: files.len() as u64,
        bytes: total,
    };
    let mut verify_runs = Vec::new();
    let mut sha_runs = Vec::new();
    // Run 0 is the unmeasured warm-up (it also reads every file into the page cache). The order
    // alternates so that neither command always runs first.
    for run in 0..=runs {
        for verify_turn in [run % 2 == 0, run % 2 != 0] {
            let (label, m) = if verify_turn {
                let m = run_verify(&exe, &mirror, args.threads, ticks, &expect)?;
                ("verify", m)
            } else {
                let m = run_sha256sum(&sums, &mirror, ticks)?;
                ("sha256sum", m)
            };
            let secs = m.wall.as_secs_f64();
            eprintln!(
                "{label:<9} {}: {secs:>6.2} s, {:>6.0} MB/s, {:>6.0} files/s, {:.2} s CPU{}",
                if run == 0 {
                    "warm-up".to_owned()
                } else {
                    format!("run {run}  ")
                },
                total as f64 / 1e6 / secs,
                files.len() as f64 / secs,
                m.cpu.as_secs_f64(),
                m.inner
                    .map(|d| format!(", {} ms inside", d.as_millis()))
                    .unwrap_or_default(),
            );
            if run > 0 {
                if verify_turn {
                    verify_runs.push(m);
                } else {
                    sha_runs.push(m);
                }
            }
        }
    }
    eprintln!("==> openssl speed -evp sha256 (one core, then {threads} processes)");
    let speed = openssl_speed(&openssl, threads, args.openssl_seconds)?;

    let best = |runs: &[Measure]| -> Measure {
        *runs
            .iter()
            .min_by_key(|m| m.wall)
            .expect("at least one run")
    };
    let summary = Summary {
        files: &files,
        crates,
        large,
        seed: args.seed,
        threads,
        runs,
        verify: best(&verify_runs),
        sha: best(&sha_runs),
        speed: &speed,
    };
    let mut report = summary.report();
    let all = |runs: &[Measure]| {
        runs.iter()
            .map(|m| format!("{:.2}", m.wall.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let inner = verify_runs
        .iter()
        .filter_map(|m| m.inner)
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    report.push_str(&format!(
        "Every run, in seconds: verify {} (its own `duration_ms`: {inner}); sha256sum {}.\n",
        all(&verify_runs),
        all(&sha_runs)
    ));
    println!("{report}");
    if !args.no_docs {
        let sha_version = sha256sum
            .rsplit(' ')
            .next()
            .map_or(sha256sum.clone(), |v| format!("GNU coreutils {v}"));
        common::write_section(
            "verify",
            &section(&args, runs, &sha_version, &speed, &report),
        )?;
    }
    if args.profile {
        profile(&args, &exe, &mirror, &work)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The mirror.

/// The mirror's files: reused when `manifest.tsv` says they were made from the same parameters
/// and every file has its size, made again otherwise (on every core).
fn mirror_files(
    work: &Path,
    mirror: &Path,
    count: usize,
    large: usize,
    seed: u64,
) -> anyhow::Result<Vec<CrateFile>> {
    let header =
        format!("# mirror-cli bench verify: {count} files, {large} large, seed {seed}, format 1");
    let manifest = work.join("manifest.tsv");
    let store = Store::open(mirror)?;
    if let Ok(text) = std::fs::read_to_string(&manifest)
        && text.lines().next() == Some(header.as_str())
        && let Ok(files) = parse_manifest(&text)
        && files.len() == count
        && files.iter().all(|f| {
            std::fs::metadata(store.crate_path(&f.name, &f.vers))
                .is_ok_and(|m| m.is_file() && m.len() == f.size)
        })
    {
        return Ok(files);
    }
    eprintln!(
        "==> generating {count} synthetic .crate files in {}",
        mirror.display()
    );
    let _ = std::fs::remove_file(&manifest);
    std::fs::remove_dir_all(mirror).with_context(|| format!("removing {}", mirror.display()))?;
    let store = Store::open(mirror)?;
    let plan = plan(count, large, seed)?;
    let sums = write_files(&plan, seed, &|name, vers| store.crate_path(name, vers))?;
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

/// Records every file as verified, with its real checksum and size, in a fresh state (what a
/// sync that downloaded them would have left). The state is dropped, and its lock released,
/// before this returns.
fn seed_state(mirror: &Path, files: &[CrateFile]) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = Store::open(mirror)?;
    let dir = store.state_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let state = State::open(
        &dir,
        StateOptions {
            holder: "cargo xtask bench verify".into(),
            ..StateOptions::default()
        },
    )?;
    for chunk in files.chunks(SEED_CHUNK) {
        let mut batch = Batch::new();
        for f in chunk {
            // Seeded as it is: the bench measures verify, not how the records came.
            batch.put(
                &f.name,
                &f.vers,
                &Record {
                    cksum: f.cksum,
                    size: f.size,
                    status: Status::Verified { at: 1 },
                },
            );
        }
        state.apply(batch)?;
    }
    state.flush()?;
    let counts = state.counts()?;
    drop(state);
    if counts.verified != files.len() as u64 {
        bail!(
            "the seeded state records {} verified versions, not {}",
            counts.verified,
            files.len()
        );
    }
    eprintln!(
        "==> seeded {} with {} verified versions ({:.1?})",
        dir.display(),
        counts.verified,
        started.elapsed()
    );
    Ok(())
}

/// The `sha256sum --check` input: `{sha256}  {path}`, paths relative to the mirror root.
fn write_sums(sums: &Path, mirror: &Path, files: &[CrateFile]) -> anyhow::Result<()> {
    let store = Store::open(mirror)?;
    let mut text = String::new();
    for f in files {
        let rel = store.relative_crate_path(&f.name, &f.vers);
        text.push_str(&format!("{}  {}\n", f.cksum, rel.display()));
    }
    std::fs::write(sums, text).with_context(|| format!("writing {}", sums.display()))
}

// ---------------------------------------------------------------------------------------------
// The commands.

/// What `mirror-cli verify --json` must report.
struct Expect {
    files: u64,
    bytes: u64,
}

fn run_verify(
    exe: &Path,
    mirror: &Path,
    threads: usize,
    ticks: f64,
    expect: &Expect,
) -> anyhow::Result<Measure> {
    let mut command = Command::new(exe);
    command
        .arg("verify")
        .arg("--dest")
        .arg(mirror)
        .arg("--json")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if threads > 0 {
        command.arg("--threads").arg(threads.to_string());
    }
    let cpu = self_cpu(ticks).1;
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    let wall = started.elapsed();
    let cpu = self_cpu(ticks).1 - cpu;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "mirror-cli verify failed ({}): {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let last = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(last)
        .with_context(|| format!("parsing the JSON summary of mirror-cli verify: {last:?}"))?;
    let n = |k: &str| json[k].as_u64().unwrap_or(u64::MAX);
    let empty = |k: &str| json[k].as_array().is_some_and(Vec::is_empty);
    if n("checked") != expect.files
        || n("ok") != expect.files
        || n("bytes") != expect.bytes
        || !(empty("missing") && empty("corrupt") && empty("unexpected"))
    {
        bail!(
            "mirror-cli verify should have checked {} files and {} bytes, all ok, and found nothing else: {last}",
            expect.files,
            expect.bytes
        );
    }
    Ok(Measure {
        wall,
        cpu: Duration::from_secs_f64(cpu.max(0.0)),
        inner: json["duration_ms"].as_u64().map(Duration::from_millis),
    })
}

/// `sha256sum --check` over every file, in one process: the same job as `verify` (hash each
/// file, compare with the recorded checksum) on one core.
fn run_sha256sum(sums: &Path, mirror: &Path, ticks: f64) -> anyhow::Result<Measure> {
    let cpu = self_cpu(ticks).1;
    let started = Instant::now();
    let output = Command::new("sha256sum")
        .args(["--check", "--quiet", "--strict"])
        .arg(sums)
        .current_dir(mirror)
        .stdin(Stdio::null())
        .output()
        .context("running sha256sum")?;
    let wall = started.elapsed();
    let cpu = self_cpu(ticks).1 - cpu;
    if !output.status.success() {
        bail!(
            "sha256sum --check failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(Measure {
        wall,
        cpu: Duration::from_secs_f64(cpu.max(0.0)),
        inner: None,
    })
}

/// `openssl speed -evp sha256` on one core and on `threads` processes at once, over 1 MiB
/// buffers when `-bytes` is supported (else the largest block of the default table, 16 KiB).
fn openssl_speed(version: &str, threads: usize, seconds: u32) -> anyhow::Result<Openssl> {
    let speed = |extra: &[String]| -> Option<f64> {
        let output = Command::new("openssl")
            .args(["speed", "-evp", "sha256", "-seconds"])
            .arg(seconds.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        // The result line is `sha256  <k/s for each block size>`: the last column is the block
        // asked for with `-bytes`, or the largest of the default table.
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("sha256"))
            .filter_map(|l| l.split_whitespace().next_back())
            .filter_map(|v| v.strip_suffix('k')?.parse::<f64>().ok())
            .next_back()
            .map(|k| k * 1000.0)
    };
    let bytes = ["-bytes".to_owned(), OPENSSL_BYTES.to_string()];
    let multi = ["-multi".to_owned(), threads.to_string()];
    let (single, block) = match speed(&bytes) {
        Some(single) => (single, "1 MiB buffers (`-bytes 1048576`)".to_owned()),
        None => (
            speed(&[]).context("no result from `openssl speed -evp sha256`")?,
            "16 KiB buffers (its largest default block; `-bytes` is not supported)".to_owned(),
        ),
    };
    let multi = if block.starts_with("1 MiB") {
        speed(&[bytes, multi].concat())
    } else {
        speed(&multi)
    }
    .unwrap_or(f64::NAN);
    Ok(Openssl {
        single,
        multi,
        block,
        version: version
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
    })
}

// ---------------------------------------------------------------------------------------------
// The report.

/// Everything the report says.
struct Summary<'a> {
    files: &'a [CrateFile],
    crates: usize,
    large: usize,
    seed: u64,
    threads: usize,
    runs: usize,
    verify: Measure,
    sha: Measure,
    speed: &'a Openssl,
}

impl Summary<'_> {
    /// The results as a markdown table, with the goals checked.
    fn report(&self) -> String {
        let total: u64 = self.files.iter().map(|f| f.size).sum();
        let mut sizes: Vec<u64> = self.files.iter().map(|f| f.size).collect();
        sizes.sort_unstable();
        let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
        let max = sizes.last().copied().unwrap_or(0);
        let small = sizes.iter().filter(|&&s| s < 40_000).count();
        let big: u64 = sizes.iter().filter(|&&s| s >= 2_000_000).sum();
        let threads = self.threads;
        let count = self.files.len() as f64;
        let mbs = |m: &Measure| total as f64 / 1e6 / m.wall.as_secs_f64().max(1e-9);
        let (verify, sha) = (mbs(&self.verify), mbs(&self.sha));
        let single = self.speed.single / 1e6;
        let limit = single * threads as f64;
        let multi = self.speed.multi / 1e6;

        let mut out = format!(
            "{} files of {} crates, {:.2} GB (median {:.1} KB, {:.0}% under 40 KB, largest {:.1} MB; {} files of 2–8 MB hold {:.0}% of the bytes; seed {}); `mirror-cli verify` with {threads} threads; best of {} runs after one warm-up each.\n\n",
            self.files.len(),
            self.crates,
            total as f64 / 1e9,
            median as f64 / 1e3,
            small as f64 * 100.0 / count.max(1.0),
            max as f64 / 1e6,
            self.large,
            big as f64 * 100.0 / (total as f64).max(1.0),
            self.seed,
            self.runs,
        );
        out.push_str(
            "| what | wall | MB/s | files/s | CPU | vs. `sha256sum` | of the SHA-NI limit |\n|---|---:|---:|---:|---:|---:|---:|\n",
        );
        let row = |what: &str, m: &Measure, baseline: bool| {
            let rate = mbs(m);
            let ratio = if baseline {
                "1.00x (baseline)".to_owned()
            } else {
                format!("{:.2}x", rate / sha)
            };
            format!(
                "| {what} | {:.2} s | {rate:.0} | {:.0} | {:.2} s | {ratio} | {:.0}% |\n",
                m.wall.as_secs_f64(),
                count / m.wall.as_secs_f64().max(1e-9),
                m.cpu.as_secs_f64(),
                rate / limit * 100.0,
            )
        };
        out.push_str(&row(
            &format!("`mirror-cli verify --json`, {threads} threads"),
            &self.verify,
            false,
        ));
        out.push_str(&row("`sha256sum --check`, one process", &self.sha, true));
        let hash_row = |what: String, rate: f64| {
            format!(
                "| {what} | | {rate:.0} | | | {:.2}x | {:.0}% |\n",
                rate / sha,
                rate / limit * 100.0
            )
        };
        out.push_str(&hash_row(
            "`openssl speed -evp sha256`, one core".to_owned(),
            single,
        ));
        out.push_str(&hash_row(
            format!("SHA-NI limit: one core × {threads}"),
            limit,
        ));
        if multi.is_finite() {
            out.push_str(&hash_row(
                format!("`openssl speed -evp sha256 -multi {threads}` (measured, for reference)"),
                multi,
            ));
        }
        let mark = |ok: bool| if ok { "met" } else { "MISSED" };
        let ratio = verify / sha;
        let share = verify / limit;
        out.push_str(&format!(
            "\nGoals: `verify` at {verify:.0} MB/s is {ratio:.2}x `sha256sum` (≥ 10x: {}) and {:.0}% of the SHA-NI limit of {threads} cores, {limit:.0} MB/s (≥ 60%: {}).\n",
            mark(ratio >= 10.0),
            share * 100.0,
            mark(share >= 0.6),
        ));
        let needed = 10.0 * sha;
        out.push_str(&format!(
            "The 10x goal asks for {needed:.0} MB/s here, {:.0}% of the SHA-NI limit: {}.\n",
            needed / limit * 100.0,
            if needed > limit {
                "more than the cores can hash data already in their caches, so no verifier can meet it on this machine"
            } else {
                "a figure measured on data already in the CPU's caches, with no file to open, read and close"
            }
        ));
        if let Some(inner) = self.verify.inner {
            let rate = total as f64 / 1e6 / inner.as_secs_f64().max(1e-9);
            out.push_str(&format!(
                "Inside the process (its `duration_ms`, from opening the mirror to the summary: no process start or exit) the best run took {:.2} s, {rate:.0} MB/s.\n",
                inner.as_secs_f64()
            ));
        }
        out
    }
}

/// The verify section of docs/benchmarks.md, without its markers.
fn section(
    args: &VerifyArgs,
    runs: usize,
    sha256sum: &str,
    speed: &Openssl,
    report: &str,
) -> String {
    let date = common::today();
    let machine = common::machine();
    let mut command = format!(
        "cargo xtask bench verify --files {} --runs {runs}",
        args.files
    );
    if let Some(large) = args.large {
        command.push_str(&format!(" --large {large}"));
    }
    if args.seed != 2026 {
        command.push_str(&format!(" --seed {}", args.seed));
    }
    if args.threads != 0 {
        command.push_str(&format!(" --threads {}", args.threads));
    }
    format!(
        "## Verifying the mirror: `mirror-cli verify` against `sha256sum`

- Command: `{command}`
- Date: {date}
- Machine: {machine} when the report was
  written (other work on the machine slows the commands unevenly)
- Baselines: {sha256sum} (`sha256sum`, which does not use SHA-NI), {openssl} (which does)

{report}
How it is measured:

- The mirror is made in `target/bench/verify/mirror`: synthetic `.crate` files (random,
  incompressible bytes) of crates with random lowercase names and 1–29 versions each, every file
  at `Store::crate_path`. Sizes come from a seeded generator: 75% of 2–40 KB, 22% of 40–400 KB,
  3% of 0.4–2 MB, and one file in {large_every} of 2–8 MB (`--large`). The state is seeded with
  every file's real SHA-256 and size through `mirror_state::Batch` and `State::apply`, as a sync
  would have left it; the seeding process lets go of it before `mirror-cli` runs.
- Every file is in the page cache: the first run of each command is an unmeasured warm-up, and
  dirty pages are written back before it. These are CPU numbers, not disk numbers.
- `mirror-cli verify --dest DIR --json` is the release build, timed from spawn to exit: process
  start, opening the state, hashing every recorded file, the walk of `crates/` for files no
  record accounts for, and the summary. Its JSON must say every file was checked and ok, with the
  expected number of bytes, and nothing missing, corrupt or unexpected.
- `sha256sum --check --quiet --strict SUMS` is the baseline: one process that hashes the same
  files one after the other (paths relative to the mirror root, from a list in the same order)
  and compares each with the same checksums, which is the job of `verify` on one core.
- The SHA-NI limit is `openssl speed -evp sha256 -seconds {seconds}` over {block} on one core,
  times the threads of `verify`: hashing data already in the CPU's cache, with no file system in
  the way. `-multi` runs that many processes at once to show that the cores do add up.
- The two commands alternate between runs; *CPU* is user + system time of the child process.
",
        openssl = speed.version,
        block = speed.block,
        seconds = args.openssl_seconds,
        large_every = LARGE_EVERY,
    )
}

// ---------------------------------------------------------------------------------------------
// The profile.

/// `perf record` of one more verify run, and the functions it spent its time in.
fn profile(args: &VerifyArgs, exe: &Path, mirror: &Path, work: &Path) -> anyhow::Result<()> {
    tool_version(args.apt, "perf", &["--version"], "linux-perf")?
        .context("perf is needed for --profile: `apt-get install -y linux-perf`, or pass --apt")?;
    let data = work.join("perf.data");
    eprintln!(
        "==> perf record (cpu-clock) of one verify run into {}",
        data.display()
    );
    let mut command = Command::new("perf");
    command
        .args(["record", "-e", "cpu-clock", "-F", "2000", "-g", "-o"])
        .arg(&data)
        .arg("--")
        .arg(exe)
        .args(["verify", "--json", "--dest"])
        .arg(mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if args.threads > 0 {
        command.arg("--threads").arg(args.threads.to_string());
    }
    let status = command.status().context("running perf record")?;
    if !status.success() {
        bail!("perf record failed ({status})");
    }
    print_perf_report(&data)
}
