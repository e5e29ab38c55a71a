//! Runs killed right after their first irreversible step (a retraction from the published index,
//! a move to quarantine), aimed with the engine's test crash points (`MIRROR_SYNC_TEST_CRASH_AT`,
//! a real SIGKILL at that moment): the state on disk must already say what the step took away,
//! and the next plain run must mend everything.

use std::os::unix::process::ExitStatusExt as _;
use std::process::Output;

use mirror_index::{CrateName, Version};
use mirror_state::{State, StateOptions, Status};
use mirror_sync::CRASH_AT_ENV;
use serde_json::Value;

use crate::history::{self, Registry, files_of};
use crate::stderr;
use crate::sync::{Fixture, count, published, summary};

fn assert_killed(out: &Output) {
    assert_eq!(
        out.status.signal(),
        Some(9),
        "the run was not killed at its crash point ({:?}); stderr:\n{}",
        out.status,
        stderr(out)
    );
}

/// The record of `name vers` as the state on disk has it after the kill.
fn record_of(dest: &std::path::Path, name: &CrateName, vers: &Version) -> Option<Status> {
    let store = mirror_store::Store::open(dest).unwrap();
    let state = State::open(&store.state_dir(), StateOptions::default()).unwrap();
    state.get(name, vers).unwrap().map(|r| r.status)
}

fn failed_kind(status: Option<Status>) -> Option<String> {
    match status {
        Some(Status::Failed { kind, .. }) => Some(kind),
        _ => None,
    }
}

#[test]
fn a_verify_killed_after_retracting_leaves_the_broken_versions_recorded_failed() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let store = f.store();
    let (gone, bad) = (&f.registry.versions[0], &f.registry.versions[1]);
    std::fs::remove_file(store.crate_path(gone.name(), gone.vers())).unwrap();
    let bad_path = store.crate_path(bad.name(), bad.vers());
    let mut bytes = std::fs::read(&bad_path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&bad_path, &bytes).unwrap();
    assert!(published(&f.dest, gone.name(), gone.vers()));

    let out = f
        .command(&["verify", "--dest", f.dest.to_str().unwrap()])
        .env(CRASH_AT_ENV, "verify-retracted")
        .output()
        .unwrap();
    assert_killed(&out);
    // Killed after the lines were taken out...
    assert!(!published(&f.dest, gone.name(), gone.vers()));
    assert!(!published(&f.dest, bad.name(), bad.vers()));
    // ...and the state on disk no longer claims the files, and asks for a full compare.
    assert_eq!(
        failed_kind(record_of(&f.dest, gone.name(), gone.vers())).as_deref(),
        Some("missing")
    );
    assert_eq!(
        failed_kind(record_of(&f.dest, bad.name(), bad.vers())).as_deref(),
        Some("corrupt")
    );
    let (_, status) = f.status();
    assert_eq!(count(&status, "verified"), n - 2, "{status}");
    assert_eq!(count(&status, "failed"), 2, "{status}");
    assert!(status["full_compare_needed"].is_string(), "{status}");

    // A plain sync mends it: it compares everything and downloads both again.
    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "full", "{report}");
    assert_eq!(count(&report, "downloaded"), 2, "{report}");
    assert!(published(&f.dest, gone.name(), gone.vers()));
    assert!(published(&f.dest, bad.name(), bad.vers()));
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
}

#[test]
fn a_repair_killed_after_quarantining_leaves_the_file_recorded_failed() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bad = &f.registry.versions[3];
    let bad_path = f.store().crate_path(bad.name(), bad.vers());
    let mut bytes = std::fs::read(&bad_path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&bad_path, &bytes).unwrap();

    let out = f
        .command(&[
            "verify",
            "--dest",
            f.dest.to_str().unwrap(),
            "--repair",
            "--rate",
            "1000",
        ])
        .env(CRASH_AT_ENV, "verify-quarantined")
        .output()
        .unwrap();
    assert_killed(&out);
    assert!(!bad_path.exists(), "the corrupt file went to quarantine");
    assert_eq!(
        failed_kind(record_of(&f.dest, bad.name(), bad.vers())).as_deref(),
        Some("corrupt")
    );
    assert!(!published(&f.dest, bad.name(), bad.vers()));

    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&report, "downloaded"), 1, "{report}");
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
    let (out, _) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `--index` with a new source and `--prune`, killed right after the first file went to
/// quarantine: the new source is recorded, the pruned versions are no longer claimed, and a
/// plain `sync --prune` (no `--index`) finishes the job from the new source.
#[test]
fn a_prune_from_a_new_index_killed_after_quarantining_forgets_nothing() {
    let mut reg = Registry::new();
    reg.publish("keep", "1.0.0", b"keep 1.0.0");
    reg.publish("gone", "1.0.0", b"gone 1.0.0");
    reg.publish("gone", "1.1.0", b"gone 1.1.0");
    reg.commit("base", false);
    // The mirror is first synced from a copy of the index; the index that drops `gone` is
    // then given as a new source.
    let first = reg.tmp.path().join("first.git");
    let copied = std::process::Command::new("cp")
        .args(["-a"])
        .arg(reg.bare())
        .arg(&first)
        .status()
        .unwrap();
    assert!(copied.success());
    let dest = reg.dest();
    let cache = reg.tmp.path().join("cache");
    let first_url = format!("file://{}", first.display());
    let sync = |index: Option<&str>, extra: &[&str]| -> Output {
        let mut args = vec!["sync", "--dest", dest.to_str().unwrap(), "--json"];
        if let Some(index) = index {
            args.extend(["--index", index]);
        }
        args.extend(["--rate", "1000", "--backoff-ms", "5"]);
        args.extend_from_slice(extra);
        crate::run(&cache, &args)
    };
    let out = sync(Some(&first_url), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(history::published(&dest, "gone").len(), 2);

    reg.delete("gone");
    reg.commit("gone deleted", false);
    let new_url = format!("file://{}", reg.bare().display());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mirror-cli"));
    command
        .args([
            "sync",
            "--dest",
            dest.to_str().unwrap(),
            "--index",
            &new_url,
            "--prune",
            "--rate",
            "1000",
        ])
        .env("HOME", &cache)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("RUST_LOG")
        .env(CRASH_AT_ENV, "prune-quarantined");
    let out = command.output().unwrap();
    assert_killed(&out);
    let gone_files = files_of(&dest, "gone");
    assert_eq!(
        gone_files.len(),
        1,
        "one file went, one is left: {gone_files:?}"
    );
    assert!(history::published(&dest, "gone").is_empty());
    let name = CrateName::new("gone").unwrap();
    for vers in ["1.0.0", "1.1.0"] {
        let vers = Version::new(vers).unwrap();
        let record = record_of(&dest, &name, &vers);
        assert!(
            !matches!(record, Some(Status::Verified { .. })),
            "gone {vers} is still claimed: {record:?}"
        );
    }
    let status = summary(&crate::run(
        &cache,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    ));
    assert_eq!(status["index_source"], Value::from(new_url.clone()));
    assert_eq!(count(&status, "verified"), 1, "{status}");
    assert_eq!(count(&status, "removed_upstream"), 2, "{status}");

    // No --index: the new source was recorded; the prune finishes with the file left behind.
    let out = sync(None, &["--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = summary(&out);
    assert!(count(&report, "pruned") >= 1, "{report}");
    assert!(files_of(&dest, "gone").is_empty());
    let quarantined = crate::files_below(&dest.join(".mirror/quarantine"));
    assert_eq!(
        quarantined
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "crate"))
            .count(),
        2,
        "{quarantined:?}"
    );
    assert_eq!(history::published(&dest, "keep").len(), 1);
}

/// A full compare that found a file of another size than recorded, killed right after moving
/// it to quarantine: the state no longer claims it and asks for a full compare, which the next
/// plain sync runs, downloading it again.
#[test]
fn a_full_compare_killed_after_quarantining_a_resized_file_leaves_it_recorded_failed() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "incremental", "{report}");
    let v = &f.registry.versions[4];
    let path = f.store().crate_path(v.name(), v.vers());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, &bytes).unwrap();

    let out = f
        .sync_command(&["--full"])
        .env(CRASH_AT_ENV, "sync-quarantined")
        .output()
        .unwrap();
    assert_killed(&out);
    assert!(!path.exists(), "the resized file went to quarantine");
    assert_eq!(
        failed_kind(record_of(&f.dest, v.name(), v.vers())).as_deref(),
        Some("corrupt")
    );
    assert!(!published(&f.dest, v.name(), v.vers()));
    let (_, status) = f.status();
    assert!(status["full_compare_needed"].is_string(), "{status}");

    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["mode"], "full", "{report}");
    assert_eq!(count(&report, "downloaded"), 1, "{report}");
    assert!(published(&f.dest, v.name(), v.vers()));
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
}
