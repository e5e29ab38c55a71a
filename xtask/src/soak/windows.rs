//! Kills aimed at the window of `verify`, `verify --repair` and `sync --prune` that lies between
//! their first irreversible step and the end of the run: the first line retracted from the
//! published index, or the first file moved to quarantine. Nothing in `mirror-cli` helps: the
//! soak watches the disk (the index files of the versions it damaged or removed upstream, and
//! the quarantine folder) every millisecond, and kills at once or after a delay drawn over the
//! window's measured length. After every kill the two promises are checked before anything else
//! runs ([`super::promises`]).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use mirror_index::{CrateName, IndexFile, Version, index_path};

use super::{Soak, summary, text};

/// The runs killed in their window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Target {
    Verify,
    Repair,
    Prune,
}

impl Target {
    pub(super) fn name(self) -> &'static str {
        match self {
            Target::Verify => "verify",
            Target::Repair => "verify --repair",
            Target::Prune => "sync --prune",
        }
    }
}

/// Window figures of one target.
#[derive(Default, Clone)]
pub(super) struct WindowFigures {
    /// Kills that landed after the first irreversible step and before the run ended.
    pub(super) kills: u32,
    /// Of those, kills within 2 ms of the first step being seen.
    pub(super) at_once: u32,
    /// Runs that ended inside their window before the kill came.
    pub(super) ended_first: u32,
    /// Runs that ended without an irreversible step the soak could see.
    pub(super) no_window: u32,
    /// The window's length measured on an unkilled run, in ms.
    pub(super) window_ms: u64,
    /// The first irreversible step seen, by kind.
    pub(super) triggers: BTreeMap<&'static str, u32>,
    /// Promise checks made right after these kills.
    pub(super) checks: u32,
}

/// How a run aimed at its window ended.
enum WindowEnd {
    Killed {
        trigger: &'static str,
        after: Duration,
    },
    /// It exited; `window` is the time from its first irreversible step to its end, if seen.
    Exited {
        window: Option<Duration>,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// What the soak watches for a run's first irreversible step.
struct Watch {
    /// Published index files, with what they looked like before the run.
    files: Vec<(PathBuf, Option<Fingerprint>)>,
    quarantine: PathBuf,
    quarantined: usize,
}

/// What tells a file was replaced or changed: inode, size, modification time.
type Fingerprint = (u64, u64, i64, i64);

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

impl Watch {
    fn new(dest: &Path, versions: &[(CrateName, Version)]) -> Watch {
        let paths: BTreeSet<PathBuf> = versions
            .iter()
            .map(|(name, _)| dest.join("index").join(index_path(name)))
            .collect();
        let quarantine = dest.join(".mirror/quarantine");
        Watch {
            files: paths
                .into_iter()
                .map(|p| {
                    let f = fingerprint(&p);
                    (p, f)
                })
                .collect(),
            quarantined: entries(&quarantine),
            quarantine,
        }
    }

    /// The first irreversible step, once one happened.
    fn seen(&self) -> Option<&'static str> {
        if entries(&self.quarantine) > self.quarantined {
            return Some("first file quarantined");
        }
        self.files
            .iter()
            .any(|(path, before)| fingerprint(path) != *before)
            .then_some("first index line retracted")
    }
}

impl Soak {
    /// Runs `command` and SIGKILLs it `delay` after `watch` saw its first irreversible step
    /// (`None`: never), unless it ended first.
    fn run_in_window(
        &self,
        mut command: Command,
        watch: &Watch,
        delay: Option<Duration>,
    ) -> anyhow::Result<WindowEnd> {
        let log = self.work.join("window.stderr");
        let mut child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting mirror-cli")?;
        let mut seen: Option<(&'static str, Instant)> = None;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(WindowEnd::Exited {
                    window: seen.map(|(_, at)| at.elapsed()),
                    status,
                    stderr: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            if seen.is_none() {
                seen = watch.seen().map(|what| (what, Instant::now()));
            }
            if let (Some((trigger, at)), Some(delay)) = (seen, delay)
                && at.elapsed() >= delay
            {
                child.kill().context("killing mirror-cli")?;
                let status = child.wait()?;
                // Exited on its own between the last poll and the kill: not a kill.
                if status.code().is_some() {
                    return Ok(WindowEnd::Exited {
                        window: Some(at.elapsed()),
                        status,
                        stderr: std::fs::read_to_string(&log).unwrap_or_default(),
                    });
                }
                return Ok(WindowEnd::Killed {
                    trigger,
                    after: at.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Phase: `--window-kills` kills of each of `verify`, `verify --repair` and `sync --prune`
    /// inside their window, the promises checked after each.
    pub(super) fn windows(&mut self) -> anyhow::Result<()> {
        eprintln!("==> windows: a converged mirror to start from");
        self.fresh_dest()?;
        self.converge()?;
        for target in [Target::Verify, Target::Repair, Target::Prune] {
            eprintln!(
                "==> windows: {} kills of `{}` after its first irreversible step",
                self.limits.window_kills,
                target.name()
            );
            let mut round = 0u32;
            let mut calibrated = false;
            while self.window(target).kills < self.limits.window_kills {
                round += 1;
                ensure!(
                    round <= self.limits.window_kills * 4 + 4,
                    "`{}`: only {} kills landed in its window in {} rounds",
                    target.name(),
                    self.window(target).kills,
                    round - 1
                );
                match target {
                    Target::Verify | Target::Repair => self.verify_round(target, calibrated)?,
                    Target::Prune => self.prune_round(round, calibrated)?,
                }
                calibrated = true;
            }
            // The target's rounds end with the complete verified mirror.
            self.context = format!("after the `{}` window kills", target.name());
            if target != Target::Prune {
                let out = self.run(self.verify_command(&["--repair"]))?;
                ensure!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "verify --repair ended with {}: {}",
                    out.status,
                    text(&out)
                );
                self.check()?;
            }
            self.converge()?;
            self.forget_mended();
            ensure!(
                self.damaged.files.is_empty(),
                "damaged files left after the mirror converged: {:?}",
                self.damaged.files
            );
        }
        Ok(())
    }

    pub(super) fn window(&mut self, target: Target) -> &mut WindowFigures {
        self.figures.windows.entry(target).or_default()
    }

    /// The delay after the first irreversible step: at once for half the kills (the state
    /// writes not yet on disk), else drawn over the window's measured length.
    fn window_delay(&mut self, target: Target) -> Duration {
        let window_ms = self.window(target).window_ms.max(5);
        if self.rng.next_u64().is_multiple_of(2) {
            Duration::ZERO
        } else {
            Duration::from_micros((self.rng.unit() * window_ms as f64 * 1000.0) as u64)
        }
    }

    /// Notes how a windowed run ended; after a kill (or any end), checks the promises.
    fn window_end(&mut self, target: Target, end: WindowEnd) -> anyhow::Result<()> {
        match end {
            WindowEnd::Killed { trigger, after } => {
                let w = self.window(target);
                w.kills += 1;
                if after <= Duration::from_millis(2) {
                    w.at_once += 1;
                }
                *w.triggers.entry(trigger).or_default() += 1;
                w.checks += 1;
                let n = w.kills;
                self.context = format!(
                    "`{}` killed {:.1} ms after its {trigger} (window kill {n})",
                    target.name(),
                    after.as_secs_f64() * 1000.0
                );
                self.note_kill(format!("{} window", target.name()));
            }
            WindowEnd::Exited {
                window,
                status,
                stderr,
            } => {
                ensure!(
                    matches!(status.code(), Some(0 | 1)),
                    "`{}` ended with {status}: {stderr}",
                    target.name()
                );
                let w = self.window(target);
                match window {
                    Some(_) => w.ended_first += 1,
                    None => w.no_window += 1,
                }
                self.context = format!("`{}` that ran to its end", target.name());
            }
        }
        self.check()?;
        Ok(())
    }

    /// One round of a verify target: fresh damage, the run aimed at its window, the promises
    /// checked; every second round a `sync --full` and every fourth a plain `sync` follow (each
    /// checked), as a cron job would run them after the crash.
    fn verify_round(&mut self, target: Target, calibrated: bool) -> anyhow::Result<()> {
        let picked = self.damage()?;
        let versions: Vec<(CrateName, Version)> = picked
            .iter()
            .filter_map(|rel| self.version_of(rel))
            .collect();
        let watch = Watch::new(&self.dest, &versions);
        let extra: &[&str] = if target == Target::Repair {
            &["--repair"]
        } else {
            &[]
        };
        let delay = calibrated.then(|| self.window_delay(target));
        let end = self.run_in_window(self.verify_command(extra), &watch, delay)?;
        if let (false, WindowEnd::Exited { window, .. }) = (calibrated, &end) {
            let ms = window.map_or(0, |w| w.as_millis() as u64);
            self.window(target).window_ms = ms;
            eprintln!("    `{}`: its window lasts {ms} ms", target.name());
        }
        let round = self.window(target).kills + self.window(target).ended_first;
        self.window_end(target, end)?;
        self.forget_mended();
        for (every, args, what) in [(2, &["--full"][..], "sync --full"), (4, &[][..], "sync")] {
            if round % every == every - 1 {
                self.context = format!("a `{what}` after a `{}` round", target.name());
                let out = self.run(self.sync_command(args))?;
                ensure!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "`{what}` ended with {}: {}",
                    out.status,
                    text(&out)
                );
                self.check()?;
                self.forget_mended();
            }
        }
        Ok(())
    }

    /// The version whose crate file is `rel` (a path under the mirror root).
    fn version_of(&self, rel: &Path) -> Option<(CrateName, Version)> {
        self.registry
            .versions
            .iter()
            .find(|v| super::crate_path(v.name(), v.vers()) == rel)
            .map(|v| (v.name().clone(), v.vers().clone()))
    }

    /// One round of `sync --prune`: versions removed upstream (a whole crate and a few versions
    /// of others), in a new commit of the git index on odd rounds and in a directory index given
    /// as a new `--index` on even ones; the prune aimed at its window and checked; a second
    /// prune must finish the job; then the index is whole again and the mirror converges.
    fn prune_round(&mut self, round: u32, calibrated: bool) -> anyhow::Result<()> {
        let tree = self.work.join("prune-tree");
        if tree.exists() {
            std::fs::remove_dir_all(&tree)?;
        }
        super::promises::copy_dir(&self.registry.sparse, &tree)?;
        let removed = self.remove_upstream(&tree)?;
        let new_source = round.is_multiple_of(2);
        let index = if new_source {
            tree.to_str().context("a UTF-8 temp path")?.to_owned()
        } else {
            mirror_testkit::git::write_git_index(
                &tree,
                &self.registry.git,
                "soak: remove versions",
            )
            .context("committing the removals")?;
            self.index.clone()
        };
        let watch = Watch::new(&self.dest, &removed);
        let delay = calibrated.then(|| self.window_delay(Target::Prune));
        let command = self.sync_command_at(&index, &["--prune"]);
        let end = self.run_in_window(command, &watch, delay)?;
        if let (false, WindowEnd::Exited { window, .. }) = (calibrated, &end) {
            let ms = window.map_or(0, |w| w.as_millis() as u64);
            self.window(Target::Prune).window_ms = ms;
            eprintln!("    `sync --prune`: its window lasts {ms} ms");
        }
        self.window_end(Target::Prune, end)?;

        // The next prune finishes what the killed one started.
        self.context = "the `sync --prune` after a killed one".to_owned();
        let out = self.run(self.sync_command_at(&index, &["--prune"]))?;
        ensure!(
            matches!(out.status.code(), Some(0 | 1)),
            "`sync --prune` ended with {}: {}",
            out.status,
            text(&out)
        );
        self.check()?;
        let (lines, _) = super::promises::published(&self.dest)?;
        let offered: BTreeSet<(CrateName, Version)> =
            lines.into_iter().map(|l| (l.name, l.vers)).collect();
        for (name, vers) in &removed {
            let rel = super::crate_path(name, vers);
            if offered.contains(&(name.clone(), vers.clone())) || self.dest.join(&rel).exists() {
                let v = format!(
                    "{name} {vers} was removed upstream and pruned twice, but is still {}",
                    if self.dest.join(&rel).exists() {
                        "under crates/"
                    } else {
                        "offered in index/"
                    }
                );
                self.violation(v);
            }
        }

        // Whole again: the same git index (a new commit) or back from the directory.
        if !new_source {
            mirror_testkit::git::write_git_index(
                &self.registry.sparse,
                &self.registry.git,
                "soak: versions back",
            )
            .context("committing the whole index again")?;
        }
        // A plain sync of the whole index must bring every version back and say so truthfully.
        self.context = format!(
            "the sync of the whole index after a prune round ({})",
            if new_source {
                "from a directory index"
            } else {
                "from a new commit"
            }
        );
        let out = self.run(self.sync_command(&[]))?;
        let report = summary(&out)?;
        let n = self.n();
        let (present, verified) = self.check()?;
        if out.status.success() && (present != n || verified != n) {
            self.figures.lost += n - present.min(n);
            self.violation(format!(
                "it exited 0 with {present} files and {verified} records of the {n} versions upstream lists (mode {}, {} index files read, {} downloaded)",
                report["mode"], report["index_files_read"], report["downloaded"]
            ));
            // Mend it, so the rounds go on: a full compare reads everything.
            let out = self.run(self.sync_command(&["--full"]))?;
            ensure!(out.status.success(), "sync --full: {}", text(&out));
        }
        self.converge()?;
        Ok(())
    }

    /// Removes, from the index tree `tree`, one whole crate and a few versions of others, all
    /// of them offered by the mirror now. Returns what it removed.
    pub(super) fn remove_upstream(
        &mut self,
        tree: &Path,
    ) -> anyhow::Result<Vec<(CrateName, Version)>> {
        let (lines, _) = super::promises::published(&self.dest)?;
        let mut by_crate: BTreeMap<CrateName, Vec<Version>> = BTreeMap::new();
        for line in lines {
            by_crate.entry(line.name).or_default().push(line.vers);
        }
        let crates: Vec<CrateName> = by_crate.keys().cloned().collect();
        ensure!(crates.len() > 4, "too few crates to prune from");
        let mut doomed: BTreeMap<CrateName, BTreeSet<Version>> = BTreeMap::new();
        let whole = &crates[(self.rng.next_u64() % crates.len() as u64) as usize];
        doomed.insert(whole.clone(), by_crate[whole].iter().cloned().collect());
        for _ in 0..3 + self.rng.next_u64() % 6 {
            let name = &crates[(self.rng.next_u64() % crates.len() as u64) as usize];
            let versions = &by_crate[name];
            let vers = &versions[(self.rng.next_u64() % versions.len() as u64) as usize];
            doomed.entry(name.clone()).or_default().insert(vers.clone());
        }
        let mut removed = Vec::new();
        for (name, gone) in doomed {
            let path = tree.join(index_path(&name));
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let file = IndexFile::parse(&index_path(&name), &bytes);
            let mut kept = Vec::new();
            for entry in &file.entries {
                if gone.contains(entry.vers()) {
                    removed.push((name.clone(), entry.vers().clone()));
                } else {
                    kept.extend_from_slice(entry.raw());
                    kept.push(b'\n');
                }
            }
            if kept.is_empty() {
                std::fs::remove_file(&path)?;
            } else {
                std::fs::write(&path, kept)?;
            }
        }
        self.figures.pruned_upstream += removed.len() as u32;
        Ok(removed)
    }
}
