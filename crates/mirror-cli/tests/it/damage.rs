//! A damaged state database is refused with the recovery named (exit 2), and the recovery
//! (move the state aside, sync) rebuilds the records, the kept removals and the base URL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::history::Registry;
use crate::{files_below, stderr, stdout};

fn run(reg: &Registry, args: &[&str]) -> Output {
    crate::run(&reg.tmp.path().join("cache"), args)
}

fn status(reg: &Registry) -> (Output, Value) {
    let dest = reg.dest();
    let out = run(reg, &["status", "--dest", dest.to_str().unwrap(), "--json"]);
    let summary = stdout(&out)
        .lines()
        .last()
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or(Value::Null);
    (out, summary)
}

/// Every published file (the sparse index and its config.json), by path, with its content.
fn published(dest: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let root = dest.join("index");
    files_below(&root)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(&root).unwrap().to_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// A mirror of 5 versions, 2 of them since removed upstream (kept and tombstoned), published
/// with a base URL of its own.
fn mirror() -> Registry {
    let mut reg = Registry::new();
    reg.publish("a", "1.0.0", b"a 1.0.0");
    reg.publish("a", "1.1.0", b"a 1.1.0");
    reg.publish("bb", "0.1.0", b"bb 0.1.0");
    reg.publish("ccc", "2.0.0", b"ccc 2.0.0");
    reg.publish("gone", "1.0.0", b"gone 1.0.0");
    reg.commit("one", false);
    let (out, _) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    reg.delete("gone");
    reg.crates[0].1.pop();
    reg.commit("two", false);
    let (out, s) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s["removed_upstream"], 2, "{s}");
    let dest = reg.dest();
    let out = run(
        &reg,
        &[
            "publish",
            "--dest",
            dest.to_str().unwrap(),
            "--base-url",
            "https://mirror.example.org/crates-mirror",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    reg
}

/// The refusal of every command that opens the state; returns the error line of `status`
/// (paths replaced).
fn assert_refused(reg: &Registry) -> String {
    let dest = reg.dest();
    let dest_s = dest.to_str().unwrap();
    let (out, _) = status(reg);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let index = format!("file://{}", reg.tmp.path().join("index.git").display());
    for args in [
        &["verify", "--dest", dest_s][..],
        &["publish", "--dest", dest_s][..],
        &["sync", "--dest", dest_s, "--index", &index][..],
    ] {
        let out = run(reg, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("is damaged"), "{}", stderr(&out));
    }
    error_line(&out, dest_s)
}

fn error_line(out: &Output, dest: &str) -> String {
    stderr(out)
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {}", stderr(out)))
        .replace(dest, "[DEST]")
}

/// How far into what was written the log of the state in `dest` is cut (or where a bit is
/// flipped), in percent.
const CUTS: [u64; 10] = [5, 15, 25, 35, 45, 55, 65, 75, 85, 95];

/// Damages copies of the mirror's state at each of `CUTS` with `damage` (the log file and the
/// offset) and runs `status` on each: every one is refused as damaged, naming the recovery, or
/// says exactly what the intact state says (the damage hit bytes no longer in use). Returns the
/// error lines, deduplicated. Which cut gives which message depends on where the engine's log
/// happens to put things, which varies from run to run, so the lines are checked, not
/// snapshotted.
fn each_damage(reg: &Registry, damage: impl Fn(&Path, usize), lose_snapshots: bool) -> Vec<String> {
    let dest = reg.dest();
    let (_, intact) = status(reg);
    let state = dest.join(".mirror/state");
    let pristine = reg.tmp.path().join("pristine-state");
    copy_dir(&state, &pristine);
    let mut lines = Vec::new();
    for cut in CUTS {
        std::fs::remove_dir_all(&state).unwrap();
        copy_dir(&pristine, &state);
        let db = state.join("sled/db");
        let bytes = std::fs::read(&db).unwrap();
        let used = bytes.iter().rposition(|&b| b != 0).unwrap();
        damage(&db, used * cut as usize / 100);
        if lose_snapshots {
            for entry in std::fs::read_dir(state.join("sled")).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("snap.")
                {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }
        let (out, now) = status(reg);
        match out.status.code() {
            Some(0) => assert_eq!(
                now, intact,
                "cut at {cut}%: status says something else without an error"
            ),
            Some(2) => {
                let line = error_line(&out, dest.to_str().unwrap());
                assert_damage_line(&line, cut);
                if !lines.contains(&line) {
                    lines.push(line);
                }
            }
            code => panic!("cut at {cut}%: exit {code:?}: {}", stderr(&out)),
        }
    }
    std::fs::remove_dir_all(&state).unwrap();
    copy_dir(&pristine, &state);
    lines
}

/// A refusal of a damaged state: says so and names the recovery.
fn assert_damage_line(line: &str, cut: u64) {
    assert!(
        line.starts_with("error: state [DEST]/.mirror/state is damaged: "),
        "cut at {cut}%: {line}"
    );
    assert!(
        line.ends_with(
            "move it aside and sync again (the sync hashes the files in place, records them \
             again and rebuilds the removals and the base URL from the published index; give \
             --index again if the mirror has no other record of its source): mv \
             [DEST]/.mirror/state [DEST]/.mirror/state.damaged"
        ),
        "cut at {cut}%: {line}"
    );
}

/// The one message whose content does not depend on the engine's layout: the whole database
/// lost (log cut to nothing, snapshots gone), found by the integrity record alone.
fn everything_lost_message(reg: &Registry) -> String {
    let sled = reg.dest().join(".mirror/state/sled");
    for entry in std::fs::read_dir(&sled).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("snap.")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    truncate(&sled.join("db"), 0);
    assert_refused(reg)
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

fn truncate(db: &Path, at: usize) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .unwrap()
        .set_len(at as u64)
        .unwrap();
}

fn flip(db: &Path, at: usize) {
    let mut bytes = std::fs::read(db).unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(db, bytes).unwrap();
}

#[test]
fn a_truncated_state_is_refused_naming_the_recovery() {
    let reg = mirror();
    // With the engine's snapshot, it notices the cut log by itself; without it, it opens what
    // is left without a word, and the integrity record catches it.
    let lines = each_damage(&reg, truncate, false);
    assert!(!lines.is_empty(), "no cut was refused");
    let lines = each_damage(&reg, truncate, true);
    assert!(
        lines.iter().any(|l| l.contains("where the record says")),
        "no cut was caught by the integrity record: {lines:#?}"
    );
    insta::assert_snapshot!("everything_lost", everything_lost_message(&reg));
}

#[test]
fn a_state_with_flipped_bits_is_refused_naming_the_recovery() {
    let reg = mirror();
    let lines = each_damage(&reg, flip, false);
    assert!(!lines.is_empty(), "no flipped bit was refused");
    let lines = each_damage(&reg, flip, true);
    assert!(
        lines.iter().any(|l| l.contains("where the record says")),
        "no flipped bit was caught by the integrity record: {lines:#?}"
    );
    let db = reg.dest().join(".mirror/state/sled/db");
    let used = std::fs::read(&db)
        .unwrap()
        .iter()
        .rposition(|&b| b != 0)
        .unwrap();
    flip(&db, used / 2);
    assert_refused(&reg);
}

/// Cuts the database's log in the middle of what was written (its tail is unused zeros).
fn truncate_to_half(db: &Path) {
    let bytes = std::fs::read(db).unwrap();
    let used = bytes.iter().rposition(|&b| b != 0).unwrap();
    truncate(db, used / 2);
}

#[test]
fn moving_the_damaged_state_aside_and_syncing_rebuilds_it() {
    let reg = mirror();
    let dest = reg.dest();
    let (_, before) = status(&reg);
    let published_before = published(&dest);
    assert!(
        String::from_utf8_lossy(&published_before[Path::new("config.json")])
            .contains("https://mirror.example.org/crates-mirror/crates/"),
        "{published_before:?}"
    );

    let state = dest.join(".mirror/state");
    truncate_to_half(&state.join("sled/db"));
    assert_eq!(status(&reg).0.status.code(), Some(2));
    // The recovery the message names.
    std::fs::rename(&state, dest.join(".mirror/state.damaged")).unwrap();
    let (out, s) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s["downloaded"], 0, "{s}");
    assert_eq!(s["adopted"], 5, "{s}");
    assert_eq!(s["removed_upstream"], 2, "{s}");

    let (out, after) = status(&reg);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for field in [
        "verified",
        "verified_bytes",
        "failed",
        "removed_upstream",
        "synced_commit",
    ] {
        assert_eq!(after[field], before[field], "{field}: {after}");
    }
    // The kept removals are still offered, and config.json still points at the base URL.
    assert_eq!(published(&dest), published_before);
    // A publish without --base-url keeps it too (it was recovered into the state).
    let out = run(&reg, &["publish", "--dest", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(published(&dest), published_before);
    let out = run(
        &reg,
        &["verify", "--dest", dest.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
