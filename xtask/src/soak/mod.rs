//! `cargo xtask soak`: the long reliability runs of issues 8 and 12, on the real-crates fixture
//! served over loopback, with `mirror-cli` (the debug build the tests use) as a child process.
//! Not in CI; `--short` makes a run of a few minutes.
//!
//! Phases, each checked as it goes and counted in the figures:
//! 1. **Crashes.** `sync` and `verify --repair` killed with SIGKILL after a random delay drawn
//!    over a whole run's length (so kills land in index updates, downloads with their renames and
//!    state writes, quarantines, publishing and the final state writes). After every kill: no file
//!    under `crates/` is corrupt or unknown (a temp file, a partial file), and the two promises
//!    hold ([`promises`]). `verify` runs against a mirror damaged on purpose (files flipped, cut
//!    or deleted), so it has repairs to be killed in. Every third sync kill aims at a short
//!    stage: just after publishing starts (publishing and the closing state writes), or while
//!    files left without records are adopted. Each cycle ends with a clean sync and verify that
//!    must converge to the complete mirror.
//! 2. **Windows.** `verify`, `verify --repair` and `sync --prune` killed between their first
//!    irreversible step and their end ([`windows`]), the promises checked after each kill.
//! 3. **Corruption.** Damaged copies of a state: refused naming the recovery, or read whole;
//!    the recovery then converges ([`corrupt`]).
//! 4. **Flood.** Idle and half-sent connections against `mirror-cli serve`; a normal request is
//!    answered within a second ([`flood`]).
//! 5. **Faults.** Every fault class of the testkit server at a combined rate over 40%, then the
//!    server stopped in the middle of a sync and restarted on the same port seconds later. The
//!    server's request log proves the rate and in-flight limits held; failures are listed with
//!    their kind and recorded; a clean re-run completes with nothing lost.
//! 6. **Hostile input.** An index made to escape the mirror (with a canary outside it), `dl`
//!    templates with odd schemes, and hostile server answers (gzip bomb, endless body, wrong
//!    bytes, truncated, stalled and dripping bodies, a body longer than declared, redirect loops
//!    and a redirect to `ftp:`) through the CLI and the library.
//! 7. **Full disk.** `--dest` on a tmpfs half the size of the mirror (needs root: mounting fails
//!    the soak, it is never skipped), then the filesystem grown and the sync run again.
//! 8. **Fuzzing.** Every cargo-fuzz target for `--fuzz-seconds` (`cargo xtask fuzz`); any crash
//!    input fails the soak.
//!
//! A broken promise is reported at once, the soak goes on, and it fails at the end with the
//! list. The figures are printed as a table and, after a soak of every phase with no broken
//! promise, written into `docs/reliability.md` with the command and the date.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use mirror_fetch::{Download, FetchErrorKind, FetchOptions, Fetcher};
use mirror_index::{Checksum, CrateName, DlTemplate, Version, index_prefix};
use mirror_testkit::server::{
    Fault, RateFaults, RegistryOptions, RequestRecord, TestServer, gzip_zeros, max_concurrency,
    max_requests_in_window,
};
use mirror_testkit::{RealRegistry, RealRegistryOptions, real_registry};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::common::Rng;

mod corrupt;
mod doc;
mod flood;
mod promises;
mod windows;

use promises::Damaged;

/// Arguments of `cargo xtask soak`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// A short run, a few minutes on a 2-core machine: 6 sync kills, 4 verify kills, 4 window
    /// kills of each kind, 6 corruption cases, 10 s of fuzzing per target. Counts given
    /// explicitly win.
    #[arg(long)]
    short: bool,
    /// SIGKILLs of `mirror-cli sync` to land (runs that finish before their kill do not count)
    /// [default: 40].
    #[arg(long)]
    sync_kills: Option<u32>,
    /// SIGKILLs of `mirror-cli verify --repair` at random moments to land [default: 20].
    #[arg(long)]
    verify_kills: Option<u32>,
    /// SIGKILLs of each of `verify`, `verify --repair` and `sync --prune` to land inside the
    /// window between their first irreversible step and their end [default: 12].
    #[arg(long)]
    window_kills: Option<u32>,
    /// Damaged copies of a state to open (truncated or with bits flipped) [default: 12].
    #[arg(long)]
    corrupt_cases: Option<u32>,
    /// Idle connections of the slow-client flood against `mirror-cli serve`.
    #[arg(long, default_value_t = 1100)]
    flood_connections: u32,
    /// `--rate` of every sync: low enough that a whole sync of the fixture takes seconds.
    #[arg(long, default_value_t = 60.0)]
    rate: f64,
    /// `--jobs` of every sync.
    #[arg(long, default_value_t = 4)]
    jobs: u16,
    /// Seed of the kill delays, the damage and the injected faults.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Seconds of fuzzing per cargo-fuzz target in the fuzzing phase (`cargo xtask fuzz`;
    /// installs cargo-fuzz when missing) [default: 60].
    #[arg(long)]
    fuzz_seconds: Option<u64>,
    /// Run only these phases (repeatable; default: all). The doc is rewritten only after all.
    #[arg(long, value_enum)]
    phase: Vec<Phase>,
    /// Print the figures without rewriting docs/reliability.md.
    #[arg(long)]
    no_docs: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Crashes,
    Windows,
    Corruption,
    Flood,
    Faults,
    Hostile,
    FullDisk,
    Fuzz,
}

/// The run's length, from the arguments and `--short`.
struct Limits {
    sync_kills: u32,
    verify_kills: u32,
    window_kills: u32,
    corrupt_cases: u32,
    fuzz_seconds: u64,
}

impl Limits {
    fn of(args: &Args) -> Limits {
        let pick = |given: Option<u32>, short: u32, long: u32| {
            given.unwrap_or(if args.short { short } else { long })
        };
        Limits {
            sync_kills: pick(args.sync_kills, 6, 40),
            verify_kills: pick(args.verify_kills, 4, 20),
            window_kills: pick(args.window_kills, 4, 12),
            corrupt_cases: pick(args.corrupt_cases, 6, 12),
            fuzz_seconds: args
                .fuzz_seconds
                .unwrap_or(if args.short { 10 } else { 60 }),
        }
    }
}

/// Everything counted, for the table and the doc.
#[derive(Default)]
struct Figures {
    versions: usize,
    bytes: u64,
    sync_kills: u32,
    verify_kills: u32,
    /// Kills by the stage the child had last announced on stderr.
    kills_by_stage: BTreeMap<String, u32>,
    /// Runs that ended by themselves before their kill came.
    finished_before_kill: u32,
    /// Checks of the mirror (files hashed against the index, state records against the files).
    checks: u32,
    /// Verified records and published lines checked by those checks, and those excused because
    /// the soak damaged their file and no run had noticed yet.
    promise_records: u64,
    promise_lines: u64,
    promise_excused: u64,
    /// Every broken promise, with the step after which it was first found. Fails the soak.
    violations: Vec<String>,
    /// Broken promises as found, the same one again at later checks included.
    violation_hits: u64,
    violation_seen: std::collections::HashSet<String>,
    /// Kills aimed at the window after the first irreversible step, by run.
    windows: BTreeMap<windows::Target, windows::WindowFigures>,
    /// Versions removed upstream for the prune rounds.
    pruned_upstream: u32,
    /// Damaged states: each case and what came of it.
    corruption: Vec<corrupt::Case>,
    /// Slow-client floods: each scenario and the time a normal request took during it.
    floods: Vec<flood::Flood>,
    /// Files damaged on purpose for `verify` to find.
    damaged: u32,
    /// Times the state was deleted under a partial mirror, so the next sync adopts its files.
    states_lost: u32,
    /// Crash cycles that converged to the complete verified mirror.
    cycles: u32,
    /// Faults the server applied, by kind.
    faults: BTreeMap<String, u64>,
    /// Requests the server answered during the fault phase.
    fault_requests: u64,
    /// Failures the fault phase's syncs listed, by kind.
    failures_by_kind: BTreeMap<String, u64>,
    /// How long the server was down in the middle of a sync.
    outage: Duration,
    /// Most requests in flight the server saw, and the cap.
    max_in_flight: (usize, usize),
    /// Most request starts in any one second the server saw, and the limit.
    max_per_second: (usize, usize),
    /// Hostile inputs tried, by kind.
    hostile: BTreeMap<&'static str, u32>,
    /// Full-disk scenario: versions in place when the disk filled, and the size of the disk.
    full_disk: Option<(u64, u64)>,
    /// Versions missing or corrupt after a phase's final verify (must stay 0).
    lost: u64,
    took: Duration,
    /// How long each phase took.
    phase_times: Vec<(&'static str, Duration)>,
    /// The fuzzing phase's table (`cargo xtask fuzz`), when it ran.
    fuzz_table: Option<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = crate::common::workspace_root();
    let exe = debug_cli(&root)?;
    let work = tempfile::Builder::new()
        .prefix("mirror-soak-")
        .tempdir()
        .context("creating the soak's work directory")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    let reg = work.path().join("reg");
    // As in the CLI tests: the server reads its trees per request, so it starts first and the
    // fixture's config.json names the server's own download API.
    let options = RegistryOptions::new(reg.join("sparse"), Some(reg.join("cdn")));
    let server = rt.block_on(TestServer::start_registry(options.clone()));
    eprintln!("==> building the real-crates registry");
    let registry = real_registry(&reg, &RealRegistryOptions::with_dl(server.dl_api()))
        .context("building the real-crates registry")?;
    let mut soak = Soak {
        cli: Cli {
            exe,
            home: work.path().join("home"),
        },
        index: format!("file://{}", registry.git.display()),
        expected: expected_files(&registry),
        registry,
        rt,
        server: Some(server),
        options,
        dest: work.path().join("mirror"),
        work: work.path().to_owned(),
        rng: Rng(args.seed),
        limits: Limits::of(&args),
        damaged: Damaged::default(),
        state_lost: false,
        context: "the start".to_owned(),
        args,
        figures: Figures::default(),
    };
    std::fs::create_dir_all(&soak.cli.home)?;
    soak.figures.versions = soak.registry.versions.len();
    soak.figures.bytes = soak.registry.versions.iter().map(|v| v.size).sum();
    eprintln!(
        "==> {} versions, {:.1} MB, sync --rate {} --jobs {}",
        soak.figures.versions,
        soak.figures.bytes as f64 / 1e6,
        soak.args.rate,
        soak.args.jobs
    );

    let all = soak.args.phase.is_empty();
    let wanted = |phase| all || soak.args.phase.contains(&phase);
    let (crashes, windows, corruption, flood) = (
        wanted(Phase::Crashes),
        wanted(Phase::Windows),
        wanted(Phase::Corruption),
        wanted(Phase::Flood),
    );
    let (faults, hostile, full_disk, fuzz) = (
        wanted(Phase::Faults),
        wanted(Phase::Hostile),
        wanted(Phase::FullDisk),
        wanted(Phase::Fuzz),
    );
    type PhaseFn = fn(&mut Soak) -> anyhow::Result<()>;
    let chosen: [(bool, &str, PhaseFn); 7] = [
        (crashes, "crashes", Soak::crashes),
        (windows, "windows", Soak::windows),
        (corruption, "corruption", Soak::corruption),
        (flood, "flood", Soak::flood),
        (faults, "faults", Soak::faults),
        (hostile, "hostile", Soak::hostile),
        (full_disk, "full disk", Soak::full_disk),
    ];
    let phases = (|| -> anyhow::Result<()> {
        for (wanted, name, phase) in chosen {
            if wanted {
                let started = Instant::now();
                phase(&mut soak)?;
                soak.figures.phase_times.push((name, started.elapsed()));
            }
        }
        Ok(())
    })();
    if let Err(e) = phases {
        report_violations(&soak.figures.violations);
        return Err(e);
    }
    if fuzz {
        eprintln!(
            "==> fuzzing: every cargo-fuzz target for {} s",
            soak.limits.fuzz_seconds
        );
        let (table, problems) = crate::fuzz::fuzz(None, soak.limits.fuzz_seconds)?;
        ensure!(
            problems.is_empty(),
            "fuzzing found problems:\n{}",
            problems.join("\n")
        );
        soak.figures.fuzz_table = Some(table);
    }

    soak.figures.took = started.elapsed();
    let table = soak.table();
    println!("{table}");
    let violations = &soak.figures.violations;
    // The doc is rewritten after a full soak, or after every phase but fuzzing (whose last
    // figures it keeps, saying so); broken promises are listed in it.
    let docs = all || (crashes && windows && corruption && flood && faults && hostile && full_disk);
    if !soak.args.no_docs && docs {
        let doc = root.join("docs/reliability.md");
        let old = std::fs::read_to_string(&doc).unwrap_or_default();
        std::fs::write(&doc, doc::render(&soak, &table, &old))
            .with_context(|| format!("writing {}", doc.display()))?;
        eprintln!("==> wrote {}", doc.display());
    }
    report_violations(violations);
    ensure!(
        violations.is_empty(),
        "{} broken promises (listed above)",
        violations.len()
    );
    Ok(())
}

/// Prints every broken promise, loudly, at the end.
fn report_violations(violations: &[String]) {
    if violations.is_empty() {
        eprintln!("==> no promise broken");
        return;
    }
    eprintln!("!!! {} BROKEN PROMISES:", violations.len());
    for v in violations {
        eprintln!("!!!   {v}");
    }
}

/// Builds `mirror-cli` (debug, as the tests use it) and returns its path.
fn debug_cli(root: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("==> cargo build -p mirror-cli");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "-p", "mirror-cli"])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    ensure!(
        status.success(),
        "cargo build -p mirror-cli failed ({status})"
    );
    Ok(crate::common::target_dir(root)
        .join("debug")
        .join("mirror-cli"))
}

/// Every crate file of the registry: its path under the mirror root, and its checksum.
fn expected_files(registry: &RealRegistry) -> BTreeMap<PathBuf, Checksum> {
    registry
        .versions
        .iter()
        .map(|v| (crate_path(v.name(), v.vers()), *v.cksum()))
        .collect()
}

/// `crates/{lowerprefix}/{name}/{name}-{vers}.crate`, the layout the README documents.
fn crate_path(name: &CrateName, vers: &Version) -> PathBuf {
    let mut path = PathBuf::from("crates");
    for part in index_prefix(name).to_lowercase().split('/') {
        path.push(part);
    }
    path.push(name.as_str());
    path.push(format!("{name}-{vers}.crate"));
    path
}

/// How to run `mirror-cli` with no user configuration leaking in.
struct Cli {
    exe: PathBuf,
    home: PathBuf,
}

impl Cli {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .args(args)
            .env("HOME", &self.home)
            .env("MIRROR_CLI_CACHE_DIR", self.home.join("cache"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("RUST_LOG")
            .env_remove("MIRROR_CLI_INDEX")
            .env_remove("MIRROR_CLI_CONTACT");
        command
    }
}

/// How a run that was to be killed ended.
enum End {
    Killed { stage: String },
    Exited { output: Output },
}

/// The stage a child last announced on stderr (its non-terminal progress lines).
fn last_stage(stderr: &str) -> String {
    const STAGES: [&str; 9] = [
        "updating the index",
        "reading the index",
        "hashing files left in place",
        "downloading",
        "publishing the index",
        "saving the state",
        "verifying",
        "looking for unexpected files",
        "repairing",
    ];
    stderr
        .lines()
        .rev()
        .find_map(|line| STAGES.iter().find(|s| line.starts_with(*s)))
        .map_or_else(|| "starting".to_owned(), |s| (*s).to_owned())
}

/// The JSON summary on the last line of a run's stdout.
/// Whether a `verify --repair` left every file in place and verified: exit 0 (nothing was
/// wrong), or exit 1 with every missing and corrupt file repaired and nothing else wrong (a
/// repair that mended damage exits 1, so that cron hears of the damage).
fn repair_mended(output: &Output, report: &Value) -> bool {
    let listed = |field: &str| report[field].as_array().map_or(0, Vec::len) as u64;
    match output.status.code() {
        Some(0) => true,
        Some(1) => {
            report["repaired"].as_u64() == Some(listed("missing") + listed("corrupt"))
                && listed("failures") == 0
                && listed("unexpected") == 0
                && report["interrupted"] == Value::Bool(false)
        }
        _ => false,
    }
}

fn summary(output: &Output) -> anyhow::Result<Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| {
        format!(
            "no JSON summary ({}); stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn count(v: &Value, field: &str) -> anyhow::Result<u64> {
    v[field]
        .as_u64()
        .with_context(|| format!("{field} missing in {v}"))
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

struct Soak {
    args: Args,
    limits: Limits,
    /// Files damaged on purpose, and which of them a run noticed.
    damaged: Damaged,
    /// The soak deleted the state in this crash cycle (its records are rebuilt by adoption).
    state_lost: bool,
    /// What ran last, for the violation messages.
    context: String,
    cli: Cli,
    index: String,
    registry: RealRegistry,
    expected: BTreeMap<PathBuf, Checksum>,
    rt: tokio::runtime::Runtime,
    server: Option<TestServer>,
    options: RegistryOptions,
    dest: PathBuf,
    work: PathBuf,
    rng: Rng,
    figures: Figures,
}

impl Soak {
    fn n(&self) -> u64 {
        self.registry.versions.len() as u64
    }

    fn server(&self) -> &TestServer {
        self.server.as_ref().expect("the server is up")
    }

    fn sync_command(&self, extra: &[&str]) -> Command {
        self.sync_command_at(&self.index, extra)
    }

    /// A sync of the index `index`.
    fn sync_command_at(&self, index: &str, extra: &[&str]) -> Command {
        let rate = self.args.rate.to_string();
        let jobs = self.args.jobs.to_string();
        let mut args = vec![
            "sync",
            "--dest",
            self.dest.to_str().expect("a UTF-8 temp path"),
            "--index",
            index,
            "--json",
            "--rate",
            &rate,
            "--jobs",
            &jobs,
            "--contact",
            "soak@example.invalid",
        ];
        if !extra.contains(&"--backoff-ms") {
            args.extend(["--backoff-ms", "5"]);
        }
        args.extend_from_slice(extra);
        self.cli.command(&args)
    }

    fn verify_command(&self, extra: &[&str]) -> Command {
        let rate = self.args.rate.to_string();
        let mut args = vec![
            "verify",
            "--dest",
            self.dest.to_str().expect("a UTF-8 temp path"),
            "--json",
            "--rate",
            &rate,
            "--backoff-ms",
            "5",
            "--contact",
            "soak@example.invalid",
        ];
        args.extend_from_slice(extra);
        self.cli.command(&args)
    }

    /// Runs `command` and SIGKILLs it after `delay` unless it ended first.
    fn run_killed(&self, command: Command, delay: Duration) -> anyhow::Result<End> {
        self.run_killed_at(command, None, delay)
    }

    /// Runs `command` and SIGKILLs it `delay` after it announced `stage` on stderr (or after
    /// `delay` from its start, when `stage` is `None`), unless it ended first.
    fn run_killed_at(
        &self,
        mut command: Command,
        stage: Option<&str>,
        delay: Duration,
    ) -> anyhow::Result<End> {
        let log = self.work.join("child.stderr");
        let started = Instant::now();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting mirror-cli")?;
        // stdout is only read once the child ended; the JSON summary is one line, far below a
        // pipe's buffer, so the child never blocks on it.
        let mut from = stage.is_none().then_some(started);
        loop {
            if child.try_wait()?.is_some() {
                let mut output = child.wait_with_output()?;
                output.stderr = std::fs::read(&log)?;
                return Ok(End::Exited { output });
            }
            if let (None, Some(stage)) = (from, stage) {
                let stderr = std::fs::read_to_string(&log).unwrap_or_default();
                if stderr.lines().any(|line| line.starts_with(stage)) {
                    from = Some(Instant::now());
                }
            }
            if from.is_some_and(|from| from.elapsed() >= delay) {
                child.kill().context("killing mirror-cli")?;
                child.wait()?;
                let stderr = std::fs::read_to_string(&log).unwrap_or_default();
                return Ok(End::Killed {
                    stage: last_stage(&stderr),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn run(&self, mut command: Command) -> anyhow::Result<Output> {
        command.output().context("running mirror-cli")
    }

    /// The invariants after any run, killed or not: every file under `crates/` is a crate file
    /// of the index with exactly its bytes (files the soak damaged excepted), and the two
    /// promises ([`promises::check`]). A broken one is counted, reported at once and fails the
    /// soak at its end; the run goes on so that one soak shows every break. Returns the files
    /// present and the verified records.
    fn check(&mut self) -> anyhow::Result<(u64, u64)> {
        self.figures.checks += 1;
        let mut violations = Vec::new();
        let mut present = BTreeMap::new();
        let mut stack = vec![self.dest.join("crates")];
        while let Some(dir) = stack.pop() {
            let Ok(listing) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in listing {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel = path.strip_prefix(&self.dest)?.to_owned();
                let Some(cksum) = self.expected.get(&rel) else {
                    violations.push(format!(
                        "{} is under crates/ but is no crate file of the index (a temp or partial file?)",
                        rel.display()
                    ));
                    continue;
                };
                let (_, actual) = mirror_store::hash_file(&path)
                    .with_context(|| format!("hashing {}", path.display()))?;
                if actual != *cksum && !self.damaged.files.contains(&rel) {
                    violations.push(format!(
                        "{} is under its final name with the wrong bytes: {actual}, the index says {cksum}",
                        rel.display()
                    ));
                }
                present.insert(rel, actual);
            }
        }
        let scratch = self.work.join("state-copy");
        let verdict = promises::check(
            &self.dest,
            &scratch,
            &present,
            &mut self.damaged,
            self.state_lost,
        )?;
        let f = &mut self.figures;
        f.promise_records += verdict.records;
        f.promise_lines += verdict.lines;
        f.promise_excused += verdict.excused;
        violations.extend(verdict.violations);
        for v in violations {
            self.violation(v);
        }
        Ok((present.len() as u64, verdict.records))
    }

    /// Reports a broken promise at once and keeps it for the end. One still broken at later
    /// checks is counted again but listed once, with the step after which it was first found.
    fn violation(&mut self, what: String) {
        // The soak's temp directory is no part of the finding (and no machine path goes into
        // the doc).
        let what = what.replace(&self.work.display().to_string(), "<soak dir>");
        let f = &mut self.figures;
        f.violation_hits += 1;
        if f.violation_seen.insert(what.clone()) {
            eprintln!("!!! PROMISE BROKEN (after {}): {what}", self.context);
            f.violations.push(format!("after {}: {what}", self.context));
        }
    }

    /// A clean sync and a clean verify: the mirror must be complete and verified.
    fn converge(&mut self) -> anyhow::Result<()> {
        let out = self.run(self.sync_command(&[]))?;
        let report = summary(&out)?;
        ensure!(
            out.status.code() == Some(0),
            "a clean sync did not complete ({}): {report}\n{}",
            out.status,
            text(&out)
        );
        let synced = report;
        let out = self.run(self.verify_command(&[]))?;
        let report = summary(&out)?;
        let ok = count(&report, "ok")?;
        self.figures.lost += self.n().saturating_sub(ok);
        ensure!(
            out.status.code() == Some(0) && ok == self.n(),
            "verify after a clean sync: {report}\nthe sync said: {synced}"
        );
        let (present, verified) = self.check()?;
        ensure!(
            present == self.n() && verified == self.n(),
            "{present} files and {verified} records of {}",
            self.n()
        );
        Ok(())
    }

    fn fresh_dest(&self) -> anyhow::Result<()> {
        if self.dest.exists() {
            std::fs::remove_dir_all(&self.dest)
                .with_context(|| format!("removing {}", self.dest.display()))?;
        }
        Ok(())
    }

    fn note_kill(&mut self, stage: String) {
        *self.figures.kills_by_stage.entry(stage).or_default() += 1;
    }

    /// Phase 1: SIGKILLs of sync and verify at random moments.
    fn crashes(&mut self) -> anyhow::Result<()> {
        eprintln!("==> crashes: calibrating");
        self.fresh_dest()?;
        let sync_started = Instant::now();
        let out = self.run(self.sync_command(&[]))?;
        ensure!(
            out.status.success(),
            "the first sync failed: {}",
            text(&out)
        );
        let sync_ms = (sync_started.elapsed().as_millis() as u64).max(500);
        // Damage as the kill rounds will, so the measured verify includes its repairs.
        self.damage()?;
        let verify_started = Instant::now();
        let out = self.run(self.verify_command(&["--repair"]))?;
        ensure!(
            repair_mended(&out, &summary(&out)?),
            "the first verify failed: {}",
            text(&out)
        );
        let verify_ms = (verify_started.elapsed().as_millis() as u64).max(200);
        self.figures.damaged = 0;
        self.damaged = Damaged::default();
        eprintln!("    sync of everything {sync_ms} ms, verify {verify_ms} ms");

        eprintln!("==> crashes: {} sync kills", self.limits.sync_kills);
        self.fresh_dest()?;
        let mut in_cycle = 0;
        while self.figures.sync_kills < self.limits.sync_kills {
            // Over the whole length of a first sync and a little beyond, so that kills also land
            // at its very end (publishing, the final state writes).
            let delay = Duration::from_millis((self.rng.unit() * 1.15 * sync_ms as f64) as u64);
            // Every third kill aims at a short stage a random delay rarely hits: publishing
            // the index and the state writes that end a run, or adopting files found in place
            // without records (made by losing the state, as a disk failure could).
            let (stage, delay) = match self.figures.sync_kills % 6 {
                2 => (
                    Some("publishing the index"),
                    Duration::from_millis(self.rng.next_u64() % 60),
                ),
                5 if in_cycle > 0 && self.dest.join("crates").exists() => {
                    std::fs::remove_dir_all(self.dest.join(".mirror/state"))?;
                    self.figures.states_lost += 1;
                    self.state_lost = true;
                    (
                        Some("hashing files left in place"),
                        Duration::from_millis(self.rng.next_u64() % 400),
                    )
                }
                _ => (None, delay),
            };
            self.context = format!("sync kill {}", self.figures.sync_kills + 1);
            match self.run_killed_at(self.sync_command(&[]), stage, delay)? {
                End::Killed { stage } => {
                    self.figures.sync_kills += 1;
                    in_cycle += 1;
                    self.note_kill(stage);
                }
                End::Exited { output, .. } => {
                    self.figures.finished_before_kill += 1;
                    ensure!(
                        output.status.success(),
                        "a sync that was not killed failed: {}",
                        text(&output)
                    );
                    in_cycle = 8;
                }
            }
            self.check()?;
            if in_cycle >= 8 {
                // The cycle's end: the mirror converges, and the next cycle starts from nothing.
                self.converge()?;
                self.figures.cycles += 1;
                self.fresh_dest()?;
                self.state_lost = false;
                in_cycle = 0;
            }
        }
        self.converge()?;
        self.figures.cycles += 1;

        eprintln!(
            "==> crashes: {} verify --repair kills",
            self.limits.verify_kills
        );
        while self.figures.verify_kills < self.limits.verify_kills {
            self.damage()?;
            self.context = format!("verify --repair kill {}", self.figures.verify_kills + 1);
            let delay = Duration::from_millis((self.rng.unit() * 1.3 * verify_ms as f64) as u64);
            match self.run_killed(self.verify_command(&["--repair"]), delay)? {
                End::Killed { stage } => {
                    self.figures.verify_kills += 1;
                    self.note_kill(stage);
                }
                End::Exited { .. } => self.figures.finished_before_kill += 1,
            }
            self.check()?;
            self.forget_mended();
        }
        let out = self.run(self.verify_command(&["--repair"]))?;
        let report = summary(&out)?;
        ensure!(
            repair_mended(&out, &report),
            "verify --repair did not mend the damage: {report}"
        );
        self.converge()?;
        self.figures.cycles += 1;
        Ok(())
    }

    /// A damaged file is done with once it is back with the right bytes.
    fn forget_mended(&mut self) {
        let mended: Vec<PathBuf> = self
            .damaged
            .files
            .iter()
            .filter(|rel| {
                let right = self.expected.get(*rel);
                mirror_store::hash_file(&self.dest.join(rel))
                    .is_ok_and(|(_, sum)| Some(&sum) == right)
            })
            .cloned()
            .collect();
        for rel in mended {
            self.damaged.forget(&rel);
        }
    }

    /// Damages one to three crate files in place: a flipped byte, a cut, or a deletion. Only
    /// files the mirror offers and holds intact are picked, so that a line missing from the
    /// published index later says a run noticed the damage ([`Damaged::known`]).
    fn damage(&mut self) -> anyhow::Result<Vec<PathBuf>> {
        let (lines, _) = promises::published(&self.dest)?;
        let files: Vec<PathBuf> = lines
            .iter()
            .map(|l| crate_path(&l.name, &l.vers))
            .filter(|rel| !self.damaged.files.contains(rel) && self.dest.join(rel).is_file())
            .collect();
        let mut picked = Vec::new();
        if files.is_empty() {
            return Ok(picked);
        }
        for _ in 0..1 + self.rng.next_u64() % 3 {
            let rel = &files[(self.rng.next_u64() % files.len() as u64) as usize];
            if self.damaged.files.contains(rel) {
                continue;
            }
            let path = self.dest.join(rel);
            let Ok(mut bytes) = std::fs::read(&path) else {
                continue;
            };
            match self.rng.next_u64() % 3 {
                0 => {
                    let at = (self.rng.next_u64() % bytes.len().max(1) as u64) as usize;
                    if let Some(byte) = bytes.get_mut(at) {
                        *byte ^= 0x5a;
                    }
                    std::fs::write(&path, &bytes)?;
                }
                1 => {
                    bytes.truncate(bytes.len() / 2);
                    std::fs::write(&path, &bytes)?;
                }
                _ => std::fs::remove_file(&path)?,
            }
            self.damaged.files.insert(rel.clone());
            picked.push(rel.clone());
            self.figures.damaged += 1;
        }
        Ok(picked)
    }

    /// Stops the server and starts it again on the same port (the fixture's config names it).
    fn restart_server(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let mut options = self.options.clone();
        options.addr = Some(addr);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self
                .rt
                .block_on(TestServer::try_start_registry(options.clone()))
            {
                Ok(server) => {
                    self.server = Some(server);
                    return Ok(());
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("    {addr} not free yet ({e}); retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e).context(format!("restarting the server on {addr}")),
            }
        }
    }

    /// Checks the politeness limits on one server's request log.
    fn check_politeness(&mut self, requests: &[RequestRecord]) -> anyhow::Result<()> {
        let jobs = usize::from(self.args.jobs);
        let rate = self.args.rate;
        // What `mirror-sync` configures for `--rate`: the burst is at most the rate.
        let burst = 8.min(rate.ceil() as usize).max(1);
        let in_flight = max_concurrency(requests);
        ensure!(
            in_flight <= jobs,
            "{in_flight} requests in flight at once, the cap is {jobs}"
        );
        self.figures.max_in_flight.0 = self.figures.max_in_flight.0.max(in_flight);
        self.figures.max_in_flight.1 = jobs;
        for window_ms in [1000u64, 250, 100] {
            let seen = max_requests_in_window(requests, Duration::from_millis(window_ms));
            let limit = burst + (rate * window_ms as f64 / 1000.0).ceil() as usize;
            ensure!(
                seen <= limit,
                "{seen} requests began within {window_ms} ms, the limit is {limit}"
            );
            if window_ms == 1000 {
                self.figures.max_per_second.0 = self.figures.max_per_second.0.max(seen);
                self.figures.max_per_second.1 = limit;
            }
        }
        Ok(())
    }

    /// Counts the faults the server applied to `requests`.
    fn count_faults(&mut self, requests: &[RequestRecord]) {
        for record in requests {
            if let Some(fault) = &record.fault {
                *self.figures.faults.entry(fault_name(fault)).or_default() += 1;
            }
        }
        self.figures.fault_requests += requests.len() as u64;
    }

    fn note_failures(&mut self, report: &Value) -> anyhow::Result<()> {
        let failures = report["failures"]
            .as_array()
            .with_context(|| format!("no failures list in {report}"))?;
        ensure!(
            failures.len() as u64 == count(report, "failed")?,
            "failed and failures disagree: {report}"
        );
        for failure in failures {
            let kind = failure["kind"].as_str().unwrap_or_default();
            let message = failure["message"].as_str().unwrap_or_default();
            ensure!(
                !kind.is_empty() && !message.is_empty(),
                "a failure without its kind or message: {failure}"
            );
            *self
                .figures
                .failures_by_kind
                .entry(kind.to_owned())
                .or_default() += 1;
        }
        Ok(())
    }

    /// Phase 2: mixed faults at high rates, then the server down in the middle of a sync.
    fn faults(&mut self) -> anyhow::Result<()> {
        eprintln!("==> faults: every class at once");
        self.fresh_dest()?;
        let faults = vec![
            (0.06, Fault::Status(500)),
            (0.03, Fault::Status(502)),
            (
                0.04,
                Fault::ServiceUnavailable {
                    retry_after: Some(1),
                },
            ),
            (
                0.04,
                Fault::TooManyRequests {
                    retry_after: Some(1),
                },
            ),
            (0.06, Fault::Reset),
            (0.06, Fault::Truncate { after: 200 }),
            (
                0.03,
                Fault::Stall {
                    after: 100,
                    duration: Duration::from_millis(800),
                },
            ),
            (0.03, Fault::SlowFirstByte(Duration::from_millis(400))),
            (0.04, Fault::WrongBytes),
            (0.02, Fault::Status(404)),
            (0.02, Fault::Status(403)),
            (0.01, Fault::GzipBomb { size: 256 << 20 }),
        ];
        let total: f64 = faults.iter().map(|(p, _)| p).sum();
        self.server().clear_requests();
        self.server()
            .inject_rate(RateFaults::new(self.args.seed, faults));
        let mut runs = 0;
        loop {
            runs += 1;
            let out = self.run(self.sync_command(&["--attempts", "3"]))?;
            let report = summary(&out)?;
            self.note_failures(&report)?;
            self.check()?;
            let failed = count(&report, "failed")?;
            let expected = if failed == 0 { 0 } else { 1 };
            ensure!(
                out.status.code() == Some(expected),
                "{failed} failures but exit {}",
                out.status
            );
            // Every failure is recorded in the state, to be retried.
            let out = self.run(self.cli.command(&[
                "status",
                "--dest",
                self.dest.to_str().expect("UTF-8"),
                "--json",
            ]))?;
            let status = summary(&out)?;
            ensure!(
                count(&status, "failed")? >= failed,
                "the state records fewer failures than the run listed: {status}"
            );
            if runs == 2 {
                break;
            }
        }
        let requests = self.server().requests();
        self.check_politeness(&requests)?;
        self.count_faults(&requests);
        eprintln!(
            "    {runs} syncs at a fault rate of {:.0}%: {} requests, {} faults",
            total * 100.0,
            requests.len(),
            requests.iter().filter(|r| r.fault.is_some()).count()
        );
        self.server().clear_faults();
        self.server().clear_requests();
        self.converge()?;

        eprintln!("==> faults: the server goes down in the middle of a sync");
        self.fresh_dest()?;
        let addr = self.server().addr();
        // Backoff long enough that retries outlast a short outage: 0.4 + 0.8 + 1.6 + 3.2 s.
        let child = self
            .sync_command(&["--backoff-ms", "400", "--attempts", "5"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(1500));
        let before = self.server().requests();
        self.check_politeness(&before)?;
        self.server = None;
        let down = Instant::now();
        std::thread::sleep(Duration::from_secs(3));
        self.restart_server(addr)?;
        self.figures.outage = down.elapsed();
        let out = child.wait_with_output()?;
        let report = summary(&out)?;
        self.note_failures(&report)?;
        let after = self.server().requests();
        self.check_politeness(&after)?;
        ensure!(
            matches!(out.status.code(), Some(0 | 1)),
            "a sync through an outage ended with {}: {}",
            out.status,
            text(&out)
        );
        eprintln!(
            "    down for {:.1?}; the sync downloaded {} and failed {}",
            self.figures.outage,
            count(&report, "downloaded")?,
            count(&report, "failed")?
        );
        self.check()?;
        self.converge()?;
        Ok(())
    }

    /// Phase 3: hostile indexes, `dl` templates and server answers.
    fn hostile(&mut self) -> anyhow::Result<()> {
        eprintln!("==> hostile: an index made to escape the mirror");
        self.hostile_index()?;
        eprintln!("==> hostile: dl templates with odd schemes");
        for dl in [
            "file:///etc/{crate}",
            "ftp://127.0.0.1/{crate}/{version}",
            "javascript:alert(1)",
        ] {
            let dir = self.work.join("odd-dl");
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            append(
                &dir.join("index/config.json"),
                format!("{{\"dl\":\"{dl}\"}}").as_bytes(),
            )?;
            append(&dir.join("index/1/a"), &line("a", "1.0.0", &"0".repeat(64)))?;
            let dest = dir.join("mirror");
            let out = self.run(self.cli.command(&[
                "sync",
                "--dest",
                dest.to_str().expect("UTF-8"),
                "--index",
                dir.join("index").to_str().expect("UTF-8"),
            ]))?;
            ensure!(
                out.status.code() == Some(2),
                "dl {dl}: exit {} ({})",
                out.status,
                text(&out)
            );
            let written = std::fs::read_dir(dest.join("crates"))
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            ensure!(!written, "dl {dl}: something was written under crates/");
            *self.figures.hostile.entry("odd dl scheme").or_default() += 1;
        }

        eprintln!("==> hostile: server answers through the CLI");
        self.fresh_dest()?;
        let picks: Vec<usize> = (0..3)
            .map(|i| (i * 37 + 11) % self.registry.versions.len())
            .collect();
        let answers = [
            Fault::GzipBomb { size: 1 << 30 },
            Fault::WrongBytes,
            Fault::Truncate { after: 10 },
        ];
        let mut want = BTreeMap::new();
        for (&i, fault) in picks.iter().zip(&answers) {
            let v = &self.registry.versions[i];
            let path = format!("/crates/{0}/{0}-{1}.crate", v.name(), v.vers());
            self.server().inject(&path, fault.clone());
            let kind = match fault {
                Fault::Truncate { .. } => "truncated",
                _ => "checksum_mismatch",
            };
            want.insert(format!("{} {}", v.name(), v.vers()), kind.to_owned());
        }
        let out = self.run(self.sync_command(&["--attempts", "2"]))?;
        let report = summary(&out)?;
        ensure!(
            out.status.code() == Some(1),
            "exit {}: {report}",
            out.status
        );
        let got: BTreeMap<String, String> = report["failures"]
            .as_array()
            .context("a failures list")?
            .iter()
            .map(|f| {
                (
                    format!(
                        "{} {}",
                        f["name"].as_str().unwrap_or_default(),
                        f["vers"].as_str().unwrap_or_default()
                    ),
                    f["kind"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        ensure!(got == want, "failures {got:?}, expected {want:?}");
        self.check()?;
        for fault in &answers {
            *self
                .figures
                .hostile
                .entry(match fault {
                    Fault::GzipBomb { .. } => "gzip bomb (1 GiB expanded), CLI",
                    Fault::WrongBytes => "wrong bytes, CLI",
                    _ => "truncated body, CLI",
                })
                .or_default() += 1;
        }
        self.server().clear_faults();
        self.converge()?;

        eprintln!("==> hostile: server answers through the library");
        self.hostile_fetch()?;
        Ok(())
    }

    /// An index whose lines try to escape the mirror root, next to good crates; a canary outside
    /// `--dest` must stay as it was, and so must everything else outside it.
    fn hostile_index(&mut self) -> anyhow::Result<()> {
        let dir = self.work.join("hostile");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let (index, cdn) = (dir.join("index"), dir.join("cdn"));
        let server = self
            .rt
            .block_on(TestServer::start_registry(RegistryOptions::new(
                index.clone(),
                Some(cdn.clone()),
            )));
        let mut good = Vec::new();
        for (name, vers) in [("a", "1.0.0"), ("evi", "0.1.0"), ("evi", "0.2.0+build.7")] {
            let bytes = format!("the crate file of {name} {vers}").into_bytes();
            let cksum = format!("{:x}", Sha256::digest(&bytes));
            append(
                &cdn.join(format!("crates/{name}/{name}-{vers}.crate")),
                &bytes,
            )?;
            good.push((name, vers, cksum));
        }
        append(
            &index.join("config.json"),
            format!("{{\"dl\":\"{}\"}}", server.dl_cdn_template()).as_bytes(),
        )?;
        let evi = index.join("3/e/evi");
        append(&index.join("1/a"), &line("a", "1.0.0", &good[0].2))?;
        let mut bad: Vec<Vec<u8>> = vec![line("a", "1.0.0", &"0".repeat(64))];
        append(&index.join("1/a"), &bad[0])?;
        append(&evi, &line("evi", "0.1.0", &good[1].2))?;
        let long_name = "e".repeat(65);
        let escapes: [(&str, &str); 11] = [
            ("../../canary", "1.0.0"),
            ("/etc/passwd", "1.0.0"),
            ("..\\\\..\\\\canary", "1.0.0"),
            ("evi\\u0000", "1.0.0"),
            ("\u{435}vi", "1.0.0"),
            (&long_name, "1.0.0"),
            ("evi", "1.0.0/../../../canary"),
            ("evi", "../../canary"),
            ("evi", "1.0.0\\u0000"),
            ("evi", "C:\\\\canary"),
            ("evi/../../canary", "1.0.0"),
        ];
        for (name, vers) in escapes {
            bad.push(line(name, vers, &good[1].2));
        }
        bad.push(b"{\"name\":\"evi\",\"vers\":\"9.9.9\xff\xfe\"}\n".to_vec());
        bad.push(b"not json at all\n".to_vec());
        let mut huge = b"{\"name\":\"evi\",\"vers\":\"8.0.0\",\"pad\":\"".to_vec();
        huge.extend(std::iter::repeat_n(b'x', 8 << 20));
        huge.extend_from_slice(b"\"}\n");
        bad.push(huge);
        // A line for another crate's file.
        bad.push(line("a", "2.0.0", &good[0].2));
        for line in &bad[1..] {
            append(&evi, line)?;
        }
        append(&evi, &line("evi", "0.2.0+build.7", &good[2].2))?;

        let outside = dir.join("outside");
        append(&outside.join("canary"), b"must stay as it is")?;
        let dest = outside.join("mirror");
        let before = snapshot(&dir, &dest)?;
        let out = self.run(self.cli.command(&[
            "sync",
            "--dest",
            dest.to_str().expect("UTF-8"),
            "--index",
            index.to_str().expect("UTF-8"),
            "--json",
            "--rate",
            "1000",
        ]))?;
        let report = summary(&out)?;
        ensure!(
            out.status.code() == Some(1),
            "exit {}: {report}",
            out.status
        );
        ensure!(
            count(&report, "downloaded")? == 3 && count(&report, "failed")? == 0,
            "the good crates did not all mirror: {report}"
        );
        ensure!(
            count(&report, "index_errors")? == bad.len() as u64,
            "{} bad lines, {report}",
            bad.len()
        );
        for (name, vers, cksum) in &good {
            let name: CrateName = name.parse()?;
            let vers: Version = vers.parse()?;
            let path = dest.join(crate_path(&name, &vers));
            let bytes = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
            ensure!(
                &format!("{:x}", Sha256::digest(bytes)) == cksum,
                "{name} {vers}: wrong bytes"
            );
        }
        ensure!(
            snapshot(&dir, &dest)? == before,
            "something outside --dest changed"
        );
        *self
            .figures
            .hostile
            .entry("hostile index lines (escapes, look-alikes, NUL, 8 MB line, invalid UTF-8, duplicates)")
            .or_default() += bad.len() as u32;
        Ok(())
    }

    /// Hostile answers the CLI cannot be given in reasonable time (its size limit is 1 GiB),
    /// through `Fetcher` with small limits: an endless body, a gzip bomb, a stall past the
    /// stall timeout, a body that drips too slowly.
    fn hostile_fetch(&mut self) -> anyhow::Result<()> {
        let server = self.server();
        let v = &self.registry.versions[5];
        let path = format!("/crates/{0}/{0}-{1}.crate", v.name(), v.vers());
        let mut options =
            FetchOptions::new(DlTemplate::new(&server.dl_cdn_template()).context("a template")?);
        options.contact = Some("soak@example.invalid".into());
        options.max_size = 16 << 20;
        options.max_attempts = 2;
        options.backoff_initial = Duration::from_millis(10);
        options.stall_timeout = Duration::from_millis(500);
        // Long enough for the server to build a bomb (in a debug build); the slow first byte
        // case shortens it.
        options.read_timeout = Duration::from_secs(20);
        let bomb = gzip_zeros(1 << 30);
        let cases: [(&'static str, Fault, FetchErrorKind); 4] = [
            (
                "endless body, library",
                Fault::Endless,
                FetchErrorKind::TooLarge,
            ),
            (
                "gzip bomb (1 GiB expanded), library",
                Fault::GzipBomb { size: 1 << 30 },
                FetchErrorKind::ChecksumMismatch {
                    expected: *v.cksum(),
                    actual: Checksum::from_bytes(Sha256::digest(&bomb).into()),
                },
            ),
            (
                "stall past the stall timeout, library",
                Fault::Stall {
                    after: 10,
                    duration: Duration::from_secs(3),
                },
                FetchErrorKind::Timeout,
            ),
            (
                "slow first byte past the read timeout, library",
                Fault::SlowFirstByte(Duration::from_secs(3)),
                FetchErrorKind::Timeout,
            ),
        ];
        let download = Download::new(v.name(), v.vers(), v.cksum());
        let mut tried = Vec::new();
        for (what, fault, kind) in cases {
            let mut options = options.clone();
            if matches!(fault, Fault::SlowFirstByte(_)) {
                options.read_timeout = Duration::from_millis(500);
            }
            let fetcher = Fetcher::new(options).context("a fetcher")?;
            server.inject(&path, fault);
            let started = Instant::now();
            let mut sink = Vec::new();
            let result = self.rt.block_on(fetcher.fetch(&download, &mut sink));
            let error = match result {
                Ok(_) => bail!("{what}: verified"),
                Err(e) => e,
            };
            ensure!(error.kind() == &kind, "{what}: {error}");
            ensure!(sink.len() <= 16 << 20, "{what}: {} bytes kept", sink.len());
            ensure!(
                started.elapsed() < Duration::from_secs(30),
                "{what}: took {:?}",
                started.elapsed()
            );
            tried.push(what);
        }
        server.clear_faults();
        tried.extend(self.hostile_raw()?);
        for what in tried {
            *self.figures.hostile.entry(what).or_default() += 1;
        }
        Ok(())
    }

    /// Answers no well-behaved server gives, from a hand-written HTTP/1.1 server: redirect
    /// loops, a redirect past the limit and one to `ftp:`, a body longer than its
    /// `Content-Length`, and a body that drips a byte every 50 ms.
    fn hostile_raw(&self) -> anyhow::Result<Vec<&'static str>> {
        let v = &self.registry.versions[7];
        let file = std::fs::read(&v.crate_file)?;
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let served = std::sync::Arc::new(file.clone());
        let task = self.rt.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(raw_answer(socket, std::sync::Arc::clone(&served)));
            }
        });
        let cases: [(&'static str, &str, Option<FetchErrorKind>); 6] = [
            (
                "redirect loop, library",
                "loop",
                Some(FetchErrorKind::RedirectLoop),
            ),
            (
                "redirects past the limit, library",
                "hop0",
                Some(FetchErrorKind::RedirectLoop),
            ),
            (
                "redirect to ftp:, library",
                "ftp",
                Some(FetchErrorKind::BadRedirect),
            ),
            ("body longer than its content-length, library", "long", None),
            ("slow drip, library", "drip", Some(FetchErrorKind::Timeout)),
            (
                "no body after the head, library",
                "mute",
                Some(FetchErrorKind::Timeout),
            ),
        ];
        let download = Download::new(v.name(), v.vers(), v.cksum());
        let mut tried = Vec::new();
        for (what, case, kind) in cases {
            let dl = format!("http://{addr}/{case}/{{crate}}-{{version}}.crate");
            let mut options = FetchOptions::new(DlTemplate::new(&dl).context("a template")?);
            options.contact = Some("soak@example.invalid".into());
            options.max_attempts = 2;
            options.backoff_initial = Duration::from_millis(10);
            options.stall_timeout = Duration::from_millis(500);
            options.read_timeout = Duration::from_millis(500);
            let fetcher = Fetcher::new(options).context("a fetcher")?;
            let started = Instant::now();
            let mut sink = Vec::new();
            let result = self.rt.block_on(fetcher.fetch(&download, &mut sink));
            match (result, kind) {
                (Ok(verified), None) => ensure!(
                    sink == file && verified.len == file.len() as u64,
                    "{what}: bytes past the declared length were kept"
                ),
                (Err(e), Some(kind)) => ensure!(e.kind() == &kind, "{what}: {e}"),
                (Ok(_), Some(kind)) => bail!("{what}: verified, expected {kind}"),
                (Err(e), None) => bail!("{what}: {e}"),
            }
            ensure!(
                started.elapsed() < Duration::from_secs(30),
                "{what}: took {:?}",
                started.elapsed()
            );
            tried.push(what);
        }
        task.abort();
        Ok(tried)
    }

    /// Phase 4: `--dest` on a tmpfs half the size of the mirror.
    fn full_disk(&mut self) -> anyhow::Result<()> {
        eprintln!("==> full disk: --dest on a small tmpfs");
        self.fresh_dest()?;
        std::fs::create_dir_all(&self.dest)?;
        let size = self.figures.bytes / 2;
        let dest = self.dest.clone();
        let mount = move |options: &str| -> anyhow::Result<()> {
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", options, "tmpfs"])
                .arg(&dest)
                .output()
                .context("running mount")?;
            ensure!(
                out.status.success(),
                "the full-disk scenario needs to mount a tmpfs (run the soak as root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(())
        };
        mount(&format!("size={size}"))?;
        let result = self.full_disk_mounted(size, &mount);
        let _ = Command::new("umount").arg("-l").arg(&self.dest).status();
        result
    }

    fn full_disk_mounted(
        &mut self,
        size: u64,
        mount: &dyn Fn(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let out = self.run(self.sync_command(&[]))?;
        let report = summary(&out)?;
        ensure!(
            out.status.code() == Some(1),
            "exit {}: {report}",
            out.status
        );
        ensure!(
            text(&out).contains("No space left on device"),
            "the error does not say the disk is full:\n{}",
            text(&out)
        );
        let storage = report["failures"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["kind"] == "storage"));
        ensure!(storage, "no storage failure listed: {report}");
        let tmp = std::fs::read_dir(self.dest.join(".mirror/tmp"))?.count();
        ensure!(tmp == 0, "{tmp} temp files left in .mirror/tmp");
        // The state cannot open on a full disk (sled writes when it opens), so the state side of
        // the check waits until there is room again.
        mount(&format!("remount,size={}", self.figures.bytes * 4))?;
        let (present, verified) = self.check()?;
        ensure!(present < self.n(), "everything fitted on {size} bytes");
        self.figures.full_disk = Some((present, size));
        eprintln!(
            "    {present} of {} versions fitted ({verified} recorded); the disk grown, a re-run completes",
            self.n()
        );
        self.converge()
    }

    fn table(&self) -> String {
        let f = &self.figures;
        let mut t = String::new();
        let mut row = |what: &str, value: String| {
            let _ = writeln!(t, "| {what} | {value} |");
        };
        row(
            "fixture",
            format!(
                "{} versions, {:.1} MB, `--rate {}` `--jobs {}`",
                f.versions,
                f.bytes as f64 / 1e6,
                self.args.rate,
                self.args.jobs
            ),
        );
        row("SIGKILLs of `sync` survived", f.sync_kills.to_string());
        row(
            "SIGKILLs of `verify --repair` survived",
            f.verify_kills.to_string(),
        );
        let stages: Vec<String> = f
            .kills_by_stage
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        row("kills by stage", stages.join(", "));
        row(
            "runs that ended before their kill",
            f.finished_before_kill.to_string(),
        );
        row("files damaged for verify to find", f.damaged.to_string());
        row(
            "states deleted under a partial mirror (its files adopted)",
            f.states_lost.to_string(),
        );
        row(
            "mirror checks (every file hashed, every record checked)",
            f.checks.to_string(),
        );
        row(
            "crash cycles converged to a complete verified mirror",
            f.cycles.to_string(),
        );
        for (target, w) in &f.windows {
            let triggers: Vec<String> =
                w.triggers.iter().map(|(k, n)| format!("{k} {n}")).collect();
            row(
                &format!("SIGKILLs of `{}` inside its window", target.name()),
                format!(
                    "{} ({} within 2 ms of the first step; {}), each followed by a promise check ({} checks); window {} ms; {} runs ended in the window before the kill, {} showed no window",
                    w.kills,
                    w.at_once,
                    triggers.join(", "),
                    w.checks,
                    w.window_ms,
                    w.ended_first,
                    w.no_window
                ),
            );
        }
        if f.pruned_upstream > 0 {
            row(
                "versions removed upstream for the prunes",
                f.pruned_upstream.to_string(),
            );
        }
        row(
            "promise checks (after every kill and every run checked)",
            format!(
                "{}: {} verified records and {} published lines checked, {} excused (damaged by the soak, not yet noticed by a run)",
                f.checks, f.promise_records, f.promise_lines, f.promise_excused
            ),
        );
        row(
            "broken promises (distinct; found by checks, counting repeats)",
            format!("{} ({})", f.violations.len(), f.violation_hits),
        );
        if !f.corruption.is_empty() {
            let mut outcomes: BTreeMap<&str, u32> = BTreeMap::new();
            for case in &f.corruption {
                *outcomes.entry(case.status).or_default() += 1;
            }
            let outcomes: Vec<String> = outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
            row(
                "damaged states (sled files truncated, bits flipped, zeroed)",
                format!(
                    "{}: status {}; recovered (state moved aside, sync) with the promises held, tombstones and base URL rebuilt: {}",
                    f.corruption.len(),
                    outcomes.join(", "),
                    f.corruption.iter().filter(|c| c.recovered).count()
                ),
            );
            for case in &f.corruption {
                row(
                    &format!("damaged state: {}", case.damage),
                    format!(
                        "status {}; recovery {}",
                        case.status,
                        if case.recovered {
                            "converged"
                        } else {
                            "FAILED"
                        }
                    ),
                );
            }
        }
        for flood in &f.floods {
            row(
                &format!("flood: {}", flood.what),
                format!(
                    "{} held; a normal request answered in {} before, {} at once, {} after 12 s",
                    flood.opened,
                    flood::show(flood.before),
                    flood::show(flood.at_once),
                    flood::show(flood.held)
                ),
            );
        }
        let faults: Vec<String> = f.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
        row(
            "faults injected",
            format!(
                "{} of {} requests of the fault phase's syncs: {}",
                f.faults.values().sum::<u64>(),
                f.fault_requests,
                faults.join(", ")
            ),
        );
        let failures: Vec<String> = f
            .failures_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        row(
            "failures listed (kind), all retried by the next run",
            if failures.is_empty() {
                "none".to_owned()
            } else {
                failures.join(", ")
            },
        );
        row(
            "server down in the middle of a sync",
            format!(
                "{:.1} s, restarted on the same port",
                f.outage.as_secs_f64()
            ),
        );
        row(
            "most requests in flight (cap)",
            format!("{} ({})", f.max_in_flight.0, f.max_in_flight.1),
        );
        row(
            "most requests begun in one second (limit)",
            format!("{} ({})", f.max_per_second.0, f.max_per_second.1),
        );
        let hostile: Vec<String> = f.hostile.iter().map(|(k, n)| format!("{k} {n}")).collect();
        row(
            "hostile inputs tried",
            format!(
                "{}: {}",
                f.hostile.values().sum::<u32>(),
                hostile.join("; ")
            ),
        );
        row(
            "full disk",
            match f.full_disk {
                Some((present, size)) => format!(
                    "{present} versions fitted on a {:.1} MB tmpfs; clean stop, exit 1; re-run after growing it completed",
                    size as f64 / 1e6
                ),
                None => "not run".to_owned(),
            },
        );
        row("versions lost", f.lost.to_string());
        let phases: Vec<String> = f
            .phase_times
            .iter()
            .map(|(name, took)| format!("{name} {:.0} s", took.as_secs_f64()))
            .collect();
        row(
            "soak duration",
            format!("{:.0} s ({})", f.took.as_secs_f64(), phases.join(", ")),
        );
        format!("| what | figure |\n|---|---|\n{t}")
    }
}

/// Answers one request of [`Soak::hostile_raw`] by the first segment of its path.
async fn raw_answer(mut socket: tokio::net::TcpStream, file: std::sync::Arc<Vec<u8>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split(' ').nth(1).unwrap_or("/").to_owned();
    let case = target.split('/').nth(1).unwrap_or_default().to_owned();
    let rest = target.splitn(3, '/').nth(2).unwrap_or_default().to_owned();
    let redirect = |to: String| {
        format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n").into_bytes()
    };
    let answer = match case.as_str() {
        "loop" => redirect(target.clone()),
        hop if hop.starts_with("hop") => {
            let n: u32 = hop[3..].parse().unwrap_or(0);
            redirect(format!("/hop{}/{rest}", n + 1))
        }
        "ftp" => redirect(format!("ftp://127.0.0.1/{rest}")),
        "long" => {
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                file.len()
            )
            .into_bytes();
            answer.extend_from_slice(&file);
            answer.extend(std::iter::repeat_n(0x5a, 1 << 20));
            answer
        }
        "drip" => {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..100_000 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if socket.write_all(b"x").await.is_err() {
                    return;
                }
            }
            return;
        }
        "mute" => {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
    };
    let _ = socket.write_all(&answer).await;
    let _ = socket.shutdown().await;
}

/// The figure name of a fault.
fn fault_name(fault: &Fault) -> String {
    match fault {
        Fault::Status(code) => format!("status {code}"),
        Fault::TooManyRequests { .. } => "429 + Retry-After".to_owned(),
        Fault::ServiceUnavailable { .. } => "503 + Retry-After".to_owned(),
        Fault::Reset => "reset".to_owned(),
        Fault::Truncate { .. } => "truncated".to_owned(),
        Fault::Stall { .. } => "stall".to_owned(),
        Fault::WrongBytes => "wrong bytes".to_owned(),
        Fault::SlowFirstByte(_) => "slow first byte".to_owned(),
        Fault::Endless => "endless".to_owned(),
        Fault::GzipBomb { .. } => "gzip bomb".to_owned(),
        other => format!("{other:?}"),
    }
}

/// One index line.
fn line(name: &str, vers: &str, cksum: &str) -> Vec<u8> {
    format!(
        "{{\"name\":\"{name}\",\"vers\":\"{vers}\",\"deps\":[],\"cksum\":\"{cksum}\",\"features\":{{}},\"yanked\":false}}\n"
    )
    .into_bytes()
}

/// Appends `content` to the file at `path`, creating it and its parents.
fn append(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut old = std::fs::read(path).unwrap_or_default();
    old.extend_from_slice(content);
    std::fs::write(path, old).with_context(|| format!("writing {}", path.display()))
}

/// Every path under `root` but `skip`, relative, with file contents hashed.
fn snapshot(root: &Path, skip: &Path) -> anyhow::Result<BTreeSet<(PathBuf, String)>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if path == skip {
                continue;
            }
            let rel = path.strip_prefix(root)?.to_owned();
            if entry.file_type()?.is_dir() {
                stack.push(path);
                out.insert((rel, "dir".to_owned()));
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.insert((rel, format!("{:x}", Sha256::digest(bytes))));
            }
        }
    }
    Ok(out)
}
