//! `cargo xtask bench sync`: `mirror_sync::sync` at crates.io scale, against the synthetic git
//! index of `cargo xtask fixtures --synthetic`: a no-op full compare (`--full`) over every version
//! of the index, all already verified, and an incremental sync of a commit that changes 1,000
//! crates (new versions downloaded over loopback, and yank flips).
//!
//! Everything lives in `target/bench/sync/`: `upstream.git` (a bare clone of the fixture, plus one
//! commit per incremental run on `refs/heads/bench-{run}`), `cdn/` (the `.crate` files of the new
//! versions), and `mirror/`, whose state is seeded with every version of the base index as
//! verified, through `mirror_state::Batch`, in a process of its own, with an empty file in
//! `crates/` for each (a full compare `stat`s them). The seeded mirror is reused
//! while `seeded.txt` says it was made from the same fixture.
//!
//! Each measured sync runs in its own process (the release build of this binary, with the hidden
//! `--in-release`), so its peak RSS (`VmHWM`) is the sync's alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mirror_index::{CrateName, DirIndex, GitIndex, IndexFile, ReadOptions, Version};
use mirror_state::{Batch, Record, State, StateOptions, Status};
use mirror_store::Store;
use mirror_sync::{FetchSettings, Interrupt, Progress, Stage, SyncOptions};
use mirror_testkit::git;
use mirror_testkit::server::{RegistryOptions, TestServer};
use sha2::{Digest as _, Sha256};

use super::common;
use crate::common::Rng;

/// Arguments of `cargo xtask bench sync`.
#[derive(clap::Args)]
pub(super) struct SyncArgs {
    /// The fixtures directory (`cargo xtask fixtures --out`), relative to the workspace root.
    #[arg(long, default_value = "target/fixtures")]
    fixtures: PathBuf,
    /// Crates the incremental commit changes: nine in ten get a new version (downloaded), one
    /// in ten has its newest version's yank flag flipped.
    #[arg(long, default_value_t = 1000)]
    changed: usize,
    /// Measured runs of each sync; the fastest is reported, memory the worst (after one
    /// unmeasured warm-up each).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// `SyncOptions::threads` (parsing, hashing, publishing); 0 means one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Downloads in flight (`--jobs`) for the incremental sync's new versions.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Seed the mirror's state again even when the one on disk is current.
    #[arg(long)]
    reseed: bool,
    /// Print the results without rewriting the sync section of docs/benchmarks.md.
    #[arg(long)]
    no_docs: bool,
    /// Internal: run one step in this (release) process and print its result as JSON.
    #[arg(long, hide = true)]
    in_release: Option<Step>,
    /// Internal: the bench's work directory.
    #[arg(long, hide = true)]
    work: Option<PathBuf>,
    /// Internal: which incremental run (its commit and new versions).
    #[arg(long, hide = true, default_value_t = 0)]
    run: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Seed the mirror's state with every version of the base index, verified.
    Seed,
    /// `sync` with `full`: compare every index entry with the state.
    Full,
    /// `sync` from the base commit to the run's commit.
    Incremental,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Seed => "seed",
            Step::Full => "full",
            Step::Incremental => "incremental",
        }
    }
}

/// Records per `State::apply` when seeding, and records between two flushes: sled holds
/// unflushed writes in memory (seeding 2.5M records without flushing peaked at 6.4 GB).
const SEED_CHUNK: usize = 16 * 1024;
const SEED_FLUSH: usize = 256 * 1024;
/// The version the crates changed in incremental run `run` of the bench started at `nonce`
/// get: new in every run of every bench, so that each sync fetches objects its clone of the
/// index has never seen (as a real incremental sync does).
fn new_version(run: usize, nonce: u64) -> String {
    format!("9999.{run}.{nonce}")
}

/// What the parent knows about the fixture and the work directory.
struct Setup {
    work: PathBuf,
    fixture: PathBuf,
    base: String,
    summary: serde_json::Value,
    exe: PathBuf,
    /// `--threads` as given (0: the engine's defaults), and what it comes to on this machine.
    requested_threads: usize,
    threads: usize,
}

pub(super) fn run(args: SyncArgs) -> anyhow::Result<()> {
    match args.in_release {
        Some(step) => child(step, &args),
        None => parent(&args),
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: set up, run every step in a child, report.

fn parent(args: &SyncArgs) -> anyhow::Result<()> {
    let root = crate::common::workspace_root();
    let fixture = root.join(&args.fixtures).join("synthetic");
    let summary_path = fixture.join("summary.json");
    let summary: serde_json::Value = match std::fs::read(&summary_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", summary_path.display()))?,
        Err(_) => bail!(
            "no synthetic index in {}: run `cargo xtask fixtures --synthetic` first",
            fixture.display()
        ),
    };
    let Some(base) = summary["commit"].as_str().map(str::to_owned) else {
        bail!(
            "{} has no git commit: regenerate it with git",
            summary_path.display()
        );
    };
    let work = crate::common::target_dir(&root).join("bench").join("sync");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    // Measurements of a debug build would say nothing. The release binary is copied at once:
    // other checkouts sharing the target directory may build theirs over it meanwhile.
    let built = crate::fixtures::release_binary()?;
    let exe = work.join("xtask");
    std::fs::copy(&built, &exe).with_context(|| format!("copying {}", built.display()))?;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let setup = Setup {
        work,
        fixture,
        base,
        summary,
        exe,
        requested_threads: args.threads,
        threads: if args.threads == 0 {
            cores
        } else {
            args.threads
        },
    };

    let upstream = prepare_upstream(&setup)?;
    let commits = make_commits(&setup, &upstream, args)?;
    set_upstream(&upstream, &setup.base)?;

    let mirror = setup.work.join("mirror");
    let stamp = setup.work.join("seeded.txt");
    let want_stamp = format!(
        "fixture commit {}, {} lines, state schema {}, an empty file per version\n",
        setup.base,
        setup.summary["lines"],
        mirror_state::SCHEMA_VERSION
    );
    let mut seeded = None;
    if args.reseed || std::fs::read_to_string(&stamp).ok().as_deref() != Some(&want_stamp) {
        let _ = std::fs::remove_file(&stamp);
        if mirror.exists() {
            std::fs::remove_dir_all(&mirror)
                .with_context(|| format!("removing {}", mirror.display()))?;
        }
        eprintln!(
            "==> seeding {} with every version of the base index",
            mirror.display()
        );
        let m = run_step(&setup, Step::Seed, 0)?;
        eprintln!(
            "seed: {:.1} s, {} MB peak RSS",
            m.wall.as_secs_f64(),
            m.peak_rss_kb / 1024
        );
        std::fs::write(&stamp, &want_stamp)?;
        seeded = Some(m);
    }

    // The first full sync after seeding publishes every index file (a first publish); later
    // ones find the published index current. Both are shown; the first is not a no-op run.
    let mut full_runs = Vec::new();
    for run in 0..=args.runs.max(1) {
        let m = run_step(&setup, Step::Full, 0)?;
        check_full(&m, &setup.summary)?;
        eprintln!(
            "full {}: {:>6.2} s, {:>4} MB peak RSS, {} published files written; {}",
            if run == 0 {
                "warm-up".to_owned()
            } else {
                format!("run {run}")
            },
            m.wall.as_secs_f64(),
            m.peak_rss_kb / 1024,
            m.report["published_written"],
            m.stages_text()
        );
        full_runs.push(m);
    }
    let full_first = full_runs.remove(0);

    backup_published(&setup, &commits)?;
    let mut inc_runs = Vec::new();
    for (run, commit) in commits.commits.iter().enumerate() {
        set_upstream(&upstream, commit)?;
        let result = run_step(&setup, Step::Incremental, run);
        set_upstream(&upstream, &setup.base)?;
        let m = result?;
        check_incremental(&m, &commits, run)?;
        eprintln!(
            "incremental {}: {:>6.2} s, {:>4} MB peak RSS; {}",
            if run == 0 {
                "warm-up".to_owned()
            } else {
                format!("run {run}")
            },
            m.wall.as_secs_f64(),
            m.peak_rss_kb / 1024,
            m.stages_text()
        );
        if run > 0 {
            inc_runs.push(m);
        }
    }

    let report = report(
        &setup,
        args,
        &commits,
        seeded.as_ref(),
        &full_first,
        &full_runs,
        &inc_runs,
    );
    println!("{report}");
    if !args.no_docs {
        common::write_section("sync", &section(args, &report))?;
    }
    Ok(())
}

/// A bare clone of the fixture's repository, the bench's upstream: the mirror clones and fetches
/// it over `file://`. Made again when it does not hold the fixture's commit.
fn prepare_upstream(setup: &Setup) -> anyhow::Result<PathBuf> {
    let upstream = setup.work.join("upstream.git");
    let has_base = upstream.join("HEAD").exists()
        && git::rev_parse(&upstream, &format!("{}^{{commit}}", setup.base))
            .ok()
            .flatten()
            .is_some();
    if !has_base {
        if upstream.exists() {
            std::fs::remove_dir_all(&upstream)
                .with_context(|| format!("removing {}", upstream.display()))?;
        }
        eprintln!("==> cloning the fixture into {}", upstream.display());
        let status = Command::new("git")
            .args(["clone", "--bare", "--quiet"])
            .arg(setup.fixture.join("index.git"))
            .arg(&upstream)
            .status()
            .context("running git clone")?;
        if !status.success() {
            bail!("git clone --bare of the fixture failed ({status})");
        }
    }
    Ok(upstream)
}

/// Points the upstream's `HEAD` (its branch) at `commit`.
fn set_upstream(upstream: &Path, commit: &str) -> anyhow::Result<()> {
    git::git(
        upstream,
        &["update-ref", &format!("refs/heads/{}", git::BRANCH), commit],
    )?;
    Ok(())
}

/// The incremental runs' commits and what they change.
struct Commits {
    /// One per run, warm-up first.
    commits: Vec<String>,
    /// The index paths every run changes.
    paths: Vec<String>,
    /// Per run, the new versions (name, version).
    added: Vec<Vec<(String, String)>>,
    /// Yank flips per run.
    flips: usize,
    /// Per run, the total size of the new `.crate` files, and the largest.
    bytes: Vec<u64>,
    largest: Vec<u64>,
}

/// Makes one commit per incremental run (warm-up included) on top of the base, each changing the
/// same `changed` crates, spread evenly over the index: nine in ten get a new version, whose
/// `.crate` file goes into `cdn/`; one in ten has the yank flag of its newest line flipped.
/// The same fixture gives the same changes, but for the new versions' patch number (the bench's
/// start time), and the same file sizes.
fn make_commits(setup: &Setup, upstream: &Path, args: &SyncArgs) -> anyhow::Result<Commits> {
    let started = Instant::now();
    let manifest_path = setup.fixture.join("manifest.tsv");
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let all: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.splitn(3, '\t').nth(2))
        .filter(|p| *p != "config.json")
        .collect();
    if args.changed == 0 || args.changed > all.len() {
        bail!(
            "--changed must be between 1 and the {} crates of the index",
            all.len()
        );
    }
    let step = all.len() / args.changed;
    let paths: Vec<String> = (0..args.changed)
        .map(|i| all[i * step + step / 2].to_owned())
        .collect();
    let originals: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| {
            let path = setup.fixture.join("dir").join(p);
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
        })
        .collect::<anyhow::Result<_>>()?;

    let cdn = setup.work.join("cdn");
    if cdn.exists() {
        std::fs::remove_dir_all(&cdn).with_context(|| format!("removing {}", cdn.display()))?;
    }
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let runs = args.runs.max(1) + 1;
    let mut commits = Commits {
        commits: Vec::new(),
        paths: paths.clone(),
        added: Vec::new(),
        flips: 0,
        bytes: Vec::new(),
        largest: Vec::new(),
    };
    for run in 0..runs {
        let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(paths.len());
        let mut added = Vec::new();
        let (mut flips, mut bytes, mut largest) = (0, 0, 0);
        for (i, (path, original)) in paths.iter().zip(&originals).enumerate() {
            let text = std::str::from_utf8(original)
                .with_context(|| format!("{path} is not UTF-8"))?
                .trim_end_matches('\n');
            let (head, last) = text.rsplit_once('\n').unwrap_or(("", text));
            let mut content = String::with_capacity(original.len() + 1024);
            if !head.is_empty() {
                content.push_str(head);
                content.push('\n');
            }
            if i % 10 == 0 {
                let flipped = if last.contains("\"yanked\":false") {
                    last.replacen("\"yanked\":false", "\"yanked\":true", 1)
                } else if last.contains("\"yanked\":true") {
                    last.replacen("\"yanked\":true", "\"yanked\":false", 1)
                } else {
                    bail!("the last line of {path} has no yanked field: {last}");
                };
                content.push_str(&flipped);
                content.push('\n');
                flips += 1;
            } else {
                let mut line: serde_json::Value = serde_json::from_str(last)
                    .with_context(|| format!("parsing the last line of {path}"))?;
                let name = line["name"]
                    .as_str()
                    .with_context(|| format!("the last line of {path} has no name"))?
                    .to_owned();
                let vers = new_version(run, nonce);
                let mut rng = Rng(0x5eed_0000 ^ ((run as u64) << 32) ^ i as u64);
                let size = crate_size(&mut rng);
                let mut body = Vec::with_capacity(size as usize + 8);
                while (body.len() as u64) < size {
                    body.extend_from_slice(&rng.next_u64().to_le_bytes());
                }
                body.truncate(size as usize);
                let cksum = format!("{:x}", Sha256::digest(&body));
                let file = cdn
                    .join("crates")
                    .join(&name)
                    .join(format!("{name}-{vers}.crate"));
                std::fs::create_dir_all(file.parent().expect("a file has a directory"))?;
                std::fs::write(&file, &body)
                    .with_context(|| format!("writing {}", file.display()))?;
                line["vers"] = vers.clone().into();
                line["cksum"] = cksum.into();
                line["yanked"] = false.into();
                content.push_str(last);
                content.push('\n');
                content.push_str(&serde_json::to_string(&line)?);
                content.push('\n');
                added.push((name, vers));
                bytes += size;
                largest = largest.max(size);
            }
            files.push((path.clone(), content.into_bytes()));
        }
        let branch = format!("refs/heads/bench-{run}");
        // An earlier bench's commit is not an ancestor of this one: fast-import would refuse.
        let _ = git::git(upstream, &["update-ref", "-d", &branch]);
        let base = &setup.base;
        git::fast_import(upstream, |out| {
            let message = format!("bench sync: run {run} changes {} crates\n", files.len());
            write!(
                out,
                "commit {branch}\ncommitter mirror-cli bench <bench@example.invalid> {} +0000\ndata {}\n{message}from {base}\n",
                git::COMMIT_TIME + 1 + run as i64,
                message.len()
            )?;
            for (path, content) in &files {
                write!(out, "M 100644 inline {path}\ndata {}\n", content.len())?;
                out.write_all(content)?;
                out.write_all(b"\n")?;
            }
            out.write_all(b"done\n")
        })?;
        let commit = git::rev_parse(upstream, &branch)?
            .with_context(|| format!("{branch} was not created"))?;
        commits.commits.push(commit);
        commits.added.push(added);
        commits.flips = flips;
        commits.bytes.push(bytes);
        commits.largest.push(largest);
    }
    // The new files' pages would be written back during the timed runs.
    common::sync();
    std::fs::write(
        setup.work.join("changes.json"),
        serde_json::to_vec(&serde_json::json!({
            "paths": commits.paths,
            "added": commits.added,
        }))?,
    )?;
    eprintln!(
        "==> {runs} commits changing {} crates each ({} new versions, {} yank flips) in {:.1?}",
        paths.len(),
        commits.added[0].len(),
        commits.flips,
        started.elapsed()
    );
    Ok(commits)
}

/// The size of a new `.crate` file: mostly a few KB to tens of KB, some hundreds of KB, a few
/// of a MB or two (the mix of `bench verify` without its rare multi-MB files).
fn crate_size(rng: &mut Rng) -> u64 {
    let class = rng.unit();
    if class < 0.75 {
        rng.log_uniform(2e3, 40e3)
    } else if class < 0.97 {
        rng.log_uniform(40e3, 400e3)
    } else {
        rng.log_uniform(400e3, 2e6)
    }
}

/// Copies the published index files the incremental runs change (as the full syncs left them,
/// matching the base), so each run can put them back afterwards.
fn backup_published(setup: &Setup, commits: &Commits) -> anyhow::Result<()> {
    let from = setup.work.join("mirror").join("index");
    let to = setup.work.join("published-base");
    if to.exists() {
        std::fs::remove_dir_all(&to)?;
    }
    for path in &commits.paths {
        let (src, dst) = (from.join(path), to.join(path));
        std::fs::create_dir_all(dst.parent().expect("a file has a directory"))?;
        std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
    }
    Ok(())
}

/// What one child measured.
struct Measure {
    wall: Duration,
    peak_rss_kb: u64,
    peak_anon_kb: u64,
    /// (stage, its duration), in order.
    stages: Vec<(String, Duration)>,
    report: serde_json::Value,
}

impl Measure {
    fn stage(&self, name: &str) -> Duration {
        self.stages
            .iter()
            .filter(|(s, _)| s == name)
            .map(|(_, d)| *d)
            .sum()
    }

    fn stages_text(&self) -> String {
        self.stages
            .iter()
            .map(|(s, d)| format!("{s} {:.2} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn run_step(setup: &Setup, step: Step, run: usize) -> anyhow::Result<Measure> {
    let output = Command::new(&setup.exe)
        .args(["bench", "sync", "--in-release", step.name(), "--threads"])
        .arg(setup.requested_threads.to_string())
        .arg("--work")
        .arg(&setup.work)
        .arg("--fixtures")
        .arg(setup.fixture.parent().expect("synthetic/ has a parent"))
        .arg("--run")
        .arg(run.to_string())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", setup.exe.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "step {} failed ({}): {}{}",
            step.name(),
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(last).with_context(|| format!("parsing a step result: {last:?}"))?;
    let n = |k: &str| {
        v[k].as_u64()
            .with_context(|| format!("{k} missing in {last}"))
    };
    let stages = v["stages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    Some((
                        s[0].as_str()?.to_owned(),
                        Duration::from_micros(s[1].as_u64()?),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Measure {
        wall: Duration::from_micros(n("wall_us")?),
        peak_rss_kb: n("peak_rss_kb")?,
        peak_anon_kb: n("peak_anon_kb")?,
        stages,
        report: v["report"].clone(),
    })
}

/// A full no-op compare must find every version of the index verified and do nothing else.
fn check_full(m: &Measure, summary: &serde_json::Value) -> anyhow::Result<()> {
    let r = &m.report;
    let lines = summary["lines"].as_u64().unwrap_or(0);
    let n = |k: &str| r[k].as_u64().unwrap_or(u64::MAX);
    if r["mode"] != "full"
        || n("index_versions") != lines
        || n("already_present") != lines
        || n("recorded_missing") != 0
        || n("recorded_wrong_size") != 0
        || n("downloaded") != 0
        || n("failed") != 0
        || n("removed_upstream") != 0
        || n("adopted") != 0
        || n("index_errors") != 0
    {
        bail!(
            "the full sync should have found all {lines} versions verified and done nothing: {r}"
        );
    }
    Ok(())
}

/// An incremental run must read exactly the changed files, download the new versions and see
/// the yank flips.
fn check_incremental(m: &Measure, commits: &Commits, run: usize) -> anyhow::Result<()> {
    let r = &m.report;
    let n = |k: &str| r[k].as_u64().unwrap_or(u64::MAX);
    let added = commits.added[run].len() as u64;
    if r["mode"] != "incremental"
        || n("index_files_read") != commits.paths.len() as u64
        || n("added") != added
        || n("downloaded") != added
        || n("downloaded_bytes") != commits.bytes[run]
        || n("yanked") + n("unyanked") != commits.flips as u64
        || n("failed") != 0
        || n("removed_upstream") != 0
        || n("adopted") != 0
    {
        bail!(
            "the incremental sync should have read {} files, downloaded {added} new versions ({} bytes) and seen {} yank flips: {r}",
            commits.paths.len(),
            commits.bytes[run],
            commits.flips
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The child: one step, in release.

/// Records when each stage of a sync starts.
struct StageClock {
    started: Instant,
    marks: Mutex<Vec<(&'static str, Instant)>>,
}

impl Progress for StageClock {
    fn stage(&self, stage: &Stage) {
        let name = match stage {
            Stage::UpdatingIndex { .. } => "fetch",
            Stage::Planning => "plan",
            Stage::Adopting { .. } => "adopt",
            Stage::Downloading { .. } => "download",
            Stage::Verifying { .. } => "verify",
            Stage::Walking => "walk",
            Stage::Publishing => "publish",
            Stage::Finishing => "finish",
            _ => "other",
        };
        self.marks
            .lock()
            .expect("no panics while holding it")
            .push((name, Instant::now()));
    }
}

impl StageClock {
    /// Each stage with its duration, the last one until `end`; "open" before the first stage.
    fn stages(&self, end: Instant) -> Vec<(String, Duration)> {
        let marks = self.marks.lock().expect("no panics while holding it");
        let mut out = Vec::new();
        let mut previous = ("open", self.started);
        for &(name, at) in marks.iter().chain(std::iter::once(&("end", end))) {
            out.push((previous.0.to_owned(), at - previous.1));
            previous = (name, at);
        }
        out
    }
}

fn child(step: Step, args: &SyncArgs) -> anyhow::Result<()> {
    let work = args.work.clone().context("--work is required")?;
    let mirror = work.join("mirror");
    let upstream = format!(
        "file://{}",
        std::fs::canonicalize(work.join("upstream.git"))?.display()
    );
    let sampler = common::AnonSampler::start();
    let started = Instant::now();
    let (report, stages, wall) = match step {
        Step::Seed => {
            let fixture = args.fixtures.join("synthetic");
            let report = seed(&mirror, &fixture, &upstream, args.threads)?;
            (report, Vec::new(), started.elapsed())
        }
        Step::Full | Step::Incremental => {
            let mut options = SyncOptions::default();
            options.index = Some(upstream);
            options.threads = args.threads;
            options.holder = Some("cargo xtask bench sync".into());
            let mut server = None;
            if step == Step::Full {
                options.full = true;
            } else {
                options.full_every_syncs = Some(u64::MAX);
                options.full_every_days = Some(u64::MAX / 86_400);
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()?;
                let s = runtime.block_on(TestServer::start_registry(RegistryOptions::new(
                    work.join("cdn"),
                    Some(work.join("cdn")),
                )));
                options.dl = Some(s.dl_cdn_template());
                let mut fetch = FetchSettings::default();
                // The politeness limits are for a real registry; this measures the engine.
                fetch.rate = Some(1e6);
                fetch.jobs = Some(args.jobs);
                fetch.attempts = Some(1);
                options.fetch = fetch;
                server = Some((s, runtime));
            }
            if step == Step::Incremental {
                // Whatever an earlier, interrupted bench left: the run starts from the base.
                let store = Store::open(&mirror)?;
                let state = State::open(
                    &store.state_dir(),
                    StateOptions {
                        holder: "cargo xtask bench sync (reset)".into(),
                        ..StateOptions::default()
                    },
                )?;
                reset_marker(&state, &work, &args.fixtures)?;
            }
            let clock = StageClock {
                started: Instant::now(),
                marks: Mutex::new(Vec::new()),
            };
            // Only the sync is timed, not the server's start or the reset.
            let report = mirror_sync::sync(&mirror, &options, &clock, &Interrupt::new())?;
            let end = Instant::now();
            let stages = clock.stages(end);
            drop(server);
            (serde_json::to_value(&report)?, stages, end - clock.started)
        }
    };
    let peak_anon_kb = sampler.stop();
    let peak_rss_kb = common::vm_hwm_kb();
    if step == Step::Incremental {
        undo_incremental(&work, &args.fixtures, args.run)?;
    }
    let stages: Vec<serde_json::Value> = stages
        .into_iter()
        .map(|(s, d)| serde_json::json!([s, d.as_micros() as u64]))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "step": step.name(),
            "wall_us": wall.as_micros() as u64,
            "peak_rss_kb": peak_rss_kb,
            "peak_anon_kb": peak_anon_kb,
            "stages": stages,
            "report": report,
        })
    );
    Ok(())
}

/// Seeds a fresh state in `mirror` with every version of the fixture's index as verified, in
/// chunks with a flush every so often, sets the sync marker at the fixture's commit and tree,
/// and clones the upstream into the mirror's index directory (what a first sync would have
/// done). Each base version gets an empty file in `crates/`, recorded with size 0: a full
/// compare `stat`s the file of every version recorded verified (it reads none: `verify`
/// hashes), so the files must be there, and empty ones cost an inode each, no data.
fn seed(
    mirror: &Path,
    fixture: &Path,
    upstream: &str,
    threads: usize,
) -> anyhow::Result<serde_json::Value> {
    let store = Store::open(mirror)?;
    let state = State::open(
        &store.state_dir(),
        StateOptions {
            holder: "cargo xtask bench sync (seeding)".into(),
            ..StateOptions::default()
        },
    )?;
    let index = DirIndex::open(fixture.join("dir"))?;
    let mut batch = Batch::new();
    let mut total = 0usize;
    let mut failure: Option<anyhow::Error> = None;
    let mut since_flush = 0usize;
    index.read_all(
        &ReadOptions::with_threads(threads),
        &mut |file: IndexFile| {
            if failure.is_some() {
                return;
            }
            // One crate per index file, so one directory per file.
            if let Some(first) = file.entries.first() {
                let dir = store.crate_path(first.name(), first.vers());
                let dir = dir.parent().expect("a crate path has a directory");
                if let Err(e) = std::fs::create_dir_all(dir) {
                    failure = Some(anyhow::anyhow!("creating {}: {e}", dir.display()));
                    return;
                }
            }
            for entry in &file.entries {
                let path = store.crate_path(entry.name(), entry.vers());
                if let Err(e) = std::fs::File::create(&path) {
                    failure = Some(anyhow::anyhow!("creating {}: {e}", path.display()));
                    return;
                }
                batch.put(
                    entry.name(),
                    entry.vers(),
                    &Record {
                        cksum: *entry.cksum(),
                        size: 0,
                        status: Status::Verified { at: 1 },
                    },
                );
            }
            if batch.len() >= SEED_CHUNK {
                total += batch.len();
                since_flush += batch.len();
                let result = state.apply(std::mem::take(&mut batch)).and_then(|()| {
                    if since_flush >= SEED_FLUSH {
                        since_flush = 0;
                        state.flush()
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = result {
                    failure = Some(e.into());
                }
            }
        },
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    total += batch.len();
    state.apply(batch)?;
    let git = GitIndex::open_or_clone(upstream, &store.index_dir())?;
    let tip = git.head()?.context("the upstream has no commit")?;
    state.set_index_commit(&tip.commit.to_string())?;
    state.set_index_tree(&tip.tree.to_string())?;
    state.set_last_full_compare_unix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )?;
    state.flush()?;
    let counts = state.counts()?;
    if counts.verified != total as u64 {
        bail!(
            "the seeded state records {} verified versions, not {total}",
            counts.verified
        );
    }
    Ok(serde_json::json!({ "verified": counts.verified }))
}

/// Puts the mirror back at the base after incremental run `run`: the new versions' records and
/// files go, the published files the run rewrote get their base content back, and the sync
/// marker returns to the base commit (the local clone keeps the run's objects; the next run's
/// commit is a different one, so it is fetched anew).
fn undo_incremental(work: &Path, fixtures: &Path, run: usize) -> anyhow::Result<()> {
    let changes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("changes.json"))?)?;
    let mirror = work.join("mirror");
    let store = Store::open(&mirror)?;
    let state = State::open(
        &store.state_dir(),
        StateOptions {
            holder: "cargo xtask bench sync (undo)".into(),
            ..StateOptions::default()
        },
    )?;
    let mut batch = Batch::new();
    for pair in changes["added"][run].as_array().into_iter().flatten() {
        let (Some(name), Some(vers)) = (pair[0].as_str(), pair[1].as_str()) else {
            bail!("bad changes.json entry {pair}");
        };
        let (name, vers) = (CrateName::new(name)?, Version::new(vers)?);
        let path = store.crate_path(&name, &vers);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        batch.remove(&name, &vers);
    }
    state.apply(batch)?;
    for path in changes["paths"].as_array().into_iter().flatten() {
        let path = path.as_str().context("bad changes.json path")?;
        let (src, dst) = (
            work.join("published-base").join(path),
            store.index_root().join(path),
        );
        std::fs::copy(&src, &dst).with_context(|| format!("restoring {}", dst.display()))?;
    }
    reset_marker(&state, work, fixtures)?;
    state.flush()?;
    Ok(())
}

/// Sets the sync marker at the fixture's commit and its tree, the base of every run.
fn reset_marker(state: &State, work: &Path, fixtures: &Path) -> anyhow::Result<()> {
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(
        fixtures.join("synthetic").join("summary.json"),
    )?)?;
    let commit = summary["commit"]
        .as_str()
        .context("the fixture's summary has no commit")?;
    let tree = git::rev_parse(&work.join("upstream.git"), &format!("{commit}^{{tree}}"))?
        .context("the base commit has no tree")?;
    state.set_index_commit(commit)?;
    state.set_index_tree(&tree)?;
    state.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The report.

fn report(
    setup: &Setup,
    args: &SyncArgs,
    commits: &Commits,
    seeded: Option<&Measure>,
    full_first: &Measure,
    full: &[Measure],
    inc: &[Measure],
) -> String {
    let best = |runs: &[Measure]| -> usize {
        (0..runs.len())
            .min_by_key(|&i| runs[i].wall)
            .expect("at least one run")
    };
    let worst_rss = |runs: &[Measure]| runs.iter().map(|m| m.peak_rss_kb).max().unwrap_or(0);
    let worst_anon = |runs: &[Measure]| runs.iter().map(|m| m.peak_anon_kb).max().unwrap_or(0);
    let (bf, bi) = (&full[best(full)], &inc[best(inc)]);
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let mut out = format!(
        "Synthetic index: {} crates, {} versions, {:.2} GB (seed {}, commit {}); every version recorded verified in the mirror's state; {}; best of {} runs after one warm-up, memory the worst run.\n\n",
        setup.summary["crates"],
        setup.summary["lines"],
        setup.summary["bytes"].as_f64().unwrap_or(0.0) / 1e9,
        setup.summary["seed"],
        setup.base,
        if setup.requested_threads == 0 {
            format!(
                "the engine's default threads ({} for parsing, at least 8 for publishing)",
                setup.threads
            )
        } else {
            format!("{} threads", setup.threads)
        },
        args.runs.max(1),
    );
    out.push_str(
        "| sync | wall | fetch | plan | download | publish | peak RSS | peak heap | published files written |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let row = |what: String, m: &Measure, rss: u64, anon: u64| {
        format!(
            "| {what} | {} | {} | {} | {} | {} | {} MB | {} MB | {} |\n",
            secs(m.wall),
            secs(m.stage("fetch")),
            secs(m.stage("plan")),
            secs(m.stage("download")),
            secs(m.stage("publish")),
            rss / 1024,
            anon / 1024,
            m.report["published_written"],
        )
    };
    out.push_str(&row(
        format!(
            "incremental: {} changed crates ({} new versions downloaded, {} yank flips)",
            commits.paths.len(),
            commits.added[0].len(),
            commits.flips
        ),
        bi,
        worst_rss(inc),
        worst_anon(inc),
    ));
    out.push_str(&row(
        format!(
            "full no-op compare (`--full`), {} versions all verified",
            setup.summary["lines"]
        ),
        bf,
        worst_rss(full),
        worst_anon(full),
    ));
    let first_label = if seeded.is_some() {
        "full compare right after seeding: first publish of every index file (setup, not measured as a no-op)"
    } else {
        "full compare, warm-up (the published index was already there)"
    };
    out.push_str(&row(
        first_label.to_owned(),
        full_first,
        full_first.peak_rss_kb,
        full_first.peak_anon_kb,
    ));
    if let Some(seed) = seeded {
        out.push_str(&format!(
            "\nSeeding the state (`Batch` of {SEED_CHUNK} records per `State::apply`, a flush every {SEED_FLUSH}), plus the mirror's clone of the index: {}, {} MB peak RSS.\n",
            secs(seed.wall),
            seed.peak_rss_kb / 1024
        ));
    }
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    let (ti, tf) = (bi.wall.as_secs_f64(), bf.wall.as_secs_f64());
    let rss_mb = worst_rss(full) / 1024;
    out.push_str(&format!(
        "\nGoals: incremental sync of {} changed crates {ti:.2} s ≤ 2 s {}; no-op full compare {tf:.2} s ≤ 15 s {}, peak RSS {rss_mb} MB ≤ 500 MB {}.\n",
        commits.paths.len(),
        mark(ti <= 2.0),
        mark(tf <= 15.0),
        mark(rss_mb <= 500),
    ));
    let all = |runs: &[Measure]| {
        runs.iter()
            .map(|m| format!("{:.2}", m.wall.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "Every run, in seconds: incremental {}; full {}.\n",
        all(inc),
        all(full)
    ));
    let measured = 1..commits.bytes.len();
    out.push_str(&format!(
        "The new versions' files of the measured runs: {} MB in all per run, the largest {:.2} MB.\n",
        commits.bytes[measured.clone()]
            .iter()
            .map(|b| format!("{:.1}", *b as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", "),
        commits.largest[measured].iter().copied().max().unwrap_or(0) as f64 / 1e6
    ));
    out
}

/// The sync section of docs/benchmarks.md, without its markers.
fn section(args: &SyncArgs, report: &str) -> String {
    let date = common::today();
    let machine = common::machine();
    let mut command = format!("cargo xtask bench sync --runs {}", args.runs.max(1));
    if args.changed != 1000 {
        command.push_str(&format!(" --changed {}", args.changed));
    }
    if args.threads != 0 {
        command.push_str(&format!(" --threads {}", args.threads));
    }
    if args.jobs != 8 {
        command.push_str(&format!(" --jobs {}", args.jobs));
    }
    format!(
        "## Syncing at crates.io scale: incremental and no-op full compare

- Command: `cargo xtask fixtures --synthetic && {command}`
- Date: {date}
- Machine: {machine} when the report was
  written (other work on the machine slows the runs unevenly)

{report}
How it is measured:

- The upstream is a bare clone of the synthetic index of `cargo xtask fixtures` (one commit,
  the base), which the mirror clones and fetches over `file://`, the way `mirror-cli sync
  --index file://…` does. The mirror's state is seeded, in a process of its own, with every
  version of the base as verified (`mirror_state::Batch` and `State::apply`, flushed every so
  often), with the sync marker (commit and tree) at the base. Each base version has an empty
  file in `crates/`, recorded with size 0: a full compare `stat`s the file of every version
  recorded verified (present, regular, of the recorded size) without reading it (hashing is
  `verify`'s job), so what it costs is the 2.7M `stat`s, whatever the files hold.
- Each sync is `mirror_sync::sync` (what `mirror-cli sync` runs) in its own process, the release
  build of xtask, timed from the call to its return: opening the state, fetching the upstream,
  planning, downloading, publishing the sparse index under `index/`, saving the state. *Peak
  RSS* is that process's `VmHWM` (it includes the touched pages of the memory-mapped pack files,
  which belong to the page cache); *peak heap* is resident minus shared memory, sampled every
  5 ms. The stage columns come from the engine's `Progress::stage` calls: *plan* is reading and
  parsing the index and comparing it with the state, and in a full compare also publishing
  each index file that needs no work as it is read; *publish* is then the files left for after
  the downloads, `config.json` and the sweep of published files upstream no longer has.
- *Full no-op compare*: `--full` against the base commit, every version already verified. Its
  first run after seeding publishes every index file; the measured runs find the published index
  current, the steady state of a daily `--full`. Each run must report every version already
  present (recorded verified, its file in place), nothing missing, downloaded, removed or
  adopted.
- *Incremental*: for each run a commit on top of the base changes the same {changed} crates,
  spread evenly over the index: nine in ten get a new version (a synthetic `.crate` file of a
  few KB to a MB or two, new in every run of every bench, so each sync fetches objects its
  clone of the index has not seen), one in ten has its newest line's yank flag flipped.
  The upstream's branch is moved to the run's commit; the sync fetches it, diffs the trees,
  parses only the changed files, downloads the new versions over loopback from the testkit
  registry server ({jobs} in flight, the rate limit lifted: this measures the engine, not the
  politeness towards a real registry) and publishes the changed files. Each run must report
  exactly those files read, versions added and downloaded, and yank flips. Afterwards the
  mirror is put back at the base (records, files, published files, sync marker), untimed.
",
        changed = args.changed,
        jobs = args.jobs,
    )
}
