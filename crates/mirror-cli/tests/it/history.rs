//! Staying current: a git index with history (new versions, a yank flip, deleted crates, a
//! re-published checksum, a squash, a force-push) synced step by step through the CLI.

use std::path::{Path, PathBuf};
use std::process::Output;

use mirror_index::{CrateName, Version, index_path};
use mirror_store::Store;
use mirror_testkit::git::{self, CommitOptions};
use mirror_testkit::server::{RegistryOptions, TestServer};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{stderr, stdout};

/// A crate's versions as (vers, bytes, yanked), in publish order.
type Versions = Vec<(String, Vec<u8>, bool)>;

/// A registry whose index is a git repository we commit to, and whose crate files we write
/// (also used by the `damage` tests).
pub(crate) struct Registry {
    pub(crate) tmp: tempfile::TempDir,
    server: TestServer,
    _rt: tokio::runtime::Runtime,
    /// name → versions as (vers, bytes, yanked), in publish order.
    pub(crate) crates: Vec<(String, Versions)>,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        let tmp = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(TestServer::start_registry(RegistryOptions::new(
            tmp.path().join("tree"),
            Some(tmp.path().join("cdn")),
        )));
        Registry {
            tmp,
            server,
            _rt: rt,
            crates: Vec::new(),
        }
    }

    pub(crate) fn tree(&self) -> PathBuf {
        self.tmp.path().join("tree")
    }

    pub(crate) fn bare(&self) -> PathBuf {
        self.tmp.path().join("index.git")
    }

    pub(crate) fn dest(&self) -> PathBuf {
        self.tmp.path().join("mirror")
    }

    pub(crate) fn publish(&mut self, name: &str, vers: &str, bytes: &[u8]) {
        let versions = match self.crates.iter_mut().find(|(n, _)| n == name) {
            Some((_, versions)) => versions,
            None => {
                self.crates.push((name.to_owned(), Vec::new()));
                &mut self.crates.last_mut().unwrap().1
            }
        };
        match versions.iter_mut().find(|(v, _, _)| v == vers) {
            Some(existing) => existing.1 = bytes.to_vec(),
            None => versions.push((vers.to_owned(), bytes.to_vec(), false)),
        }
    }

    pub(crate) fn yank(&mut self, name: &str, vers: &str) {
        let (_, versions) = self.crates.iter_mut().find(|(n, _)| n == name).unwrap();
        versions.iter_mut().find(|(v, _, _)| v == vers).unwrap().2 = true;
    }

    pub(crate) fn delete(&mut self, name: &str) {
        self.crates.retain(|(n, _)| n != name);
    }

    /// Writes the tree and the CDN files as they are now, and commits.
    pub(crate) fn commit(&self, message: &str, squash: bool) -> String {
        let tree = self.tree();
        self.write_tree(&tree);
        let mut options = CommitOptions::new(message);
        options.squash = squash;
        git::write_git_index_with(&tree, &self.bare(), &options).unwrap()
    }

    /// Writes the index as it is now into the directory `tree` (replacing it), and the CDN files.
    pub(crate) fn write_tree(&self, tree: &Path) {
        let _ = std::fs::remove_dir_all(tree);
        std::fs::create_dir_all(tree).unwrap();
        std::fs::write(
            tree.join("config.json"),
            format!("{{\"dl\":\"{}\"}}", self.server.dl_cdn_template()),
        )
        .unwrap();
        for (name, versions) in &self.crates {
            let path = tree.join(index_path(&CrateName::new(name).unwrap()));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut lines = String::new();
            for (vers, bytes, yanked) in versions {
                let cksum = format!("{:x}", Sha256::digest(bytes));
                lines += &format!(
                    "{{\"name\":\"{name}\",\"vers\":\"{vers}\",\"deps\":[],\"cksum\":\"{cksum}\",\"features\":{{}},\"yanked\":{yanked}}}\n"
                );
                let cdn = self.tmp.path().join("cdn/crates").join(name);
                std::fs::create_dir_all(&cdn).unwrap();
                std::fs::write(cdn.join(format!("{name}-{vers}.crate")), bytes).unwrap();
            }
            std::fs::write(&path, lines).unwrap();
        }
    }

    pub(crate) fn sync(&self, extra: &[&str]) -> (Output, Value) {
        self.sync_from(&format!("file://{}", self.bare().display()), extra)
    }

    /// `sync --json` from the index source `index`.
    pub(crate) fn sync_from(&self, index: &str, extra: &[&str]) -> (Output, Value) {
        let dest = self.dest();
        let mut args = vec![
            "sync",
            "--dest",
            dest.to_str().unwrap(),
            "--index",
            index,
            "--json",
            "--rate",
            "1000",
            "--backoff-ms",
            "5",
        ];
        args.extend_from_slice(extra);
        let out = crate::run(&self.tmp.path().join("cache"), &args);
        let text = stdout(&out);
        let summary = serde_json::from_str(text.lines().last().unwrap_or_else(|| {
            panic!("no summary; stderr:\n{}", stderr(&out));
        }))
        .unwrap();
        (out, summary)
    }

    pub(crate) fn file(&self, name: &str, vers: &str) -> PathBuf {
        let store = Store::open(&self.dest()).unwrap();
        store.crate_path(&CrateName::new(name).unwrap(), &Version::new(vers).unwrap())
    }
}

/// The counts of a sync summary that describe upstream changes, by name.
fn changes(summary: &Value) -> Vec<(&'static str, u64)> {
    [
        "index_files_read",
        "downloaded",
        "added",
        "yanked",
        "unyanked",
        "removed_upstream",
        "checksum_changed",
        "pruned",
        "failed",
    ]
    .into_iter()
    .map(|field| {
        (
            field,
            summary[field]
                .as_u64()
                .unwrap_or_else(|| panic!("{field} in {summary}")),
        )
    })
    .collect()
}

/// The expected counts, in the order of [`changes`]: index files read, downloaded, added, yanked,
/// unyanked, removed upstream, checksum changed, pruned (and no failure).
fn expect(counts: [u64; 8]) -> Vec<(&'static str, u64)> {
    let names = [
        "index_files_read",
        "downloaded",
        "added",
        "yanked",
        "unyanked",
        "removed_upstream",
        "checksum_changed",
        "pruned",
    ];
    let mut out: Vec<_> = names.into_iter().zip(counts).collect();
    out.push(("failed", 0));
    out
}

pub(crate) fn files_of(dest: &Path, name: &str) -> Vec<PathBuf> {
    let store = Store::open(dest).unwrap();
    let dir = store
        .crate_path(
            &CrateName::new(name).unwrap(),
            &Version::new("0.0.0").unwrap(),
        )
        .parent()
        .unwrap()
        .to_owned();
    match std::fs::read_dir(dir) {
        Ok(listing) => listing.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The lines the mirror's published index offers for `name`, parsed.
pub(crate) fn published(dest: &Path, name: &str) -> Vec<Value> {
    let path = dest
        .join("index")
        .join(index_path(&CrateName::new(name).unwrap()));
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn each_step_of_a_history_reports_exactly_its_changes() {
    let mut reg = Registry::new();
    // Step 1: the base.
    reg.publish("a", "1.0.0", b"a 1.0.0");
    reg.publish("a", "1.1.0", b"a 1.1.0");
    reg.publish("bb", "0.1.0", b"bb 0.1.0, first upload");
    reg.publish("ccc", "1.0.0", b"ccc 1.0.0");
    reg.publish("ccc", "2.0.0+build.5", b"ccc 2.0.0+build.5");
    reg.publish("dddd", "0.1.0", b"dddd 0.1.0");
    reg.publish("dddd", "0.2.0", b"dddd 0.2.0");
    reg.publish("Mixed_Case", "1.0.0", b"Mixed_Case 1.0.0");
    reg.publish("gone-one", "1.0.0", b"gone-one 1.0.0");
    reg.publish("gone-one", "1.0.1", b"gone-one 1.0.1");
    reg.publish("gone-two", "0.1.0", b"gone-two 0.1.0");
    reg.commit("step 1", false);
    let (out, s1) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s1["mode"], "full");
    // A first sync has no earlier tree: nothing is classified as added, everything downloads.
    assert_eq!(changes(&s1), expect([7, 11, 0, 0, 0, 0, 0, 0]));

    // Step 2: new versions, a new crate, a yank, a deleted crate, a re-published checksum.
    reg.publish("a", "1.2.0", b"a 1.2.0");
    reg.publish("hhhh", "0.1.0", b"hhhh 0.1.0");
    reg.yank("dddd", "0.1.0");
    reg.delete("gone-one");
    reg.publish("bb", "0.1.0", b"bb 0.1.0, uploaded again with other bytes");
    reg.commit("step 2", false);
    let (out, s2) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s2["mode"], "incremental");
    // Read: a, hhhh, dddd, bb: only the changed files (the deleted one is read from the old tree).
    assert_eq!(changes(&s2), expect([4, 3, 2, 1, 0, 2, 1, 0]));
    assert_eq!(
        s2["checksum_changes"][0]["name"], "bb",
        "{}",
        s2["checksum_changes"]
    );
    let text = stderr(&out);
    assert!(
        text.contains("removed:      2 versions no longer in the index, 1 whole crate"),
        "{text}"
    );
    assert_eq!(s2["removed_crates_upstream"], 1, "{s2}");
    assert!(text.contains("re-published: 1 versions"), "{text}");
    // Removed upstream: kept on disk by default.
    assert_eq!(files_of(&reg.dest(), "gone-one").len(), 2);
    // The re-published version has its new bytes; the old ones are in quarantine.
    assert_eq!(
        std::fs::read(reg.file("bb", "0.1.0")).unwrap(),
        b"bb 0.1.0, uploaded again with other bytes"
    );
    let quarantined: Vec<Vec<u8>> = crate::files_below(&reg.dest().join(".mirror/quarantine"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "crate"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(quarantined, [b"bb 0.1.0, first upload".to_vec()]);
    // The published index follows: the yank, the new checksum, the new versions; and the
    // deleted crate, kept on disk, is still offered (until --prune).
    let line = |name: &str, vers: &str| -> Option<Value> {
        published(&reg.dest(), name)
            .into_iter()
            .find(|l| l["vers"] == vers)
    };
    assert_eq!(line("dddd", "0.1.0").unwrap()["yanked"], true);
    assert_eq!(
        line("bb", "0.1.0").unwrap()["cksum"],
        format!(
            "{:x}",
            Sha256::digest(b"bb 0.1.0, uploaded again with other bytes")
        )
    );
    assert!(line("a", "1.2.0").is_some() && line("hhhh", "0.1.0").is_some());
    assert_eq!(published(&reg.dest(), "gone-one").len(), 2);

    // Step 3: a squash to a new root commit with the same tree: nothing to read or download.
    reg.commit("squash", true);
    let (out, s3) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s3["mode"], "incremental");
    assert_eq!(changes(&s3), expect([0, 0, 0, 0, 0, 0, 0, 0]));

    // Step 4: another crate deleted; with --prune both deleted crates leave crates/.
    reg.delete("gone-two");
    reg.commit("step 4", false);
    let (out, s4) = reg.sync(&["--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(changes(&s4), expect([0, 0, 0, 0, 0, 1, 0, 3]));
    assert_eq!(s4["removed_crates_upstream"], 1, "{s4}");
    assert!(files_of(&reg.dest(), "gone-one").is_empty());
    assert!(files_of(&reg.dest(), "gone-two").is_empty());
    // ... and the published index stops offering them.
    assert!(published(&reg.dest(), "gone-one").is_empty());
    assert!(published(&reg.dest(), "gone-two").is_empty());
    let quarantine = reg.dest().join(".mirror/quarantine");
    assert!(quarantine.is_dir());

    // A full compare over the same tree finds nothing new: every removal is already recorded.
    let (out, full) = reg.sync(&["--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(full["mode"], "full");
    assert_eq!(changes(&full), expect([6, 0, 0, 0, 0, 0, 0, 0]));
    assert_eq!(full["already_present"], 10);

    // An unyank is seen too.
    reg.publish("dddd", "0.1.0", b"dddd 0.1.0");
    reg.crates.iter_mut().find(|(n, _)| n == "dddd").unwrap().1[0].2 = false;
    reg.commit("unyank", false);
    let (out, s5) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(changes(&s5), expect([1, 0, 0, 0, 1, 0, 0, 0]));

    // Step 5: a force-push of unrelated history and a gc take the last synced tree away: the
    // sync falls back to a full compare and still finds the new version.
    reg.publish("ccc", "3.0.0", b"ccc 3.0.0");
    reg.commit("rewritten", true);
    let local = reg.dest().join(".mirror/index.git");
    let out = crate::run(
        &reg.tmp.path().join("cache"),
        &["sync", "--dest", reg.dest().to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    git::git(&local, &["reflog", "expire", "--expire=now", "--all"]).unwrap();
    git::git(&local, &["gc", "--prune=now", "--quiet"]).unwrap();
    let (out, s6) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s6["mode"], "full", "{s6}");
    assert_eq!(changes(&s6), expect([6, 1, 0, 0, 0, 0, 0, 0]));
}

#[test]
fn a_full_compare_runs_by_itself_every_n_syncs() {
    let mut reg = Registry::new();
    reg.publish("a", "1.0.0", b"a");
    reg.commit("one", false);
    let modes: Vec<String> = (0..5)
        .map(|_| {
            let (out, s) = reg.sync(&["--full-every-syncs", "2"]);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            s["mode"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        modes,
        ["full", "incremental", "full", "incremental", "full"],
        "the first sync is full, then every second one"
    );
    // By age: the last full compare was seconds ago, so one day is not due and zero days is.
    let mode = |args: &[&str]| {
        let (out, s) = reg.sync(args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        s["mode"].as_str().unwrap().to_owned()
    };
    assert_eq!(mode(&["--full-every-days", "1"]), "incremental");
    assert_eq!(mode(&["--full-every-days", "0"]), "full");
    assert_eq!(mode(&["--full-every-days", "1"]), "incremental");
}

#[test]
fn a_full_compare_finds_versions_removed_while_the_tree_was_gone() {
    let mut reg = Registry::new();
    reg.publish("a", "1.0.0", b"a 1");
    reg.publish("a", "1.1.0", b"a 1.1");
    reg.publish("zzzz", "1.0.0", b"z");
    reg.commit("one", false);
    let (out, _) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    reg.delete("zzzz");
    reg.crates[0].1.pop();
    reg.commit("rewritten", true);
    let (out, s) = reg.sync(&["--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The diff is there (the old tree was not collected), so the yank/add classification works,
    // and the removals come from the records.
    assert_eq!(s["removed_upstream"], 2, "{s}");
    let mut removed: Vec<String> = s["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{} {}",
                v["name"].as_str().unwrap(),
                v["vers"].as_str().unwrap()
            )
        })
        .collect();
    removed.sort();
    assert_eq!(removed, ["a 1.1.0", "zzzz 1.0.0"]);
}

/// A sync with `--skip-yanked` moves the sync marker; a later sync without it must still fetch
/// the yanked versions it skipped, though the index did not change.
#[test]
fn yanked_versions_skipped_once_are_fetched_by_a_later_sync_without_the_flag() {
    let mut r = Registry::new();
    r.publish("aa", "1.0.0", b"aa one");
    r.publish("aa", "1.1.0", b"aa two");
    r.publish("bb", "0.1.0", b"bb one");
    r.yank("aa", "1.0.0");
    r.commit("base", false);
    let (out, report) = r.sync(&["--skip-yanked"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["downloaded"], 2, "{report}");
    assert!(!r.file("aa", "1.0.0").exists());
    let (out, report) = r.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "full", "{report}");
    assert_eq!(report["downloaded"], 1, "{report}");
    assert!(r.file("aa", "1.0.0").exists());
    let (out, report) = r.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "incremental", "{report}");
    assert_eq!(report["downloaded"], 0, "{report}");
}

/// The published `index/` of the mirror, as path → content.
fn published_tree(dest: &Path) -> std::collections::BTreeMap<String, String> {
    let root = dest.join("index");
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().unwrap() != "config.json" {
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_full_compare_publishes_what_it_verified_and_sweeps_deleted_crates() {
    use std::os::unix::fs::MetadataExt as _;

    let mut reg = Registry::new();
    reg.publish("a", "1.0.0", b"a 1.0.0");
    reg.publish("bb", "0.1.0", b"bb 0.1.0, first upload");
    reg.publish("ccc", "1.0.0", b"ccc 1.0.0");
    reg.publish("dddd", "0.1.0", b"dddd 0.1.0");
    reg.publish("gone", "1.0.0", b"gone 1.0.0");
    reg.commit("base", false);
    let (out, _) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dddd = reg
        .dest()
        .join("index")
        .join(index_path(&CrateName::new("dddd").unwrap()));
    let untouched = std::fs::metadata(&dddd).unwrap();

    // A new version (downloaded, so its file is published after the download), a yank flip
    // (published as it is read), a re-published checksum and a deleted crate.
    reg.publish("a", "1.1.0", b"a 1.1.0");
    reg.yank("ccc", "1.0.0");
    reg.publish("bb", "0.1.0", b"bb 0.1.0, uploaded again");
    reg.delete("gone");
    reg.commit("changes", false);
    let (out, full) = reg.sync(&["--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(full["mode"], "full");
    assert_eq!(changes(&full), expect([4, 2, 1, 1, 0, 1, 1, 0]));
    // a, bb and ccc rewritten; dddd left as it was; gone's file kept (the mirror keeps
    // the deleted crate until --prune).
    assert_eq!(full["published_written"], 3, "{full}");
    assert_eq!(full["published_removed"], 0, "{full}");
    let now = std::fs::metadata(&dddd).unwrap();
    assert_eq!(
        (now.ino(), now.mtime_nsec()),
        (untouched.ino(), untouched.mtime_nsec())
    );

    // Every version is verified now, so the published index is upstream's, byte for byte,
    // and the deleted crate's file as it was published.
    let gone = index_path(&CrateName::new("gone").unwrap());
    let gone_before = std::fs::read_to_string(reg.dest().join("index").join(&gone)).unwrap();
    let mut upstream = std::collections::BTreeMap::new();
    for (name, _) in &reg.crates {
        let path = index_path(&CrateName::new(name).unwrap());
        let content = std::fs::read_to_string(reg.tree().join(&path)).unwrap();
        upstream.insert(path, content);
    }
    let mut expected = upstream.clone();
    expected.insert(gone.clone(), gone_before);
    assert_eq!(published_tree(&reg.dest()), expected);

    // --prune: a full compare again, and now the deleted crate leaves the published index.
    let (out, pruned) = reg.sync(&["--full", "--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(pruned["pruned"], 1, "{pruned}");
    assert_eq!(published_tree(&reg.dest()), upstream);
}

/// A crate deleted upstream stays offered by the published index until `--prune`, whatever
/// publishes first: here `mirror-cli publish` after a dry run fetched the new tip, before any
/// sync recorded the removal.
#[test]
fn a_deleted_crate_stays_published_until_prune_whoever_publishes() {
    let mut reg = Registry::new();
    reg.publish("keep", "1.0.0", b"keep 1.0.0");
    reg.publish("gone", "1.0.0", b"gone 1.0.0");
    reg.publish("gone", "1.1.0", b"gone 1.1.0");
    reg.commit("base", false);
    let (out, _) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(published(&reg.dest(), "gone").len(), 2);

    reg.delete("gone");
    reg.commit("gone deleted", false);
    let dest = reg.dest();
    let dest = dest.to_str().unwrap();
    let cache = reg.tmp.path().join("cache");
    let out = crate::run(&cache, &["sync", "--dest", dest, "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = crate::run(&cache, &["publish", "--dest", dest]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(published(&reg.dest(), "gone").len(), 2);

    let (out, s) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s["removed_upstream"], 2, "{s}");
    assert_eq!(published(&reg.dest(), "gone").len(), 2);
    let (out, s) = reg.sync(&["--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(published(&reg.dest(), "gone").len(), 2, "{s}");

    let (out, s) = reg.sync(&["--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s["pruned"], 2, "{s}");
    assert!(published(&reg.dest(), "gone").is_empty());
    assert_eq!(published(&reg.dest(), "keep").len(), 1);
}

/// A sync from another index source (a directory, a sparse index) changes the records without
/// moving the git sync marker. Here it prunes versions its index lacks; the next sync from the
/// git index must compare everything and bring them back, not diff from the marker (which
/// reads nothing, since the git index did not change).
#[test]
fn a_changed_index_source_forces_a_full_compare() {
    let mut reg = Registry::new();
    reg.publish("aa", "1.0.0", b"aa 1.0.0");
    reg.publish("aa", "1.1.0", b"aa 1.1.0");
    reg.publish("bbb", "0.1.0", b"bbb 0.1.0");
    reg.publish("cccc", "2.0.0", b"cccc 2.0.0");
    reg.commit("base", false);
    let (out, s) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s["downloaded"], 4, "{s}");
    let (out, s) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s["mode"], "incremental", "{s}");
    assert_eq!(s["full_reason"], Value::Null, "{s}");

    // A plain directory holding part of the same index: no bbb, and aa without 1.1.0.
    let full = reg.crates.clone();
    reg.delete("bbb");
    reg.crates[0].1.pop();
    let partial = reg.tmp.path().join("partial");
    reg.write_tree(&partial);
    reg.crates = full;
    let (out, s) = reg.sync_from(partial.to_str().unwrap(), &["--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        (&s["removed_upstream"], &s["pruned"]),
        (&2.into(), &2.into()),
        "{s}"
    );
    assert!(!reg.file("aa", "1.1.0").exists() && !reg.file("bbb", "0.1.0").exists());
    assert!(published(&reg.dest(), "bbb").is_empty());

    // Back to the git index, which has not changed since its marker: a dry run already says
    // it compares everything, and the sync downloads the pruned versions again.
    let (out, s) = reg.sync(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        (&s["mode"], &s["would_download"]),
        (&"full".into(), &2.into()),
        "{s}"
    );
    let (out, s) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s["mode"], "full", "{s}");
    assert!(
        s["full_reason"]
            .as_str()
            .unwrap()
            .contains("the index source changed"),
        "{s}"
    );
    assert!(
        stderr(&out).contains("compared all: the index source changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        (&s["index_files_read"], &s["downloaded"]),
        (&3.into(), &2.into()),
        "{s}"
    );
    assert_eq!(std::fs::read(reg.file("aa", "1.1.0")).unwrap(), b"aa 1.1.0");
    assert_eq!(
        std::fs::read(reg.file("bbb", "0.1.0")).unwrap(),
        b"bbb 0.1.0"
    );
    assert_eq!(published(&reg.dest(), "aa").len(), 2);
    assert_eq!(published(&reg.dest(), "bbb").len(), 1);
    // One clean full compare, and the marker is trusted again.
    let (out, s) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        (&s["mode"], &s["index_files_read"]),
        (&"incremental".into(), &0.into()),
        "{s}"
    );

    // The same through the sparse index of the same registry, serving aa without 1.1.0: a
    // sync of the named crate prunes it; the next git sync compares everything again.
    reg.crates[0].1.pop();
    reg.write_tree(&reg.tree());
    let sparse = format!("sparse+{}", reg.server.index_url());
    let (out, s) = reg.sync_from(&sparse, &["--crate", "aa", "--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        (&s["mode"], &s["pruned"]),
        (&"selected".into(), &1.into()),
        "{s}"
    );
    assert!(!reg.file("aa", "1.1.0").exists());
    let (out, s) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        (&s["mode"], &s["downloaded"]),
        (&"full".into(), &1.into()),
        "{s}"
    );
    assert_eq!(std::fs::read(reg.file("aa", "1.1.0")).unwrap(), b"aa 1.1.0");
    assert_eq!(published(&reg.dest(), "aa").len(), 2);
}

/// With `--skip-yanked`, a yanked version recorded verified whose file went missing is no
/// longer claimed after a full compare (the record is forgotten, its line not published), and
/// it is not downloaded again; a sync without the flag fetches it.
#[test]
fn a_missing_yanked_file_is_no_longer_claimed_with_skip_yanked() {
    let mut r = Registry::new();
    r.publish("aa", "1.0.0", b"aa one");
    r.publish("aa", "1.1.0", b"aa two");
    r.yank("aa", "1.0.0");
    r.commit("base", false);
    let (out, report) = r.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["downloaded"], 2, "{report}");
    assert_eq!(published(&r.dest(), "aa").len(), 2);
    std::fs::remove_file(r.file("aa", "1.0.0")).unwrap();

    let (out, report) = r.sync(&["--full", "--skip-yanked"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = crate::run(
        &r.tmp.path().join("cache"),
        &["status", "--dest", r.dest().to_str().unwrap(), "--json"],
    );
    let status: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(
        (&status["verified"], &status["failed"]),
        (&1.into(), &0.into()),
        "{status}"
    );
    assert_eq!(
        (
            &report["recorded_missing"],
            &report["drift_forgotten"],
            &report["downloaded"]
        ),
        (&1.into(), &1.into(), &0.into()),
        "{report}"
    );
    assert!(!r.file("aa", "1.0.0").exists());
    let lines = published(&r.dest(), "aa");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["vers"], "1.1.0");

    let (out, report) = r.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        (&report["mode"], &report["downloaded"]),
        (&"full".into(), &1.into()),
        "{report}"
    );
    assert_eq!(std::fs::read(r.file("aa", "1.0.0")).unwrap(), b"aa one");
}
