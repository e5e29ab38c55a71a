//! `cargo xtask bench index`: reads and parses the synthetic crates.io-scale index (`cargo xtask
//! fixtures --synthetic`) from its directory and from git, and compares each with just reading the
//! same bytes. Every measured phase runs in its own child process (the release build of this
//! binary, with the hidden `--phase`), so that each phase's peak memory is its own.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mirror_index::{DirIndex, GitIndex, IndexFile, ReadOptions};

use super::common::{AnonSampler, machine, today, vm_hwm_kb, write_section};
use crate::common::target_dir;

/// Arguments of `cargo xtask bench index`.
#[derive(clap::Args)]
pub(super) struct IndexArgs {
    /// The fixtures directory (`cargo xtask fixtures --out`), relative to the workspace root.
    #[arg(long, default_value = "target/fixtures")]
    fixtures: PathBuf,
    /// Worker threads for every phase; 0 means one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Runs of each phase; the fastest is reported (after one unmeasured warm-up of the caches).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print the results without rewriting docs/benchmarks.md.
    #[arg(long)]
    no_docs: bool,
    /// Internal: run one phase in this process and print its result as JSON.
    #[arg(long, hide = true)]
    phase: Option<Phase>,
    /// Internal: the bare clone the git phases read.
    #[arg(long, hide = true)]
    repo: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Read every index file of the directory, no parsing.
    DirRead,
    /// `DirIndex::read_all`.
    DirParse,
    /// `GitIndex::open_or_clone` from the fixture's bare repository (`file://`).
    GitClone,
    /// Read every index blob of the git tree, no parsing.
    GitRead,
    /// `GitIndex::read_all`.
    GitParse,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::DirRead => "dir-read",
            Phase::DirParse => "dir-parse",
            Phase::GitClone => "git-clone",
            Phase::GitRead => "git-read",
            Phase::GitParse => "git-parse",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Phase::DirRead => "directory: read bytes (baseline)",
            Phase::DirParse => "directory: `DirIndex::read_all`",
            Phase::GitClone => "git: bare clone over `file://` (setup, only when not reusable)",
            Phase::GitRead => "git: read blobs (baseline)",
            Phase::GitParse => "git: `GitIndex::read_all`",
        }
    }
}

/// What one phase measured.
#[derive(Clone, Debug, Default)]
struct Measure {
    files: u64,
    lines: u64,
    bytes: u64,
    bad_lines: u64,
    wall: Duration,
    /// VmHWM: the peak resident set, file-backed pages (the mapped pack) included.
    peak_rss_kb: u64,
    /// Peak of resident minus shared pages, sampled every few milliseconds: the heap.
    peak_anon_kb: u64,
}

impl Measure {
    fn to_json(&self, phase: Phase) -> String {
        format!(
            "{{\"phase\":\"{}\",\"files\":{},\"lines\":{},\"bytes\":{},\"bad_lines\":{},\"wall_us\":{},\"peak_rss_kb\":{},\"peak_anon_kb\":{}}}",
            phase.name(),
            self.files,
            self.lines,
            self.bytes,
            self.bad_lines,
            self.wall.as_micros(),
            self.peak_rss_kb,
            self.peak_anon_kb
        )
    }

    fn from_json(text: &str) -> anyhow::Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .with_context(|| format!("parsing a phase result: {text:?}"))?;
        let n = |k: &str| {
            v[k].as_u64()
                .with_context(|| format!("{k} missing in {text:?}"))
        };
        Ok(Measure {
            files: n("files")?,
            lines: n("lines")?,
            bytes: n("bytes")?,
            bad_lines: n("bad_lines")?,
            wall: Duration::from_micros(n("wall_us")?),
            peak_rss_kb: n("peak_rss_kb")?,
            peak_anon_kb: n("peak_anon_kb")?,
        })
    }
}

pub(super) fn run(args: IndexArgs) -> anyhow::Result<()> {
    match args.phase {
        Some(phase) => child(phase, &args),
        None => parent(&args),
    }
}

fn threads(requested: usize) -> usize {
    match requested {
        0 => std::thread::available_parallelism().map_or(2, usize::from),
        n => n,
    }
}

/// Builds the release binary, prepares the clone, runs every phase in a child and reports.
fn parent(args: &IndexArgs) -> anyhow::Result<()> {
    let root = crate::common::workspace_root();
    let fixtures = root.join(&args.fixtures);
    let synthetic = fixtures.join("synthetic");
    let summary_path = synthetic.join("summary.json");
    let summary: serde_json::Value = match std::fs::read(&summary_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", summary_path.display()))?,
        Err(_) => bail!(
            "no synthetic index in {}: run `cargo xtask fixtures --synthetic` first",
            synthetic.display()
        ),
    };
    let Some(commit) = summary["commit"].as_str() else {
        bail!(
            "{} has no git commit: regenerate it with git",
            summary_path.display()
        );
    };

    // Measurements of a debug build would say nothing; build and re-run ourselves in release.
    let exe = crate::fixtures::release_binary()?;
    let target = target_dir(&root);
    let clone = target.join("bench").join("synthetic-clone.git");
    let threads = threads(args.threads);

    let run_phase = |phase: Phase| -> anyhow::Result<Measure> {
        let output = Command::new(&exe)
            .args(["bench", "index", "--phase", phase.name(), "--threads"])
            .arg(threads.to_string())
            .arg("--fixtures")
            .arg(&fixtures)
            .arg("--repo")
            .arg(&clone)
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        if !output.status.success() {
            bail!(
                "phase {} failed ({}): {}",
                phase.name(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        Measure::from_json(stdout.lines().last().unwrap_or_default())
    };

    // The clone is reused while it holds the fixture's commit; a stale one is made again.
    let mut clone_measure = None;
    if clone_commit(&clone).as_deref() != Some(commit) {
        if clone.exists() {
            std::fs::remove_dir_all(&clone)
                .with_context(|| format!("removing {}", clone.display()))?;
        }
        eprintln!("==> cloning the synthetic index into {}", clone.display());
        clone_measure = Some(run_phase(Phase::GitClone)?);
    }

    let phases = [
        Phase::DirRead,
        Phase::DirParse,
        Phase::GitRead,
        Phase::GitParse,
    ];
    eprintln!("==> warming the page cache");
    for phase in [Phase::DirRead, Phase::GitRead] {
        run_phase(phase)?;
    }
    let mut results = Vec::new();
    for phase in phases {
        let mut best: Option<Measure> = None;
        let mut peak = (0, 0);
        for run in 1..=args.runs.max(1) {
            let m = run_phase(phase)?;
            eprintln!(
                "{:<10} run {run}: {:>7.2} s, {:>5} MB peak RSS",
                phase.name(),
                m.wall.as_secs_f64(),
                m.peak_rss_kb / 1024
            );
            peak = (peak.0.max(m.peak_rss_kb), peak.1.max(m.peak_anon_kb));
            if best.as_ref().is_none_or(|b| m.wall < b.wall) {
                best = Some(m);
            }
        }
        let mut best = best.expect("at least one run");
        // Memory is reported as the worst run, time as the best.
        (best.peak_rss_kb, best.peak_anon_kb) = peak;
        results.push((phase, best));
    }

    let report = report(
        &results,
        clone_measure.as_ref(),
        &summary,
        threads,
        args.runs,
    );
    println!("{report}");
    if !args.no_docs {
        write_section("index", &index_section(&report, threads, args.runs))?;
    }
    Ok(())
}

/// The commit the bench clone holds, if it is a complete clone.
fn clone_commit(clone: &Path) -> Option<String> {
    let url = String::new();
    if !clone.join("HEAD").exists() {
        return None;
    }
    // `open_or_clone` on an existing, fetched repository only opens it.
    let index = GitIndex::open_or_clone(&url, clone).ok()?;
    Some(index.head().ok()??.commit.to_string())
}

/// The results as a markdown table, with the goals checked.
fn report(
    results: &[(Phase, Measure)],
    clone: Option<&Measure>,
    summary: &serde_json::Value,
    threads: usize,
    runs: usize,
) -> String {
    let get = |p: Phase| results.iter().find(|(q, _)| *q == p).map(|(_, m)| m);
    let mut out = format!(
        "Synthetic index: {} crates, {} lines, {:.2} GB (seed {}, commit {}); {threads} threads; best of {runs} runs, memory the worst run.\n\n",
        summary["crates"],
        summary["lines"],
        summary["bytes"].as_f64().unwrap_or(0.0) / 1e9,
        summary["seed"],
        summary["commit"].as_str().unwrap_or("-"),
    );
    out.push_str(
        "| phase | wall | lines/s | MB/s | peak RSS | peak heap | vs. reading bytes |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (phase, m) in results {
        let secs = m.wall.as_secs_f64().max(1e-9);
        let baseline = match phase {
            Phase::DirParse => get(Phase::DirRead),
            Phase::GitParse => get(Phase::GitRead),
            _ => None,
        };
        let ratio = baseline.map_or("1.00x (baseline)".into(), |b| {
            format!("{:.2}x", secs / b.wall.as_secs_f64().max(1e-9))
        });
        out.push_str(&format!(
            "| {} | {:.2} s | {:.2} M | {:.0} | {} MB | {} MB | {ratio} |\n",
            phase.describe(),
            secs,
            m.lines as f64 / secs / 1e6,
            m.bytes as f64 / secs / 1e6,
            m.peak_rss_kb / 1024,
            m.peak_anon_kb / 1024,
        ));
    }
    if let Some(m) = clone {
        out.push_str(&format!(
            "| {} | {:.2} s | | | {} MB | {} MB | |\n",
            Phase::GitClone.describe(),
            m.wall.as_secs_f64(),
            m.peak_rss_kb / 1024,
            m.peak_anon_kb / 1024
        ));
    }
    if let (Some(parse), Some(read)) = (get(Phase::GitParse), get(Phase::GitRead)) {
        let secs = parse.wall.as_secs_f64();
        let ratio = secs / read.wall.as_secs_f64().max(1e-9);
        let mark = |ok: bool| if ok { "met" } else { "MISSED" };
        out.push_str(&format!(
            "\nGoals (whole git index read and parsed): time {:.1} s ≤ 10 s {}; peak RSS {} MB ≤ 300 MB {} (heap alone {} MB); parsing {:.2}x ≤ 2x the bare read {}.\n",
            secs,
            mark(secs <= 10.0),
            parse.peak_rss_kb / 1024,
            mark(parse.peak_rss_kb <= 300 * 1024),
            parse.peak_anon_kb / 1024,
            ratio,
            mark(ratio <= 2.0),
        ));
        let bad: u64 = results.iter().map(|(_, m)| m.bad_lines).sum();
        if bad > 0 {
            out.push_str(&format!("\nWarning: {bad} bad lines were reported.\n"));
        }
        if parse.lines != read.lines {
            out.push_str(&format!(
                "\nWarning: git-parse saw {} lines, git-read {}.\n",
                parse.lines, read.lines
            ));
        }
    }
    out
}

/// The index section of docs/benchmarks.md, without its markers.
fn index_section(report: &str, threads: usize, runs: usize) -> String {
    let date = today();
    let machine = machine();
    format!(
        "## Reading the crates.io-scale index

- Command: `cargo xtask fixtures --synthetic && cargo xtask bench index --threads {threads} --runs {runs}`
- Date: {date}
- Machine: {machine} when the report was
  written (other work on the machine slows the phases unevenly)

{report}
How it is measured:

- The index is the synthetic one of `cargo xtask fixtures` (deterministic from its seed), as a
  sparse-layout directory and as a bare git repository made by `git fast-import` (blobs stored
  whole, as in a fresh clone's newest objects). The git phases read a bare clone of it made by
  `GitIndex::open_or_clone` over `file://`, the way `mirror-cli` gets its index.
- Each phase runs in its own process (the release build of xtask), after one unmeasured run
  that warms the page cache: these are CPU numbers, not disk numbers.
- *Baseline* phases read the same bytes with the same number of threads and no parsing (they count
  newlines, which costs nothing next to the read): every index file of the directory, or every index
  blob of the tree, after listing the tree the same way `GitIndex` does.
- *Peak RSS* is `VmHWM` at the end of the phase's process. For git it includes the pages of the
  memory-mapped pack file that were touched; those belong to the page cache and are given back
  under pressure. *Peak heap* is resident minus shared memory, sampled every 5 ms.
"
    )
}

/// Runs one phase in this (release) process and prints its [`Measure`] as one JSON line.
fn child(phase: Phase, args: &IndexArgs) -> anyhow::Result<()> {
    let synthetic = args.fixtures.join("synthetic");
    let dir = synthetic.join("dir");
    let repo = args
        .repo
        .clone()
        .context("--repo is required for a phase")?;
    let threads = threads(args.threads);
    let sampler = AnonSampler::start();
    let started = Instant::now();
    let mut m = match phase {
        Phase::DirRead => dir_read(&dir, threads)?,
        Phase::DirParse => {
            let index = DirIndex::open(&dir)?;
            parse_all(|sink| index.read_all(&ReadOptions::with_threads(threads), sink))?
        }
        Phase::GitClone => {
            let source = std::fs::canonicalize(synthetic.join("index.git"))?;
            let url = format!("file://{}", source.display());
            let index = GitIndex::open_or_clone(&url, &repo)?;
            index.head()?.context("the clone has no tip")?;
            Measure::default()
        }
        Phase::GitRead => git_read(&repo, threads)?,
        Phase::GitParse => {
            let index = GitIndex::open_or_clone("", &repo)?;
            let tip = index.head()?.context("the clone has no tip")?;
            parse_all(|sink| index.read_all(&tip.tree, &ReadOptions::with_threads(threads), sink))?
        }
    };
    m.wall = started.elapsed();
    m.peak_anon_kb = sampler.stop();
    m.peak_rss_kb = vm_hwm_kb();
    println!("{}", m.to_json(phase));
    Ok(())
}

/// Runs a `read_all` and counts what it hands out.
fn parse_all(
    read: impl FnOnce(&mut dyn FnMut(IndexFile)) -> Result<mirror_index::ReadStats, mirror_index::Error>,
) -> anyhow::Result<Measure> {
    let mut m = Measure::default();
    let stats = read(&mut |file: IndexFile| {
        m.files += 1;
        m.lines += file.entries.len() as u64;
        m.bad_lines += file.problems.len() as u64;
    })?;
    m.bytes = stats.bytes;
    Ok(m)
}

/// Hands out `items` to `threads` workers in small chunks; each worker has its own state from
/// `init`. Returns (files, lines, bytes).
fn parallel_read<T: Sync, S>(
    items: &[T],
    threads: usize,
    init: impl Fn() -> anyhow::Result<S> + Sync,
    read: impl Fn(&mut S, &T) -> anyhow::Result<Vec<u8>> + Sync,
) -> anyhow::Result<Measure> {
    const CHUNK: usize = 64;
    let next = AtomicUsize::new(0);
    let lines = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let result = (|| -> anyhow::Result<()> {
                    let mut state = init()?;
                    loop {
                        let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                        if start >= items.len() {
                            return Ok(());
                        }
                        for item in &items[start..(start + CHUNK).min(items.len())] {
                            let data = read(&mut state, item)?;
                            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                            lines.fetch_add(
                                memchr::memchr_iter(b'\n', &data).count() as u64,
                                Ordering::Relaxed,
                            );
                        }
                    }
                })();
                if let Err(e) = result {
                    *error.lock().expect("no panics while holding it") = Some(e);
                }
            });
        }
    });
    if let Some(e) = error.into_inner().expect("no panics while holding it") {
        return Err(e);
    }
    Ok(Measure {
        files: items.len() as u64,
        lines: lines.into_inner(),
        bytes: bytes.into_inner(),
        ..Measure::default()
    })
}

fn dir_read(dir: &Path, threads: usize) -> anyhow::Result<Measure> {
    let paths = DirIndex::open(dir)?.list_paths()?;
    parallel_read(
        &paths,
        threads,
        || Ok(Vec::with_capacity(1 << 16)),
        |buf: &mut Vec<u8>, rel: &String| {
            buf.clear();
            let path = dir.join(rel);
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_end(buf))
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(std::mem::take(buf))
        },
    )
}

/// Reads every index blob of the clone's tip without parsing: the tree is listed and the blobs
/// are loaded the way `GitIndex` does it (thread-local handles, no object cache, a bounded pack
/// cache), so the difference to `git-parse` is the parsing.
fn git_read(repo_dir: &Path, threads: usize) -> anyhow::Result<Measure> {
    let index = GitIndex::open_or_clone("", repo_dir)?;
    let tip = index.head()?.context("the clone has no tip")?;
    let tree = gix::ObjectId::from_hex(tip.tree.to_string().as_bytes())?;
    let shared = gix::open(repo_dir)?.into_sync();
    let repo = shared.to_thread_local();
    let mut blobs = Vec::new();
    let mut stack = vec![(tree, String::new())];
    while let Some((id, rel)) = stack.pop() {
        let tree = repo.find_tree(id)?;
        for entry in tree.iter() {
            let entry = entry?;
            let name = entry.inner.filename.to_string();
            if name.starts_with('.') {
                continue;
            }
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if entry.inner.mode.is_tree() {
                stack.push((entry.object_id(), child));
            } else if entry.inner.mode.is_blob() && !rel.is_empty() {
                blobs.push((child, entry.object_id()));
            }
        }
    }
    blobs.sort_unstable();
    parallel_read(
        &blobs,
        threads,
        || {
            let mut repo = shared.to_thread_local();
            repo.object_cache_size(None);
            repo.objects.set_pack_cache(|| {
                Box::new(gix::odb::pack::cache::lru::StaticLinkedList::<64>::new(
                    32 << 20,
                ))
            });
            Ok(repo)
        },
        |repo: &mut gix::Repository, (_, id): &(String, gix::ObjectId)| {
            Ok(repo.find_blob(*id)?.take_data())
        },
    )
}
