//! `mirror-cli sync`, `verify` and `status` end to end: the real-crates fixture, its git index
//! read over `file://`, its crate files served by the testkit registry over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use mirror_store::Store;
use mirror_testkit::server::{Fault, RegistryOptions, TestServer};
use mirror_testkit::{RealRegistry, RealRegistryOptions, real_registry};
use serde_json::Value;

use crate::{stderr, stdout};

/// A registry on a loopback server and an empty mirror directory.
pub(crate) struct Fixture {
    pub(crate) tmp: tempfile::TempDir,
    // Runs the server; declared before it so the server is dropped first.
    pub(crate) server: TestServer,
    _rt: tokio::runtime::Runtime,
    pub(crate) registry: RealRegistry,
    pub(crate) dest: PathBuf,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let reg = tmp.path().join("reg");
        // The server reads its trees at request time, so it can start before they exist and the
        // fixture's config.json can name the server's own download API.
        let server = rt.block_on(TestServer::start_registry(RegistryOptions::new(
            reg.join("sparse"),
            Some(reg.join("cdn")),
        )));
        let registry = real_registry(&reg, &RealRegistryOptions::with_dl(server.dl_api())).unwrap();
        let dest = tmp.path().join("mirror");
        Fixture {
            server,
            _rt: rt,
            registry,
            dest,
            tmp,
        }
    }

    pub(crate) fn index(&self) -> String {
        format!("file://{}", self.registry.git.display())
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mirror-cli"));
        command
            .args(args)
            .env("HOME", self.tmp.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("RUST_LOG")
            .env_remove("MIRROR_CLI_INDEX")
            .env_remove("MIRROR_CLI_CONTACT");
        command
    }

    /// `sync --json` with fast, still bounded, politeness for tests.
    pub(crate) fn sync_command(&self, extra: &[&str]) -> Command {
        let dest = self.dest.to_str().unwrap();
        let index = self.index();
        let mut args = vec![
            "sync",
            "--dest",
            dest,
            "--index",
            &index,
            "--json",
            "--backoff-ms",
            "5",
            "--contact",
            "tests@example.org",
        ];
        args.extend_from_slice(extra);
        if !extra.contains(&"--rate") {
            args.extend_from_slice(&["--rate", "1000"]);
        }
        self.command(&args)
    }

    pub(crate) fn sync(&self, extra: &[&str]) -> (Output, Value) {
        let out = self.sync_command(extra).output().unwrap();
        let summary = summary(&out);
        (out, summary)
    }

    pub(crate) fn verify(&self, extra: &[&str]) -> (Output, Value) {
        let mut args = vec!["verify", "--dest", self.dest.to_str().unwrap(), "--json"];
        args.extend_from_slice(&["--rate", "1000", "--backoff-ms", "5"]);
        args.extend_from_slice(extra);
        let out = self.command(&args).output().unwrap();
        let summary = summary(&out);
        (out, summary)
    }

    pub(crate) fn status(&self) -> (Output, Value) {
        let out = self
            .command(&["status", "--dest", self.dest.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        let summary = summary(&out);
        (out, summary)
    }

    pub(crate) fn store(&self) -> Store {
        Store::open(&self.dest).unwrap()
    }

    pub(crate) fn cdn_path(&self, index: usize) -> String {
        let v = &self.registry.versions[index];
        format!("/crates/{0}/{0}-{1}.crate", v.name(), v.vers())
    }

    /// Every file under `crates/`, relative to it.
    pub(crate) fn files_under_crates(&self) -> BTreeSet<PathBuf> {
        let root = self.dest.join("crates");
        let mut out = BTreeSet::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(listing) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in listing {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                } else {
                    out.insert(entry.path().strip_prefix(&root).unwrap().to_owned());
                }
            }
        }
        out
    }

    /// Asserts that every file under `crates/` is the crate file of a fixture version, under its
    /// final name, with exactly the fixture's bytes (never a temp file, never a partial or wrong
    /// file), and returns how many there are.
    pub(crate) fn assert_files_are_verified_copies(&self) -> usize {
        let store = self.store();
        let expected: BTreeMap<PathBuf, String> = self
            .registry
            .versions
            .iter()
            .map(|v| {
                (
                    store
                        .relative_crate_path(v.name(), v.vers())
                        .strip_prefix("crates")
                        .unwrap()
                        .to_owned(),
                    v.cksum().to_string(),
                )
            })
            .collect();
        let files = self.files_under_crates();
        for rel in &files {
            let cksum = expected
                .get(rel)
                .unwrap_or_else(|| panic!("{} is not a crate file of the index", rel.display()));
            let (_, sum) = mirror_store::hash_file(&self.dest.join("crates").join(rel)).unwrap();
            assert_eq!(
                &sum.to_string(),
                cksum,
                "{} has the wrong bytes",
                rel.display()
            );
        }
        files.len()
    }
}

pub(crate) fn summary(out: &Output) -> Value {
    let text = stdout(out);
    let last = text.lines().last().unwrap_or_else(|| {
        panic!("no output; stderr:\n{}", stderr(out));
    });
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "last line is not JSON ({e}): {last}\nstderr:\n{}",
            stderr(out)
        )
    })
}

pub(crate) fn count(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

#[test]
fn first_sync_mirrors_everything_and_the_second_downloads_nothing() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    assert!(n > 50, "the fixture should have many versions, has {n}");

    let (out, first) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&first, "index_versions"), n);
    assert_eq!(count(&first, "selected"), n);
    assert_eq!(count(&first, "already_present"), 0);
    assert_eq!(count(&first, "downloaded"), n);
    assert_eq!(count(&first, "failed"), 0);
    assert_eq!(first["failures"], Value::Array(vec![]));
    let bytes: u64 = f.registry.versions.iter().map(|v| v.size).sum();
    assert_eq!(count(&first, "downloaded_bytes"), bytes);
    for field in ["removed_upstream", "checksum_changed", "duration_ms"] {
        assert!(first[field].is_u64(), "{field} in {first}");
    }
    // Every version is in place, under its final name, with bytes matching its cksum.
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
    // The human summary went to stderr, since stdout carries the JSON.
    assert!(
        stderr(&out).contains("done: every selected version"),
        "{}",
        stderr(&out)
    );

    // Straight to the CDN once two redirects agreed: the API was asked only a few times.
    let api = f
        .server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .count();
    assert!(api <= 4, "{api} requests went to the download API");

    f.server.clear_requests();
    // The index has not changed: the second sync diffs the tree against itself and reads nothing.
    let (out, second) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(second["mode"], "incremental");
    assert_eq!(count(&second, "index_files_read"), 0);
    assert_eq!(count(&second, "downloaded"), 0);
    // A full compare looks at every version and finds all of them present.
    let (out, full) = f.sync(&["--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(full["mode"], "full");
    assert_eq!(count(&full, "downloaded"), 0);
    assert_eq!(count(&full, "already_present"), n);
    let crate_requests = f
        .server
        .requests()
        .iter()
        .filter(|r| !r.path.starts_with("/index/"))
        .count();
    assert_eq!(crate_requests, 0, "a no-op sync must not download");

    let (out, status) = f.status();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&status, "verified"), n);
    assert_eq!(count(&status, "verified_bytes"), bytes);
    assert_eq!(count(&status, "failed"), 0);
    assert_eq!(status["index_source"], Value::String(f.index()));
    assert_eq!(
        status["synced_commit"],
        Value::String(f.registry.commit.clone())
    );
    assert!(status["cdn_template"].as_str().unwrap().contains("{crate}"));

    let (out, verify) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&verify, "checked"), n);
    assert_eq!(count(&verify, "ok"), n);
    assert_eq!(verify["missing"], Value::Array(vec![]));
    assert_eq!(verify["corrupt"], Value::Array(vec![]));
    assert_eq!(verify["unexpected"], Value::Array(vec![]));
    assert_eq!(count(&verify, "repaired"), 0);

    // The human forms work too.
    let out = f
        .command(&["status", "--dest", f.dest.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains(&format!("verified:   {n} versions")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_index_is_remembered_and_a_dry_run_writes_nothing() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let (out, dry) = f.sync(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(dry["dry_run"], Value::Bool(true));
    assert_eq!(count(&dry, "would_download"), n);
    // The index gives no sizes, and nothing was downloaded before.
    assert_eq!(count(&dry, "would_download_unknown_size"), n);
    assert_eq!(count(&dry, "would_download_bytes"), 0);
    assert_eq!(count(&dry, "downloaded"), 0);
    assert!(f.files_under_crates().is_empty());
    assert!(
        f.server
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/index/")),
        "a dry run downloads nothing"
    );

    // A dry run records nothing, so the index is not remembered yet.
    let dest = f.dest.to_str().unwrap();
    let out = f.command(&["sync", "--dest", dest]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass --index"), "{}", stderr(&out));

    let (out, _) = f.sync(&["--crate", f.registry.versions[0].name().as_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Now it is: a sync without --index uses the recorded one.
    let out = f
        .command(&["sync", "--dest", dest, "--json", "--rate", "1000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = summary(&out);
    assert_eq!(count(&all, "index_versions"), n);
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);

    // A version the mirror held before has a known size: a dry run after verify found it
    // missing counts its bytes.
    let gone = &f.registry.versions[3];
    std::fs::remove_file(f.store().crate_path(gone.name(), gone.vers())).unwrap();
    let (out, _) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (out, dry) = f.sync(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&dry, "would_download"), 1, "{dry}");
    assert_eq!(count(&dry, "would_download_bytes"), gone.size, "{dry}");
    assert_eq!(count(&dry, "would_download_unknown_size"), 0, "{dry}");
    // The human summary (on stderr beside --json) gives the same.
    let human = stderr(&out);
    let line = human
        .lines()
        .find(|l| l.contains("would fetch:"))
        .unwrap_or_else(|| panic!("no would-fetch line in {human}"));
    assert!(
        line.contains("1 versions, ") && !line.contains("unknown") && !line.contains("known:"),
        "{line}"
    );
}

#[test]
fn selection_by_crate_and_skip_yanked() {
    let f = Fixture::new();
    // Two crates: one with a yanked version if the fixture has any.
    let yanked = f.registry.versions.iter().find(|v| v.entry.yanked());
    let first = f.registry.versions[0].name().clone();
    let mut names = vec![first.clone()];
    if let Some(v) = yanked {
        names.push(v.name().clone());
    }
    names.dedup();
    let mut args = Vec::new();
    for name in &names {
        args.push("--crate");
        args.push(name.as_str());
    }
    args.push("--skip-yanked");
    let (out, report) = f.sync(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let of_names: Vec<_> = f
        .registry
        .versions
        .iter()
        .filter(|v| names.contains(v.name()))
        .collect();
    let wanted = of_names.iter().filter(|v| !v.entry.yanked()).count() as u64;
    assert_eq!(count(&report, "index_versions"), of_names.len() as u64);
    assert_eq!(count(&report, "selected"), wanted);
    assert_eq!(count(&report, "downloaded"), wanted);
    assert_eq!(f.assert_files_are_verified_copies() as u64, wanted);

    // A crate the index does not have is a problem, reported by name.
    let (out, report) = f.sync(&["--crate", "no-such-crate-here"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(report["not_in_index"][0], "no-such-crate-here");
}

#[test]
fn faults_exit_1_with_the_failures_listed_and_the_next_run_retries_them() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let (missing, broken, wrong) = (f.cdn_path(1), f.cdn_path(2), f.cdn_path(3));
    f.server.inject(&missing, Fault::Status(404));
    f.server.inject(&broken, Fault::Status(500));
    f.server.inject(&wrong, Fault::WrongBytes);
    // Transient trouble elsewhere is retried within the run and costs nothing.
    f.server.inject_times(&f.cdn_path(4), Fault::Status(503), 2);
    f.server
        .inject_times(&f.cdn_path(5), Fault::Truncate { after: 10 }, 1);

    let (out, report) = f.sync(&["--attempts", "3"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(count(&report, "failed"), 3);
    assert_eq!(count(&report, "downloaded"), n - 3);
    let mut kinds: Vec<(String, String)> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(!f["message"].as_str().unwrap().is_empty());
            (
                format!(
                    "{} {}",
                    f["name"].as_str().unwrap(),
                    f["vers"].as_str().unwrap()
                ),
                f["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    let mut expected = vec![
        (f.registry.versions[1].clone(), "not_found"),
        (f.registry.versions[2].clone(), "http"),
        (f.registry.versions[3].clone(), "checksum_mismatch"),
    ]
    .into_iter()
    .map(|(v, k)| (format!("{} {}", v.name(), v.vers()), k.to_owned()))
    .collect::<Vec<_>>();
    expected.sort();
    assert_eq!(kinds, expected);
    // No bad bytes anywhere under crates/, and the failed ones are not there.
    assert_eq!(f.assert_files_are_verified_copies() as u64, n - 3);
    let (_, status) = f.status();
    assert_eq!(count(&status, "failed"), 3);
    // The human summary names them too.
    let text = stderr(&out);
    assert!(text.contains("failed:       3 versions"), "{text}");
    assert!(
        text.contains(f.registry.versions[1].name().as_str()),
        "{text}"
    );

    f.server.clear_faults();
    f.server.clear_requests();
    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&report, "downloaded"), 3);
    assert_eq!(count(&report, "already_present"), n - 3);
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
    let (_, status) = f.status();
    assert_eq!(count(&status, "failed"), 0);
    assert_eq!(count(&status, "verified"), n);
}

#[test]
fn verify_finds_missing_corrupt_and_unexpected_files_and_repair_mends_them() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let store = f.store();
    let (gone, bad, flipped) = (
        &f.registry.versions[0],
        &f.registry.versions[1],
        &f.registry.versions[2],
    );
    std::fs::remove_file(store.crate_path(gone.name(), gone.vers())).unwrap();
    // Same size, one byte different: only the hash can tell.
    let bad_path = store.crate_path(bad.name(), bad.vers());
    let mut bytes = std::fs::read(&bad_path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&bad_path, &bytes).unwrap();
    // Truncated: caught by the size alone.
    let flipped_path = store.crate_path(flipped.name(), flipped.vers());
    let len = std::fs::metadata(&flipped_path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&flipped_path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let stray = f.dest.join("crates").join("stray.txt");
    std::fs::write(&stray, b"not a crate").unwrap();

    let (out, report) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(count(&report, "checked"), n);
    assert_eq!(count(&report, "ok"), n - 3);
    let refs = |field: &str| -> Vec<String> {
        let mut list: Vec<String> = report[field]
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
        list.sort();
        list
    };
    assert_eq!(
        refs("missing"),
        vec![format!("{} {}", gone.name(), gone.vers())]
    );
    let mut corrupt = vec![
        format!("{} {}", bad.name(), bad.vers()),
        format!("{} {}", flipped.name(), flipped.vers()),
    ];
    corrupt.sort();
    assert_eq!(refs("corrupt"), corrupt);
    assert_eq!(
        report["unexpected"],
        serde_json::json!(["crates/stray.txt"])
    );
    assert_eq!(count(&report, "repaired"), 0);
    // The state no longer claims them.
    let (_, status) = f.status();
    assert_eq!(count(&status, "verified"), n - 3);
    assert_eq!(count(&status, "failed"), 3);

    f.server.clear_requests();
    let (out, report) = f.verify(&["--repair"]);
    // The stray file is still there, so the run still reports a problem.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(count(&report, "repaired"), 3, "{report}");
    assert_eq!(
        report["unexpected"],
        serde_json::json!(["crates/stray.txt"])
    );
    // Repairs went straight to the CDN with the learned template, never to the API.
    let requests = f.server.requests();
    assert!(requests.iter().all(|r| !r.path.starts_with("/api/")));
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.path.starts_with("/crates/"))
            .count(),
        3
    );
    // Corrupt copies were moved to quarantine, not deleted.
    let quarantined: Vec<String> = crate::files_below(&f.dest.join(".mirror/quarantine"))
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(
        quarantined
            .iter()
            .any(|p| p.ends_with(&format!("{}-{}.crate", bad.name(), bad.vers()))),
        "{quarantined:?}"
    );

    std::fs::remove_file(&stray).unwrap();
    let (out, report) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&report, "ok"), n);
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
}

/// The sparse protocol as an update path for named crates: a second sync of unchanged crates
/// costs one conditional request each, answered 304, and downloads nothing.
#[test]
fn named_crates_over_the_sparse_index_cost_one_304_each_when_unchanged() {
    let f = Fixture::new();
    let names: Vec<&str> = {
        let mut names: Vec<&str> = f
            .registry
            .versions
            .iter()
            .map(|v| v.name().as_str())
            .collect();
        names.dedup();
        names.into_iter().take(3).collect()
    };
    let wanted = f
        .registry
        .versions
        .iter()
        .filter(|v| names.contains(&v.name().as_str()))
        .count() as u64;
    let dest = f.dest.to_str().unwrap();
    let index = format!("sparse+{}", f.server.index_url());
    let mut args = vec![
        "sync", "--dest", dest, "--index", &index, "--json", "--rate", "1000",
    ];
    for name in &names {
        args.extend(["--crate", name]);
    }
    let out = f.command(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = summary(&out);
    assert_eq!(report["mode"], "selected");
    assert_eq!(count(&report, "downloaded"), wanted, "{report}");

    f.server.clear_requests();
    let out = f.command(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = summary(&out);
    assert_eq!(count(&report, "downloaded"), 0, "{report}");
    assert_eq!(count(&report, "already_present"), wanted, "{report}");
    let index_files: Vec<_> = f
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/index/") && !r.path.ends_with("/config.json"))
        .collect();
    assert_eq!(index_files.len(), names.len(), "{index_files:?}");
    assert!(
        index_files.iter().all(|r| r.status == 304),
        "{index_files:?}"
    );
    assert!(
        f.server
            .requests()
            .iter()
            .all(|r| !r.path.starts_with("/crates/") && !r.path.starts_with("/api/")),
        "nothing downloaded"
    );
}

/// Drift that only a full compare sees (here a record lost with its file left in place, with
/// other bytes) and whose download then fails is retried by the next plain sync: no later diff
/// touches that index file, so that sync compares everything again.
#[test]
fn a_full_compare_that_failed_is_followed_by_another() {
    let f = Fixture::new();
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = &f.registry.versions[2];
    {
        let state = mirror_state::State::open(
            &f.store().state_dir(),
            mirror_state::StateOptions::default(),
        )
        .unwrap();
        assert!(state.remove(v.name(), v.vers()).unwrap());
        state.flush().unwrap();
    }
    std::fs::write(f.store().crate_path(v.name(), v.vers()), b"other bytes").unwrap();
    f.server.inject(&f.cdn_path(2), Fault::Status(500));
    let (out, report) = f.sync(&["--full", "--attempts", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(count(&report, "failed"), 1, "{report}");

    f.server.clear_faults();
    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "full", "{report}");
    assert_eq!(count(&report, "downloaded"), 1, "{report}");
    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "incremental", "{report}");
    assert_eq!(
        f.assert_files_are_verified_copies(),
        f.registry.versions.len()
    );
}

/// Whether the published index (`index/`) offers `name` `vers`.
pub(crate) fn published(
    dest: &Path,
    name: &mirror_index::CrateName,
    vers: &mirror_index::Version,
) -> bool {
    let path = dest.join("index").join(mirror_index::index_path(name));
    let Ok(bytes) = std::fs::read(&path) else {
        return false;
    };
    mirror_index::IndexFile::parse(&mirror_index::index_path(name), &bytes)
        .entries
        .iter()
        .any(|e| e.vers() == vers)
}

/// A verify that finds damage without repairing it leaves failures an incremental sync (which
/// reads only the index files that changed upstream) would never look at: the next plain sync
/// compares everything and mends them, and the published index stops offering, then offers
/// again, what is broken, then mended.
#[test]
fn damage_found_by_verify_is_mended_by_the_next_plain_sync() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "full");
    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "incremental", "{report}");

    let store = f.store();
    let (gone, bad) = (&f.registry.versions[0], &f.registry.versions[1]);
    assert!(published(&f.dest, gone.name(), gone.vers()));
    std::fs::remove_file(store.crate_path(gone.name(), gone.vers())).unwrap();
    let bad_path = store.crate_path(bad.name(), bad.vers());
    let good_bytes = std::fs::read(&bad_path).unwrap();
    let mut bytes = good_bytes.clone();
    bytes[0] ^= 0xff;
    std::fs::write(&bad_path, &bytes).unwrap();

    let (out, report) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(report["missing"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["corrupt"].as_array().unwrap().len(), 1, "{report}");
    // Neither is offered to cargo any more.
    assert!(!published(&f.dest, gone.name(), gone.vers()));
    assert!(!published(&f.dest, bad.name(), bad.vers()));
    // status says what the next sync will do about it.
    let (_, status) = f.status();
    assert_eq!(
        status["full_compare_needed"], "verify found 2 versions missing or corrupt",
        "{status}"
    );
    assert_eq!(status["publish_pending"], false, "{status}");

    // The corrupt file is put back by hand: the next verify finds it intact again, records it
    // verified and offers it again at once.
    std::fs::write(&bad_path, &good_bytes).unwrap();
    let (out, report) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(count(&report, "ok"), n - 1, "{report}");
    assert!(published(&f.dest, bad.name(), bad.vers()));
    assert!(!published(&f.dest, gone.name(), gone.vers()));

    // Nothing changed upstream, yet the next plain sync downloads the missing version.
    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "full", "{report}");
    assert_eq!(count(&report, "downloaded"), 1, "{report}");
    assert!(published(&f.dest, gone.name(), gone.vers()));
    let (_, status) = f.status();
    assert_eq!(status["full_compare_needed"], Value::Null, "{status}");
    // Mended: back to incremental syncs that download nothing.
    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "incremental", "{report}");
    assert_eq!(count(&report, "downloaded"), 0, "{report}");
    let (out, report) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&report, "ok"), n);
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
}

#[test]
fn a_second_process_on_the_same_mirror_is_refused_with_exit_2() {
    let f = Fixture::new();
    let (out, _) = f.sync(&["--crate", f.registry.versions[0].name().as_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let held = mirror_state::State::open(
        &f.store().state_dir(),
        mirror_state::StateOptions {
            holder: "the test".into(),
            ..Default::default()
        },
    )
    .unwrap();
    for args in [
        vec!["sync", "--dest", f.dest.to_str().unwrap()],
        vec!["verify", "--dest", f.dest.to_str().unwrap()],
        vec!["status", "--dest", f.dest.to_str().unwrap()],
    ] {
        let out = f.command(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains("held by pid") && text.contains("the test"),
            "{text}"
        );
    }
    drop(held);
    let (out, _) = f.status();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_sync_killed_at_random_moments_always_converges() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    // Slow enough that every kill lands mid-run: a few hundred versions at 25 per second take
    // longer than all the rounds' waits together (at most 12 s).
    let slow = ["--rate", "25", "--jobs", "4"];
    let mut rng = fastrand::Rng::with_seed(0x5eed_4b11);
    let mut kills = 0;
    for round in 0..12 {
        let mut child: Child = f
            .sync_command(&slow)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(100..1000)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        // Whatever the moment, nothing under crates/ is partial, temp or wrong.
        let present = f.assert_files_are_verified_copies();
        if present as u64 == n && round >= 10 {
            break;
        }
    }
    assert!(kills >= 10, "only {kills} runs were killed mid-way");

    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        count(&report, "already_present") + count(&report, "downloaded"),
        n,
        "{report}"
    );
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
    let (out, verify) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&verify, "ok"), n);
    assert_eq!(verify["unexpected"], Value::Array(vec![]));
    // Temp files of killed runs were cleaned at the start of the next one.
    let tmp = f.dest.join(".mirror/tmp");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn ctrl_c_stops_cleanly_and_the_next_run_resumes() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let mut child = f
        .sync_command(&["--rate", "30", "--jobs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once it logged a progress line (every 5 s off a terminal) while downloading,
    // well before the 10 s the whole fixture takes at 30 versions/s.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        let read = err.read_line(&mut line).unwrap();
        assert!(read > 0, "sync ended without a progress line:\n{log}");
        log.push_str(&line);
        if line.starts_with("downloading: ") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress line:\n{log}"
        );
    }
    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        err.read_to_string(&mut rest).unwrap();
        rest
    });
    let mut out = child.wait_with_output().unwrap();
    log.push_str(&rest.join().unwrap());
    out.stderr = log.into_bytes();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = summary(&out);
    assert_eq!(report["interrupted"], Value::Bool(true));
    let done = count(&report, "downloaded");
    assert!(
        done > 0 && done < n,
        "downloaded {done} of {n} before the interrupt"
    );
    assert!(
        stderr(&out).contains("run the same command again"),
        "{}",
        stderr(&out)
    );
    // Off a terminal, progress is a log line every few seconds: stage, versions done of the
    // total, bytes, rate and time left.
    let log = stderr(&out);
    let progress = log
        .lines()
        .find(|l| l.starts_with("downloading: "))
        .unwrap_or_else(|| panic!("no progress line in:\n{log}"));
    assert!(
        progress.contains(&format!("/{n} versions, ")) && progress.contains("/s)"),
        "{progress}"
    );
    // Everything it did is recorded and intact. A download dropped between its rename and its
    // record leaves a good file without a record (at most one per job), adopted next time.
    let present = f.assert_files_are_verified_copies() as u64;
    assert!(
        (done..=done + 2).contains(&present),
        "{present} files, {done} downloaded"
    );
    let (_, status) = f.status();
    assert_eq!(count(&status, "verified"), done);

    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&report, "already_present"), present);
    assert_eq!(count(&report, "adopted"), present - done);
    assert_eq!(count(&report, "downloaded"), n - present);
}

/// Two real `sync` processes on one mirror: the second is refused at once with exit 2 and a
/// message naming the first (its pid and what it is), and the first is unharmed.
#[test]
fn a_second_sync_process_is_refused_while_the_first_runs() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    // Slow enough to be still running when the second starts.
    let first = f
        .sync_command(&["--rate", "20", "--jobs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = f.store().state_dir().join("LOCK");
    let holder = format!("pid {} (mirror-cli sync)", first.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != holder {
        assert!(
            std::time::Instant::now() < deadline,
            "the first sync never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for command in ["sync", "verify"] {
        let out = if command == "sync" {
            f.sync_command(&[]).output().unwrap()
        } else {
            f.command(&["verify", "--dest", f.dest.to_str().unwrap()])
                .output()
                .unwrap()
        };
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(text.contains(&holder), "{command}: {text}");
    }
    // Still running: the refusal did not disturb it. Stop it as Ctrl-C would.
    let pid = first.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    let out = first.wait_with_output().unwrap();
    let report = summary(&out);
    assert_eq!(report["interrupted"], Value::Bool(true), "{report}");

    // With the first gone its lock went with it: a new sync finishes the job.
    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        count(&report, "already_present") + count(&report, "downloaded"),
        n
    );
}

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` on `dir`. Panics, saying why, when mounting is not allowed:
    /// this test needs root (CI runs as root) and must not pass by skipping.
    fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "the full-disk test needs to mount a small tmpfs (run the tests as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_owned(),
        }
    }

    /// Frees space by growing the filesystem to `bytes`, keeping its content.
    fn resize(&self, bytes: u64) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// `--dest` on a small tmpfs that fills up halfway through: the run stops with a clear error
/// naming the full disk, exit 1 and its report, nothing partial is under `crates/`, the state
/// claims no file that is not in place, and once space is freed the same command completes the
/// mirror.
#[test]
fn a_full_disk_stops_cleanly_and_a_rerun_after_space_is_freed_completes() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let bytes: u64 = f.registry.versions.iter().map(|v| v.size).sum();
    let disk = Tmpfs::mount(&f.dest, bytes / 2);
    let (out, report) = f.sync(&["--jobs", "4"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.to_lowercase().contains("no space left"), "{text}");
    let failures = report["failures"].as_array().unwrap();
    assert!(failures.iter().any(|f| f["kind"] == "storage"), "{report}");
    let present = f.assert_files_are_verified_copies() as u64;
    assert!(present > 0 && present < n, "{present} of {n}");
    assert_eq!(
        std::fs::read_dir(f.dest.join(".mirror/tmp"))
            .unwrap()
            .count(),
        0,
        "temp files were left behind"
    );
    // The state database cannot even open on a full disk (sled writes when it opens): status
    // says so plainly instead of guessing.
    let out = f
        .command(&["status", "--dest", f.dest.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));

    disk.resize(bytes * 4);
    // Every record is of a file in place with the right bytes. Records that never reached the
    // disk leave files without records, which the next sync hashes and adopts.
    let (out, status) = f.status();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let verified = count(&status, "verified");
    assert!(verified <= present, "{verified} records, {present} files");
    let (out, verify) = f.verify(&[]);
    assert_eq!(count(&verify, "ok"), verified, "{verify}");
    assert_eq!(verify["missing"], Value::Array(vec![]));
    assert_eq!(verify["corrupt"], Value::Array(vec![]));
    // Files whose records were lost are all that verify cannot account for (it does not read
    // the index); it says so with exit 1 and leaves them in place.
    let unexpected = verify["unexpected"].as_array().unwrap().len() as u64;
    assert_eq!(unexpected, present - verified, "{verify}");
    let code = if unexpected == 0 { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));

    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&report, "downloaded"), n - present, "{report}");
    assert_eq!(count(&report, "adopted"), present - verified, "{report}");
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
    let (out, verify) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&verify, "ok"), n);
}

/// `verify --repair` on a disk that fills up while it downloads: it stops with the disk-full
/// error and its report (exit 1) instead of dying while it publishes, leaves nothing partial,
/// and once there is room the same repair completes the mirror.
#[test]
fn a_repair_on_a_full_disk_stops_cleanly_and_the_mirror_completes_once_there_is_room() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let bytes: u64 = f.registry.versions.iter().map(|v| v.size).sum();
    let _disk = Tmpfs::mount(&f.dest, bytes * 2);
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let store = f.store();
    for v in f.registry.versions.iter().step_by(2) {
        std::fs::remove_file(store.crate_path(v.name(), v.vers())).unwrap();
    }
    // Fill the disk, then give back a little: room for the state to open and a few repairs,
    // not for all of them.
    let filler = f.dest.join(".mirror/filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len.saturating_sub(2 << 20))
        .unwrap();

    let (out, report) = f.verify(&["--repair"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("No space left"), "{text}");
    let failures = report["failures"].as_array().unwrap();
    assert!(failures.iter().any(|f| f["kind"] == "storage"), "{report}");
    let missing = report["missing"].as_array().unwrap().len() as u64;
    assert_eq!(missing, n.div_ceil(2), "{report}");
    assert!(count(&report, "repaired") < missing, "{report}");
    f.assert_files_are_verified_copies();
    assert_eq!(
        std::fs::read_dir(f.dest.join(".mirror/tmp"))
            .unwrap()
            .count(),
        0,
        "temp files were left behind"
    );

    // With room again, the same repair finishes the job. (A plain sync would not: an
    // incremental sync of an unchanged index does not look at versions verify marked failed.)
    std::fs::remove_file(&filler).unwrap();
    let (out, report) = f.verify(&["--repair"]);
    // Exit 1: it found damage (and mended all of it, as `repaired` says).
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let broken = (report["missing"].as_array().unwrap().len()
        + report["corrupt"].as_array().unwrap().len()) as u64;
    assert!(count(&report, "repaired") > 0, "{report}");
    assert_eq!(count(&report, "repaired"), broken, "{report}");
    assert!(
        report["failures"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (out, verify) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&verify, "ok"), n);
}
