//! Opening: persistence across reopen, the lock and its holder, schema versions and migration.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mirror_state::{Error, SCHEMA_VERSION, State, StateOptions, Status};

use crate::{ck, name, open, options, proof, raw_db, vers};

#[test]
fn everything_survives_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    state
        .mark_verified(&name("a"), &vers("1.0.0"), &proof(1, 10))
        .unwrap();
    state
        .mark_failed(&name("b"), &vers("1.0.0"), ck(2), "not_found", "404")
        .unwrap();
    state.tombstone(&name("c"), None, 5).unwrap();
    state.set_index_tree("abc").unwrap();
    state.flush().unwrap();
    drop(state);

    let state = open(dir.path());
    assert!(
        state
            .get(&name("a"), &vers("1.0.0"))
            .unwrap()
            .unwrap()
            .is_verified()
    );
    let b = state.get(&name("b"), &vers("1.0.0")).unwrap().unwrap();
    assert!(matches!(b.status, Status::Failed { attempts: 1, .. }));
    assert_eq!(state.tombstones().count(), 1);
    assert_eq!(state.index_tree().unwrap().as_deref(), Some("abc"));
    assert_eq!(state.dir(), dir.path());
}

#[test]
fn a_second_open_in_this_process_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(
        dir.path(),
        StateOptions {
            holder: "mirror-cli sync".into(),
            ..options()
        },
    )
    .unwrap();
    let err = State::open(dir.path(), options()).unwrap_err();
    let lock = dir.path().join("LOCK");
    assert_eq!(
        err.to_string(),
        format!(
            "state lock {} is held by pid {} (mirror-cli sync); is another sync running on this \
             mirror?",
            lock.display(),
            std::process::id()
        )
    );
    assert!(matches!(err, Error::Locked { ref path, .. } if *path == lock));
    drop(state);
    open(dir.path());
}

const CHILD_ENV: &str = "MIRROR_STATE_TEST_LOCK_CHILD";

/// Not a test on its own: the child half of `another_process_holding_the_lock_is_named`, which
/// runs this test binary again with `CHILD_ENV` set. Without it, this returns at once.
#[test]
fn lock_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let state = State::open(
        dir,
        StateOptions {
            holder: "mirror-cli sync".into(),
            ..options()
        },
    )
    .unwrap();
    std::fs::write(dir.join("child-ready"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("child-release").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(state);
}

#[test]
fn another_process_holding_the_lock_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "open::lock_child", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.path().join("child-ready").exists() {
        assert!(Instant::now() < deadline, "child never opened the state");
        assert!(child.try_wait().unwrap().is_none(), "child exited early");
        std::thread::sleep(Duration::from_millis(10));
    }

    let err = State::open(dir.path(), options()).unwrap_err();
    let Error::Locked { holder, .. } = &err else {
        panic!("expected Locked, got {err}")
    };
    assert_eq!(*holder, format!("pid {} (mirror-cli sync)", child.id()));

    std::fs::write(dir.path().join("child-release"), "").unwrap();
    assert!(child.wait().unwrap().success());
    // The child is gone and so is its lock, though the file with its pid remains.
    open(dir.path());
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let db = raw_db(dir.path());
        let meta = db.open_tree("meta").unwrap();
        assert_eq!(
            meta.get("schema_version").unwrap().unwrap().as_ref(),
            SCHEMA_VERSION.to_be_bytes()
        );
        meta.insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = State::open(dir.path(), options()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "state database {} has schema version 2, newer than version 1 that this build \
             understands; use a newer build",
            dir.path().join("sled").display()
        )
    );
    // The refusal released the lock and changed nothing.
    let err = State::open(dir.path(), options()).unwrap_err();
    assert!(matches!(
        err,
        Error::SchemaTooNew {
            found: 2,
            supported: 1,
            ..
        }
    ));
}

#[test]
fn a_garbled_schema_stamp_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let db = raw_db(dir.path());
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", b"v1")
            .unwrap();
        db.flush().unwrap();
    }
    let err = State::open(dir.path(), options()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"corrupt state meta value "schema_version": expected 4 bytes, found 2"#
    );
}

#[test]
fn schema_0_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let hex = "ab".repeat(32);
    {
        // The prototype layout: text values in the default tree, no schema stamp.
        let db = raw_db(dir.path());
        db.insert("serde\x001.0.0", format!("{hex} 1234").as_bytes())
            .unwrap();
        db.insert("Foo_Bar\x000.1.0+build.5", format!("{hex} 0").as_bytes())
            .unwrap();
        db.insert("bad\x001.0.0", &b"not a record"[..]).unwrap();
        db.insert("bad\x00", format!("{hex} 1").as_bytes()).unwrap();
        db.insert("bad/name\x001.0.0", format!("{hex} 1").as_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let state = open(dir.path());
    let all: Vec<String> = state
        .iter()
        .map(|r| {
            let (n, v, r) = r.unwrap();
            assert_eq!(r.status, Status::Verified { at: 0 });
            assert_eq!(r.cksum.to_string(), hex);
            format!("{n} {v} {}", r.size)
        })
        .collect();
    // Unreadable v0 records are dropped: they get verified again, never trusted.
    assert_eq!(all, ["Foo_Bar 0.1.0+build.5 0", "serde 1.0.0 1234"]);
    drop(state);
    {
        let db = raw_db(dir.path());
        assert_eq!(
            db.open_tree("meta")
                .unwrap()
                .get("schema_version")
                .unwrap()
                .unwrap()
                .as_ref(),
            1u32.to_be_bytes()
        );
        assert!(db.is_empty(), "the old default tree is cleared");
    }
    assert_eq!(open(dir.path()).iter().count(), 2);
}

/// The engine releases its own file lock only when its background writes end, a moment after
/// the `State` is dropped: a process that closes its state and opens it again at once (a test,
/// a library user running a sync then a verify) was refused now and then with the engine's
/// "could not acquire lock". Our own lock already keeps other processes out, so the open waits
/// for this process's previous instance instead.
#[test]
fn opening_again_at_once_in_this_process_is_never_refused() {
    // Several at once: the engine's writer threads finish later on a busy machine.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let dir = tempfile::tempdir().unwrap();
                for round in 0..100u32 {
                    let state = open(dir.path());
                    let mut batch = mirror_state::Batch::new();
                    for i in 0..50u32 {
                        batch.mark_verified(
                            &name("a"),
                            &vers(&format!("{round}.0.{i}")),
                            &proof(1, 1),
                        );
                    }
                    state.apply(batch).unwrap();
                    state
                        .mark_failed(&name("b"), &vers("1.0.0"), ck(2), "k", "m")
                        .unwrap();
                    drop(state);
                }
                let state = open(dir.path());
                assert_eq!(state.counts().unwrap().verified, 100 * 50);
            });
        }
    });
}
