//! The two promises of the mirror, checked directly on the disk after every kill: (a) every
//! record the state says verified has its file in place with the recorded SHA-256; (b) every line
//! of the published index (`index/`) has its crate file in place with the line's checksum, and
//! the state records that version verified with the same checksum.
//!
//! The state is read from a copy of `.mirror/state` (opened through `mirror-state`), so the check
//! neither takes the mirror's lock nor lets sled's recovery write into the mirror the next run
//! opens. Files the soak damaged on purpose are excused until a run is seen acting on them (their
//! line retracted from `index/`): from then on the program knows, and must not forget.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mirror_index::{Checksum, CrateName, IndexFile, Version};
use mirror_state::{State, StateOptions};

use super::crate_path;

/// Files the soak changed behind the program's back (bytes flipped, cut, deleted).
#[derive(Default)]
pub(super) struct Damaged {
    /// Their paths under the mirror root.
    pub(super) files: BTreeSet<PathBuf>,
    /// Those a run has been seen acting on: their line left the published index.
    pub(super) known: BTreeSet<PathBuf>,
}

impl Damaged {
    /// Whether a broken `rel` is the soak's doing that no run has noticed yet.
    fn excused(&self, rel: &Path) -> bool {
        self.files.contains(rel) && !self.known.contains(rel)
    }

    pub(super) fn forget(&mut self, rel: &Path) {
        self.files.remove(rel);
        self.known.remove(rel);
    }
}

/// What one check of the promises found.
#[derive(Default)]
pub(super) struct Verdict {
    /// Verified records and published lines checked.
    pub(super) records: u64,
    pub(super) lines: u64,
    /// Records and lines of files the soak damaged that no run has noticed yet.
    pub(super) excused: u64,
    /// Every broken promise, one sentence each.
    pub(super) violations: Vec<String>,
}

/// One published line.
pub(super) struct Line {
    pub(super) name: CrateName,
    pub(super) vers: Version,
    pub(super) cksum: Checksum,
}

/// Every line of the published index under `dest/index/` (config.json and dot-files aside), and
/// the lines that do not parse, as violations: the mirror publishes upstream's lines verbatim.
pub(super) fn published(dest: &Path) -> anyhow::Result<(Vec<Line>, Vec<String>)> {
    let root = dest.join("index");
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in listing {
            let entry = entry?;
            let path = entry.path();
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if file_name.starts_with('.') || (dir == root && file_name == "config.json") {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&root)?
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                // Replaced between the listing and the read (a run is never going while we
                // check, but a rename is never half done either): read it again next time.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let file = IndexFile::parse(&rel, &bytes);
            for error in &file.problems {
                bad.push(format!(
                    "index/{rel}: a published line does not parse: {error:?}"
                ));
            }
            lines.extend(file.entries.iter().map(|e| Line {
                name: e.name().clone(),
                vers: e.vers().clone(),
                cksum: *e.cksum(),
            }));
        }
    }
    Ok((lines, bad))
}

/// Checks both promises on the mirror at `dest`. `present` is every file under `crates/` with the
/// SHA-256 of its bytes (the caller walked and hashed them); `scratch` is where the state is
/// copied to be opened. With `state_lost`, the soak deleted the state on purpose in this cycle,
/// so a published line without a record is excused (its file must still hash right).
pub(super) fn check(
    dest: &Path,
    scratch: &Path,
    present: &BTreeMap<PathBuf, Checksum>,
    damaged: &mut Damaged,
    state_lost: bool,
) -> anyhow::Result<Verdict> {
    let mut verdict = Verdict::default();
    let (lines, bad) = published(dest)?;
    verdict.violations.extend(bad);
    let published_paths: BTreeSet<PathBuf> =
        lines.iter().map(|l| crate_path(&l.name, &l.vers)).collect();
    // A damaged file whose line left the index was noticed by a run (retracted before its
    // quarantine or its failure record).
    let noticed: Vec<PathBuf> = damaged
        .files
        .iter()
        .filter(|rel| !published_paths.contains(*rel))
        .cloned()
        .collect();
    damaged.known.extend(noticed);

    let verified = match verified_records(dest, scratch) {
        Ok(verified) => verified,
        Err(e) => {
            verdict
                .violations
                .push(format!("the state cannot be read after the run: {e:#}"));
            BTreeMap::new()
        }
    };

    // (a) Every verified record names a file in place with the recorded checksum.
    for ((name, vers), cksum) in &verified {
        verdict.records += 1;
        let rel = crate_path(name, vers);
        match present.get(&rel) {
            Some(actual) if actual == cksum => {}
            _ if damaged.excused(&rel) => verdict.excused += 1,
            Some(actual) => verdict.violations.push(format!(
                "the state says {name} {vers} is verified as {cksum}, but {} hashes to {actual}",
                rel.display()
            )),
            None => verdict.violations.push(format!(
                "the state says {name} {vers} is verified, but {} is not in place",
                rel.display()
            )),
        }
    }

    // (b) Every published line has its file in place, hashing to the line's checksum, and a
    // verified record with that checksum.
    for line in &lines {
        verdict.lines += 1;
        let (name, vers) = (&line.name, &line.vers);
        let rel = crate_path(name, vers);
        if damaged.excused(&rel) {
            verdict.excused += 1;
            continue;
        }
        match present.get(&rel) {
            Some(actual) if *actual == line.cksum => {}
            Some(actual) => verdict.violations.push(format!(
                "index/ offers {name} {vers} with cksum {}, but {} hashes to {actual}",
                line.cksum,
                rel.display()
            )),
            None => verdict.violations.push(format!(
                "index/ offers {name} {vers}, but {} is not in place",
                rel.display()
            )),
        }
        match verified.get(&(name.clone(), vers.clone())) {
            Some(cksum) if *cksum == line.cksum => {}
            Some(cksum) => verdict.violations.push(format!(
                "index/ offers {name} {vers} with cksum {}, the state verified {cksum}",
                line.cksum
            )),
            None if state_lost => {}
            None => verdict.violations.push(format!(
                "index/ offers {name} {vers}, but the state does not record it verified"
            )),
        }
    }
    Ok(verdict)
}

/// The verified records of the state of `dest`, read from a copy in `scratch`.
fn verified_records(
    dest: &Path,
    scratch: &Path,
) -> anyhow::Result<BTreeMap<(CrateName, Version), Checksum>> {
    let state_dir = dest.join(".mirror/state");
    let mut verified = BTreeMap::new();
    if !state_dir.join("sled").exists() {
        return Ok(verified);
    }
    if scratch.exists() {
        std::fs::remove_dir_all(scratch)
            .with_context(|| format!("removing {}", scratch.display()))?;
    }
    copy_dir(&state_dir, scratch)?;
    let options = StateOptions {
        holder: "cargo xtask soak (promise check)".into(),
        ..StateOptions::default()
    };
    let state = State::open(scratch, options)
        .with_context(|| format!("opening a copy of {}", state_dir.display()))?;
    for record in state.iter() {
        let (name, vers, record) = record.context("reading a state record")?;
        if record.is_verified() {
            verified.insert((name, vers), record.cksum);
        }
    }
    Ok(verified)
}

/// Copies the directory tree `from` to `to` (regular files and directories only).
pub(super) fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    /// A one-version mirror: `a 1.0.0` in place, published, and recorded verified.
    struct Mirror {
        dir: tempfile::TempDir,
        name: CrateName,
        vers: Version,
        cksum: Checksum,
    }

    impl Mirror {
        fn new() -> Mirror {
            let dir = tempfile::tempdir().expect("a temp dir");
            let (name, vers): (CrateName, Version) = (
                "a".parse().expect("a name"),
                "1.0.0".parse().expect("a version"),
            );
            let bytes = b"the crate file of a 1.0.0".to_vec();
            let cksum = Checksum::from_bytes(Sha256::digest(&bytes).into());
            let file = dir.path().join(crate_path(&name, &vers));
            std::fs::create_dir_all(file.parent().expect("a parent")).expect("crates/");
            std::fs::write(&file, &bytes).expect("the crate file");
            super::super::append(
                &dir.path().join("index/1/a"),
                &super::super::line("a", "1.0.0", &cksum.to_string()),
            )
            .expect("the index line");
            let state = State::open(&dir.path().join(".mirror/state"), StateOptions::default())
                .expect("a state");
            state
                .mark_verified(&name, &vers, cksum, bytes.len() as u64)
                .expect("a record");
            state.flush().expect("flushed");
            Mirror {
                dir,
                name,
                vers,
                cksum,
            }
        }

        fn rel(&self) -> PathBuf {
            crate_path(&self.name, &self.vers)
        }

        /// Checks the promises with the files under `crates/` hashed as the soak does.
        fn check(&self, damaged: &mut Damaged) -> Verdict {
            let mut present = BTreeMap::new();
            let path = self.dir.path().join(self.rel());
            if let Ok((_, sum)) = mirror_store::hash_file(&path) {
                present.insert(self.rel(), sum);
            }
            let scratch = self.dir.path().join("scratch");
            check(self.dir.path(), &scratch, &present, damaged, false).expect("a check")
        }
    }

    #[test]
    fn an_intact_mirror_keeps_both_promises() {
        let m = Mirror::new();
        let v = m.check(&mut Damaged::default());
        assert_eq!((v.records, v.lines, v.excused), (1, 1, 0));
        assert!(v.violations.is_empty(), "{:?}", v.violations);
    }

    #[test]
    fn a_missing_file_breaks_both_promises() {
        let m = Mirror::new();
        std::fs::remove_file(m.dir.path().join(m.rel())).expect("removed");
        let v = m.check(&mut Damaged::default());
        assert_eq!(v.violations.len(), 2, "{:?}", v.violations);
        assert!(v.violations[0].contains("the state says a 1.0.0 is verified"));
        assert!(v.violations[1].contains("index/ offers a 1.0.0"));
    }

    #[test]
    fn a_line_without_a_verified_record_breaks_the_index_promise() {
        let m = Mirror::new();
        {
            let state = State::open(&m.dir.path().join(".mirror/state"), StateOptions::default())
                .expect("the state");
            state
                .mark_failed(&m.name, &m.vers, m.cksum, "corrupt", "a test")
                .expect("a failure");
            state.flush().expect("flushed");
        }
        let v = m.check(&mut Damaged::default());
        assert_eq!(v.records, 0);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].contains("does not record it verified"));
    }

    #[test]
    fn damage_is_excused_until_a_run_retracts_its_line() {
        let m = Mirror::new();
        std::fs::write(m.dir.path().join(m.rel()), b"damaged").expect("damaged");
        let mut damaged = Damaged::default();
        damaged.files.insert(m.rel());
        let v = m.check(&mut damaged);
        assert_eq!(v.excused, 2);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        // A run noticed (the line left the index) but the record still says verified.
        std::fs::remove_file(m.dir.path().join("index/1/a")).expect("retracted");
        let v = m.check(&mut damaged);
        assert!(damaged.known.contains(&m.rel()));
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].contains("the state says a 1.0.0 is verified as"));
    }
}
