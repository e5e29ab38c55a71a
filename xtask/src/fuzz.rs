//! `cargo xtask fuzz`: runs the cargo-fuzz (libFuzzer) targets in `fuzz/` for a time budget each,
//! one after the other, and fails when one of them finds a crash, naming the artifact.
//!
//! How this runs with only stable Rust (1.95.0 is the one toolchain here; no nightly can be
//! downloaded): `cargo fuzz run --sanitizer none`. cargo-fuzz's default sanitizer, address, needs
//! the nightly-only `-Zsanitizer`; with `none`, every flag cargo-fuzz passes to rustc is stable
//! (`-Cpasses=sancov-module`, `-Cllvm-args=-sanitizer-coverage-*`, `--cfg fuzzing`,
//! `-Cdebug-assertions`, overflow checks), so neither nightly nor `RUSTC_BOOTSTRAP=1` is needed.
//! The `libfuzzer-sys` crate compiles libFuzzer's C++ with the system C++ compiler (g++ here;
//! clang is not needed). What we give up is AddressSanitizer, which would only watch the `unsafe`
//! code of our dependencies: the workspace denies `unsafe_code`, and the targets still catch every
//! panic, failed assertion, overflow and debug assertion.
//!
//! Corpora: libFuzzer writes the new inputs it finds into the first corpus directory it is given,
//! so each target runs with a scratch directory first (`fuzz/target/corpus/<target>`, kept
//! between runs so that coverage accumulates, never committed) and the committed corpus second
//! (`fuzz/corpus/<target>`: seeds and every input that once crashed a target), which it only
//! reads. Crashes are written to `fuzz/artifacts/<target>/`; once the bug is fixed, copy the
//! artifact into `fuzz/corpus/<target>/` so every later run replays it.
//!
//! One fuzzer process at a time, single-threaded (libFuzzer's default; no `-jobs`/`-workers`):
//! the machine is shared. Not part of `cargo xtask ci`: the instrumented release build alone takes
//! minutes, and fuzzing is open-ended.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

/// The fuzz targets, in the order they run (the `[[bin]]`s of `fuzz/Cargo.toml`).
const TARGETS: [&str; 5] = [
    "index_line",
    "index_file",
    "dl_template",
    "state_record",
    "index_config",
];

/// How long one input may take before libFuzzer reports it as a timeout (a hang is a bug too).
/// Generous, since the machine is shared and inputs are a few KB.
const TIMEOUT_SECONDS: u64 = 10;

/// Arguments of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Run only this target (default: every target, one after the other).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    target: Option<String>,
    /// Seconds of fuzzing per target, not counting the build. 0 only replays the corpora.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

/// What one target's run found, from libFuzzer's final statistics.
#[derive(Debug, Default)]
struct Outcome {
    target: &'static str,
    seconds: Option<u64>,
    executions: Option<u64>,
    execs_per_sec: Option<u64>,
    /// Inputs in the committed corpus (`fuzz/corpus/<target>`).
    seeds: usize,
    /// Inputs libFuzzer kept in memory at the end (`corp:` of its last status line).
    corpus: Option<u64>,
    /// Coverage counters hit (`cov:` of the last status line).
    coverage: Option<u64>,
    /// Crash, timeout and out-of-memory inputs written during the run.
    artifacts: Vec<PathBuf>,
    /// Whether `cargo fuzz run` exited successfully.
    success: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let (table, problems) = fuzz(args.target.as_deref(), args.seconds)?;
    println!("{table}");
    if problems.is_empty() {
        return Ok(());
    }
    bail!("fuzzing found problems:\n{}", problems.join("\n"))
}

/// Builds and runs the targets (every one, or `target`) for `seconds` each. Returns the figures
/// as a Markdown table and the problems found (crash inputs with how to replay them, failed
/// runs); for `cargo xtask fuzz` and the fuzzing phase of `cargo xtask soak`.
pub(crate) fn fuzz(target: Option<&str>, seconds: u64) -> anyhow::Result<(String, Vec<String>)> {
    let root = crate::common::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ensure_cargo_fuzz(&cargo)?;

    let targets: Vec<&'static str> = match target {
        Some(t) => TARGETS.iter().copied().filter(|n| *n == t).collect(),
        None => TARGETS.to_vec(),
    };
    // Build everything first, so that a compile error shows before any fuzzing starts.
    let mut build = Command::new(&cargo);
    build
        .args(["fuzz", "build", "--fuzz-dir", "fuzz", "--sanitizer", "none"])
        .args(target)
        .current_dir(&root);
    eprintln!("==> cargo fuzz build (instrumented release build; minutes the first time)");
    let status = build.status().context("running cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }

    let mut outcomes = Vec::new();
    for target in targets {
        outcomes.push(run_target(&cargo, &root, target, seconds)?);
    }
    let mut problems = Vec::new();
    for o in &outcomes {
        if !o.success && o.artifacts.is_empty() {
            problems.push(format!(
                "{}: cargo fuzz run failed without an artifact",
                o.target
            ));
        }
        for artifact in &o.artifacts {
            problems.push(format!(
                "{}: crash input {} (replay: cargo fuzz run --fuzz-dir fuzz --sanitizer none {} {})",
                o.target,
                artifact.display(),
                o.target,
                artifact.display()
            ));
        }
    }
    Ok((table(&outcomes), problems))
}

/// Installs cargo-fuzz unless `cargo fuzz` already works.
fn ensure_cargo_fuzz(cargo: &str) -> anyhow::Result<()> {
    let installed = Command::new(cargo)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    eprintln!("==> cargo install cargo-fuzz --locked");
    let status = Command::new(cargo)
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("running cargo install cargo-fuzz")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(())
}

fn run_target(
    cargo: &str,
    root: &Path,
    target: &'static str,
    seconds: u64,
) -> anyhow::Result<Outcome> {
    let seeds = root.join("fuzz/corpus").join(target);
    let scratch = root.join("fuzz/target/corpus").join(target);
    let artifacts = root.join("fuzz/artifacts").join(target);
    for dir in [&scratch, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let before = list(&artifacts)?;

    // `-max_total_time=0` would mean "no limit"; `-runs=0` replays the corpora and stops.
    let budget = if seconds == 0 {
        "-runs=0".to_owned()
    } else {
        format!("-max_total_time={seconds}")
    };
    let mut command = Command::new(cargo);
    command
        .args([
            "fuzz",
            "run",
            "--fuzz-dir",
            "fuzz",
            "--sanitizer",
            "none",
            target,
        ])
        .arg(&scratch)
        .arg(&seeds)
        .arg("--")
        .arg(budget)
        .arg(format!("-timeout={TIMEOUT_SECONDS}"))
        .arg("-print_final_stats=1")
        .current_dir(root)
        .stderr(Stdio::piped());
    eprintln!(
        "==> cargo fuzz run {target} ({seconds} s, corpus {})",
        seeds.display()
    );
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("running cargo fuzz run {target}"))?;
    let mut outcome = Outcome {
        target,
        seeds: list(&seeds)?.len(),
        ..Outcome::default()
    };
    // libFuzzer reports on stderr: pass every line through and keep the figures.
    let stderr = child.stderr.take().expect("stderr is piped");
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading cargo fuzz output")?;
        eprintln!("{line}");
        read_stats(&line, &mut outcome);
    }
    outcome.success = child.wait().context("waiting for cargo fuzz")?.success();
    // libFuzzer prints no `Done` line when it stops on a crash.
    outcome.seconds = outcome.seconds.or(Some(started.elapsed().as_secs()));
    outcome.artifacts = list(&artifacts)?
        .difference(&before)
        .map(|name| artifacts.join(name))
        .collect();
    Ok(outcome)
}

/// Takes the figures out of one line of libFuzzer's output.
fn read_stats(line: &str, outcome: &mut Outcome) {
    let number = |s: &str| s.trim().parse::<u64>().ok();
    if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
        outcome.executions = number(v);
    } else if let Some(v) = line.strip_prefix("stat::average_exec_per_sec:") {
        outcome.execs_per_sec = number(v);
    } else if let Some(rest) = line.strip_prefix("Done ") {
        // `Done 701398 runs in 6 second(s)`
        let words: Vec<&str> = rest.split_whitespace().collect();
        if let [_, "runs", "in", secs, ..] = words[..] {
            outcome.seconds = number(secs);
        }
    } else if line.starts_with('#') {
        // `#701398	DONE   cov: 123 ft: 456 corp: 100/2Kb lim: 4096 exec/s: ...`
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            match pair[0] {
                "cov:" => outcome.coverage = number(pair[1]),
                "corp:" => outcome.corpus = pair[1].split('/').next().and_then(number),
                _ => {}
            }
        }
    }
}

/// The file names in `dir` (none if it does not exist).
fn list(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        names.insert(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// The figures as a Markdown table, ready for docs/reliability.md.
fn table(outcomes: &[Outcome]) -> String {
    let show = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let mut out = String::from(
        "| target | seconds | executions | exec/s | coverage | seed inputs | corpus at end | crashes |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for o in outcomes {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            o.target,
            show(o.seconds),
            show(o.executions),
            show(o.execs_per_sec),
            show(o.coverage),
            o.seeds,
            show(o.corpus),
            o.artifacts.len()
        ));
    }
    out
}
