//! A damaged database (truncated, bits flipped) is refused, never trusted with data missing; a
//! run killed before it closed is never mistaken for damage.

use std::path::Path;
use std::process::Command;

use mirror_state::{Batch, Error, State};

use crate::{ck, name, open, options, proof, vers};

/// A state shaped like a small mirror's: 289 records (some failed), tombstones, markers.
fn build(dir: &Path) {
    let state = open(dir);
    let mut batch = Batch::new();
    for i in 0..289u32 {
        let (n, v) = (
            name(&format!("crate-{:03}", i / 3)),
            vers(&format!("1.0.{i}")),
        );
        if i % 17 == 0 {
            batch.mark_failed(&n, &v, ck(2), "not_found", "404 from the registry");
        } else {
            batch.mark_verified(&n, &v, &proof(1, 1_000 + i as usize));
        }
    }
    state.apply(batch).unwrap();
    for i in 0..12 {
        state
            .tombstone(&name(&format!("crate-{i:03}")), Some(&vers("1.0.0")), 5)
            .unwrap();
    }
    state.set_index_commit(&"c".repeat(40)).unwrap();
    state.set_index_tree(&"d".repeat(40)).unwrap();
    state
        .set_cdn_template("http://127.0.0.1:1/{crate}/{version}")
        .unwrap();
    state
        .set_meta("publish_base_url", "https://mirror.example.org")
        .unwrap();
    state.increment_sync_count().unwrap();
}

/// Everything a state says, as lines to compare.
fn dump(state: &State) -> Vec<String> {
    let mut out: Vec<String> = state
        .iter()
        .map(|r| {
            let (n, v, r) = r.unwrap();
            format!("record {n} {v} {r:?}")
        })
        .collect();
    out.extend(
        state
            .tombstones()
            .map(|t| format!("tombstone {:?}", t.unwrap())),
    );
    for key in [
        "index_commit",
        "index_tree",
        "cdn_template",
        "publish_base_url",
        "sync_count",
    ] {
        out.push(format!("meta {key} {:?}", state.get_meta(key).unwrap()));
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The engine's data files: the log, and snapshots when there are any.
fn data_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir.join("sled"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n == "db" || n.starts_with("snap."))
        .collect();
    files.sort();
    files
}

/// What opening a damaged copy gave.
#[derive(Debug, Default)]
struct Outcomes {
    /// Refused as damaged: the messages.
    damaged: Vec<String>,
    /// Opened, and says exactly what the intact state says (the damage hit nothing in use).
    intact: usize,
    /// Refused with another error (the engine noticed by itself).
    other: Vec<String>,
}

/// Damages copies of the state in `dir` with `damage` (given the copy's file) for each case,
/// and opens each. Panics if any opens and says something else than the intact state: that
/// is the silent loss this guards against.
fn try_each(dir: &Path, cases: &[(String, u64)], damage: impl Fn(&Path, u64)) -> Outcomes {
    // Each case starts from the files as the last run left them (opening the state, even
    // to read, lets the engine write a snapshot).
    let pristine = tempfile::tempdir().unwrap();
    copy_dir(dir, pristine.path());
    let intact = dump(&open(dir));
    let mut outcomes = Outcomes::default();
    for (file, at) in cases {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), copy.path());
        damage(&copy.path().join("sled").join(file), *at);
        match State::open(copy.path(), options()) {
            Ok(state) => {
                assert_eq!(
                    dump(&state),
                    intact,
                    "{file} damaged at {at}: opened without an error, and differs"
                );
                outcomes.intact += 1;
            }
            Err(Error::Damaged { problems, .. }) => outcomes.damaged.push(problems),
            Err(e) => outcomes.other.push(e.to_string()),
        }
    }
    outcomes
}

#[test]
fn a_truncated_database_is_refused_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let mut cases = Vec::new();
    for file in data_files(dir.path()) {
        let len = std::fs::metadata(dir.path().join("sled").join(&file))
            .unwrap()
            .len();
        for percent in [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99] {
            cases.push((file.clone(), len * percent / 100));
        }
    }
    let outcomes = try_each(dir.path(), &cases, |path, len| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len)
            .unwrap();
    });
    // Without the integrity record, sled opens most of these and says nothing.
    assert!(outcomes.damaged.len() >= cases.len() / 2, "{outcomes:#?}");
    assert!(
        outcomes.damaged.iter().any(|p| p.contains("records where")),
        "{outcomes:#?}"
    );
}

#[test]
fn flipped_bits_in_the_database_are_refused_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let mut cases = Vec::new();
    for file in data_files(dir.path()) {
        let path = dir.path().join("sled").join(&file);
        let bytes = std::fs::read(&path).unwrap();
        // Only where something was written: the log's unused tail is zeros.
        let used = bytes.iter().rposition(|&b| b != 0).unwrap_or(0) as u64;
        for i in 0..40 {
            cases.push((file.clone(), used * i / 40));
        }
    }
    let outcomes = try_each(dir.path(), &cases, |path, at| {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at as usize] ^= 0x10;
        std::fs::write(path, bytes).unwrap();
    });
    assert!(!outcomes.damaged.is_empty(), "{outcomes:#?}");
}

/// The message a user sees, with the recovery command.
#[test]
fn the_damage_message_names_the_recovery() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let db = dir.path().join("sled/db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 10)
        .unwrap();
    let err = State::open(dir.path(), options()).unwrap_err();
    let text = err
        .to_string()
        .replace(&dir.path().display().to_string(), "[STATE]");
    insta::assert_snapshot!(text);
}

#[test]
fn a_damaged_or_missing_integrity_record() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let record = dir.path().join("INTEGRITY");
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(&record, text.replace("records 289", "records 288")).unwrap();
    let err = State::open(dir.path(), options()).unwrap_err();
    assert!(
        err.to_string().contains(
            "its integrity record INTEGRITY is unreadable: its content does not match its check"
        ),
        "{err}"
    );
    // Without a record (a state from an older build) there is nothing to compare: it opens,
    // and gets a record at the end of the next run that changes it.
    std::fs::remove_file(&record).unwrap();
    let state = open(dir.path());
    assert_eq!(state.counts().unwrap().verified, 289 - 17);
    drop(state);
    assert!(
        !record.exists(),
        "a run that changed nothing wrote a record"
    );
    let state = open(dir.path());
    state.set_meta("x", "y").unwrap();
    drop(state);
    assert!(
        std::fs::read_to_string(&record)
            .unwrap()
            .contains("closed yes")
    );
    open(dir.path());
}

/// The totals follow every kind of write exactly, so a healthy state is never refused.
#[test]
fn every_kind_of_write_keeps_the_record_true() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    for round in 0..3u8 {
        let state = open(dir.path());
        let (n, v) = (name("crate-001"), vers("1.0.3"));
        state.mark_verified(&n, &v, &proof(3, 1)).unwrap();
        state.mark_verified(&n, &v, &proof(3, 1)).unwrap();
        state.mark_failed(&n, &v, ck(3), "corrupt", "x").unwrap();
        state
            .mark_failed(&name("new"), &vers("0.1.0"), ck(3), "k", "m")
            .unwrap();
        assert!(state.remove(&name("crate-002"), &vers("1.0.6")).unwrap() == (round == 0));
        let mut batch = Batch::new();
        batch.mark_verified(&name("b"), &vers("1.0.0"), &proof(4, 1));
        batch.mark_failed(&name("b"), &vers("1.0.0"), ck(4), "k", "m");
        batch.remove(&name("crate-003"), &vers("1.0.9"));
        batch.mark_failed(&name("crate-004"), &vers("1.0.12"), ck(4), "k", "m");
        batch.mark_verified(&name("c"), &vers(&format!("1.0.{round}")), &proof(4, 1));
        state.apply(batch).unwrap();
        state.tombstone(&name("gone"), None, 1).unwrap();
        state.tombstone(&name("gone"), None, 2).unwrap();
        state
            .clear_tombstone(&name("crate-000"), Some(&vers("1.0.0")))
            .unwrap();
        state.clear_tombstone(&name("never"), None).unwrap();
        state.increment_sync_count().unwrap();
        drop(state);
    }
    let state = open(dir.path());
    let text = std::fs::read_to_string(dir.path().join("INTEGRITY")).unwrap();
    let counts = state.counts().unwrap();
    assert!(
        text.contains(&format!("\nverified {}\n", counts.verified)),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nfailed {}\n", counts.failed)),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nrecords {}\n", state.iter().count())),
        "{text}"
    );
    assert!(
        text.contains(&format!("\ntombstones {}\n", state.tombstones().count())),
        "{text}"
    );
}

const KILL_ENV: &str = "MIRROR_STATE_TEST_KILLED_CHILD";

/// Not a test on its own: the child of `a_killed_run_is_not_refused`, run with `KILL_ENV` set
/// to `{dir}:{flush}`. It opens the state, changes it, and exits without closing it, as a
/// killed run does (no destructor runs; writes not flushed may be lost).
#[test]
fn killed_child() {
    let Some(arg) = std::env::var_os(KILL_ENV) else {
        return;
    };
    let arg = arg.to_str().unwrap().to_owned();
    let (dir, flush) = arg.rsplit_once(':').unwrap();
    let state = open(Path::new(dir));
    for i in 0..500u32 {
        state
            .mark_verified(&name("killed"), &vers(&format!("2.0.{i}")), &proof(7, 1))
            .unwrap();
    }
    state.tombstone(&name("crate-005"), None, 9).unwrap();
    state.set_index_tree(&"e".repeat(40)).unwrap();
    state.remove(&name("crate-006"), &vers("1.0.18")).unwrap();
    if flush == "flush" {
        state.flush().unwrap();
    }
    std::process::exit(0);
}

fn run_killed_child(dir: &Path, flush: bool) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "damage::killed_child", "--test-threads=1"])
        .env(
            KILL_ENV,
            format!("{}:{}", dir.display(), if flush { "flush" } else { "no" }),
        )
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_killed_run_is_not_refused_and_the_next_clean_run_is_checked_again() {
    for flush in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path());
        run_killed_child(dir.path(), flush);
        let record = std::fs::read_to_string(dir.path().join("INTEGRITY")).unwrap();
        assert!(record.contains("closed no"), "{record}");
        // Killed twice in a row: still not refused.
        run_killed_child(dir.path(), flush);
        let state = open(dir.path());
        if flush {
            assert_eq!(state.iter_crate(&name("killed")).count(), 500);
        }
        // A normal run after it closes cleanly and is checked in full by the next open.
        state.set_meta("after", "the kill").unwrap();
        drop(state);
        let record = std::fs::read_to_string(dir.path().join("INTEGRITY")).unwrap();
        assert!(record.contains("closed yes"), "{record}");
        let state = open(dir.path());
        assert_eq!(
            state.get_meta("after").unwrap().as_deref(),
            Some("the kill")
        );
        drop(state);
        // And damage after that is caught again: here, the whole database lost.
        std::fs::remove_dir_all(dir.path().join("sled")).unwrap();
        assert!(matches!(
            State::open(dir.path(), options()),
            Err(Error::Damaged { .. })
        ));
    }
}

/// After a killed run the totals cannot be compared, but losing what the last clean run wrote
/// (the generation it stored) is still caught.
#[test]
fn damage_after_a_killed_run_that_loses_the_last_clean_close_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    // A second clean run, so that generation 2 is what the meta tree must hold.
    let state = open(dir.path());
    state.set_meta("second", "run").unwrap();
    drop(state);
    run_killed_child(dir.path(), true);
    // The whole database gone: the generation with it.
    std::fs::remove_dir_all(dir.path().join("sled")).unwrap();
    let err = State::open(dir.path(), options()).unwrap_err();
    assert!(
        err.to_string().contains(
            "it is at generation none where the last run, which did not finish, started at 2 \
             and would have ended at 3"
        ),
        "{err}"
    );
}
