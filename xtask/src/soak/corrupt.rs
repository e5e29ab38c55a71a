//! State corruption: copies of a complete mirror (with tombstones, and a base URL set by
//! `publish`) whose sled files are truncated or have bits flipped. On each copy
//! `status` and `sync` must either refuse with an error naming the recovery, or read exactly what
//! the intact copy holds (damage in bytes sled no longer uses); silently reading less is a broken
//! promise. Then the recovery is applied (the state moved aside, a sync) and the copy must
//! converge with the promises held, its tombstones and base URL rebuilt.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::Value;

use super::{Soak, count, promises, summary, text};

/// One damaged state and what came of it.
pub(super) struct Case {
    pub(super) damage: String,
    /// What `status` did: refused (naming the recovery), read the intact content, or lied.
    pub(super) status: &'static str,
    /// Whether the recovery converged with the promises held.
    pub(super) recovered: bool,
}

/// Base URL given to `publish` before the copies are made; the recovery must keep it.
const BASE_URL: &str = "http://mirror.example.invalid:8443";

/// Runs `command` with a time limit; `None` when it had to be killed.
fn run_limited(mut command: Command, limit: Duration) -> anyhow::Result<Option<Output>> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting mirror-cli")?;
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            return Ok(Some(child.wait_with_output()?));
        }
        if started.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `status --json` without the fields that name the copy.
fn status_json(out: &Output) -> anyhow::Result<Value> {
    let mut v = summary(out)?;
    if let Some(map) = v.as_object_mut() {
        map.remove("dest");
    }
    Ok(v)
}

/// `bytes` as text on one line, runs of white space made one space.
fn one_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an error names a recovery: moving the state aside.
fn names_recovery(stderr: &str) -> bool {
    stderr.contains(".mirror/state") && (stderr.contains("mv ") || stderr.contains("move"))
}

impl Soak {
    fn status_command(&self) -> Command {
        self.cli.command(&[
            "status",
            "--dest",
            self.dest.to_str().expect("a UTF-8 temp path"),
            "--json",
        ])
    }

    /// Phase: `--corrupt-cases` damaged copies of a state.
    pub(super) fn corruption(&mut self) -> anyhow::Result<()> {
        eprintln!("==> corruption: a mirror with tombstones, a failure and a base URL");
        self.fresh_dest()?;
        self.converge()?;
        // Versions removed upstream (tombstoned, their files kept) and a base URL remembered by
        // publish: what a recovery must rebuild.
        let tree = self.work.join("corrupt-tree");
        if tree.exists() {
            std::fs::remove_dir_all(&tree)?;
        }
        promises::copy_dir(&self.registry.sparse, &tree)?;
        let removed = self.remove_upstream(&tree)?;
        mirror_testkit::git::write_git_index(&tree, &self.registry.git, "soak: remove versions")
            .context("committing the removals")?;
        let out = self.run(self.sync_command(&[]))?;
        ensure!(
            out.status.success(),
            "the sync after removals: {}",
            text(&out)
        );
        let out = self.run(self.cli.command(&[
            "publish",
            "--dest",
            self.dest.to_str().expect("UTF-8"),
            "--base-url",
            BASE_URL,
        ]))?;
        ensure!(out.status.success(), "publish --base-url: {}", text(&out));
        let intact = self.work.join("corrupt-intact");
        if intact.exists() {
            std::fs::remove_dir_all(&intact)?;
        }
        promises::copy_dir(&self.dest, &intact)?;
        let main_dest = std::mem::replace(&mut self.dest, intact.clone());
        let result = self.corruption_cases(&intact, removed.len());
        self.dest = main_dest;
        result?;
        mirror_testkit::git::write_git_index(
            &self.registry.sparse,
            &self.registry.git,
            "soak: versions back",
        )
        .context("committing the whole index again")?;
        self.context = "the sync after the corruption phase".to_owned();
        self.converge()
    }

    fn corruption_cases(&mut self, intact: &Path, removed: usize) -> anyhow::Result<()> {
        let limit = Duration::from_secs(120);
        let out = self.run(self.status_command())?;
        ensure!(
            out.status.success(),
            "status on the intact copy: {}",
            text(&out)
        );
        let want = status_json(&out)?;
        ensure!(
            count(&want, "removed_upstream")? > 0,
            "no tombstones to lose: {want}"
        );
        let config = std::fs::read(intact.join("index/config.json"))?;
        ensure!(
            String::from_utf8_lossy(&config).contains(BASE_URL),
            "publish did not write its base URL into config.json"
        );
        eprintln!(
            "==> corruption: {} damaged states ({removed} versions tombstoned in each)",
            self.limits.corrupt_cases
        );
        let case_dir = self.work.join("corrupt-case");
        for i in 0..self.limits.corrupt_cases {
            if case_dir.exists() {
                std::fs::remove_dir_all(&case_dir)?;
            }
            promises::copy_dir(intact, &case_dir)?;
            self.dest = case_dir.clone();
            let damage = self.corrupt(&case_dir.join(".mirror/state/sled"), i)?;
            self.context = format!("damaged state {}: {damage}", i + 1);
            let violation = |soak: &mut Soak, what: String| {
                let what = format!("[case {}] {what}", i + 1);
                soak.violation(what);
            };
            let status = match run_limited(self.status_command(), limit)? {
                None => {
                    violation(self, format!("status hung for {limit:?}"));
                    "hung"
                }
                Some(out) if out.status.success() => {
                    if status_json(&out)? == want {
                        "read intact"
                    } else {
                        violation(
                            self,
                            format!(
                                "status exit 0 with other content: {}, the intact copy says {want}",
                                status_json(&out)?
                            ),
                        );
                        "read less, exit 0"
                    }
                }
                Some(out) if names_recovery(&text(&out)) => "refused, naming the recovery",
                Some(out) => {
                    violation(
                        self,
                        format!(
                            "status refused ({}) without naming the recovery: {}",
                            out.status,
                            one_line(&out.stderr)
                        ),
                    );
                    "refused, no recovery named"
                }
            };
            // A sync must agree with status: refuse too, or (the damage was harmless) complete.
            match run_limited(self.sync_command(&[]), limit)? {
                None => violation(self, format!("sync hung for {limit:?}")),
                Some(out) if status.starts_with("refused") => {
                    if out.status.success() {
                        violation(
                            self,
                            "status refused the state, but sync ran on it (exit 0)".to_owned(),
                        );
                    } else if !names_recovery(&text(&out)) {
                        violation(
                            self,
                            format!(
                                "sync refused ({}) without naming the recovery: {}",
                                out.status,
                                one_line(&out.stderr)
                            ),
                        );
                    }
                }
                Some(out) => {
                    if !out.status.success() {
                        violation(
                            self,
                            format!("sync on a readable state failed: {}", text(&out).trim()),
                        );
                    }
                    self.check()?;
                }
            }
            let recovered = self.recover(i + 1, &want, &config)?;
            self.figures.corruption.push(super::corrupt::Case {
                damage,
                status,
                recovered,
            });
        }
        Ok(())
    }

    /// The recovery the refusal names: the state moved aside, then a sync. The copy must
    /// converge: every file verified, the promises held, tombstones and base URL rebuilt.
    fn recover(&mut self, case: u32, want: &Value, config: &[u8]) -> anyhow::Result<bool> {
        let before = self.figures.violation_hits;
        let state = self.dest.join(".mirror/state");
        std::fs::rename(&state, self.dest.join(".mirror/state.damaged"))
            .with_context(|| format!("moving {} aside", state.display()))?;
        self.context = format!("{} and the recovery", self.context);
        let out = self.run(self.sync_command(&[]))?;
        let mut broken = Vec::new();
        if !out.status.success() {
            broken.push(format!(
                "the sync after moving the state aside failed: {}",
                text(&out)
            ));
        }
        let out = self.run(self.verify_command(&[]))?;
        let report = summary(&out)?;
        let n = self.n();
        // The tombstoned versions are kept, so every version is there.
        if !out.status.success() || count(&report, "ok")? != n {
            broken.push(format!("verify after the recovery: {report}"));
        }
        let out = self.run(self.status_command())?;
        let got = status_json(&out)?;
        for field in ["verified", "removed_upstream"] {
            if got[field] != want[field] {
                broken.push(format!(
                    "after the recovery {field} is {}, the intact state said {}",
                    got[field], want[field]
                ));
            }
        }
        let now = std::fs::read(self.dest.join("index/config.json")).unwrap_or_default();
        if now != config {
            broken.push(format!(
                "after the recovery index/config.json is {}, it was {}",
                one_line(&now),
                one_line(config)
            ));
        }
        for b in broken {
            self.violation(format!("[case {case}, recovered] {b}"));
        }
        self.check()?;
        Ok(self.figures.violation_hits == before)
    }

    /// Damages the sled files in `sled` as case `i` says; returns what it did.
    fn corrupt(&mut self, sled: &Path, i: u32) -> anyhow::Result<String> {
        let db = sled.join("db");
        let snap: Option<PathBuf> = std::fs::read_dir(sled)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("snap."))
            });
        let len = std::fs::metadata(&db)?.len();
        ensure!(len > 0, "{} is empty", db.display());
        let mut bytes = std::fs::read(&db)?;
        // The bytes sled wrote: the file may end in preallocated zeros.
        let used = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1) as u64;
        // Without its snapshot, sled rebuilds from the log alone and stops at the first bad
        // entry: the silent kind of loss. With it, damage before the snapshot's position is
        // found on open.
        let drop_snapshot = |what: String| -> anyhow::Result<String> {
            Ok(match &snap {
                Some(snap) => {
                    std::fs::remove_file(snap)?;
                    format!("{what}, snapshot removed")
                }
                None => format!("{what} (no snapshot file)"),
            })
        };
        let kind = i % 6;
        let what = match kind {
            0 | 1 => {
                bytes.truncate((used / 2) as usize);
                let what = format!("db truncated to half of its {used} written bytes");
                if kind == 1 {
                    drop_snapshot(what)?
                } else {
                    what
                }
            }
            2 | 3 => {
                let flips = if kind == 2 { 1 } else { 8 };
                for _ in 0..flips {
                    let at = (self.rng.next_u64() % used.max(1)) as usize;
                    let bit = self.rng.next_u64() % 8;
                    bytes[at] ^= 1 << bit;
                }
                let what =
                    format!("db: {flips} bit(s) flipped at random in its {used} written bytes");
                if kind == 3 {
                    drop_snapshot(what)?
                } else {
                    what
                }
            }
            4 => {
                let at = (self.rng.next_u64() % used.saturating_sub(4096).max(1)) as usize;
                let end = (at + 4096).min(bytes.len());
                bytes[at..end].fill(0);
                drop_snapshot(format!("db: 4 KiB zeroed at offset {at}"))?
            }
            _ => {
                bytes.truncate((used * 3 / 4) as usize);
                if let Some(snap) = &snap {
                    let s = std::fs::read(snap)?;
                    std::fs::write(snap, &s[..s.len() / 2])?;
                    "db truncated to 3/4 and its snapshot to half".to_owned()
                } else {
                    "db truncated to 3/4 (no snapshot file)".to_owned()
                }
            }
        };
        std::fs::write(&db, &bytes)?;
        Ok(what)
    }
}
