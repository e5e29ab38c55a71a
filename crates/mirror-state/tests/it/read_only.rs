//! `State::open_read_only`: reads a copy, refuses writes, respects a writer's lock, and checks
//! the copy against the integrity record like a normal open.

use mirror_state::{Error, State};

use crate::{name, open, options, proof, vers};

#[test]
fn a_read_only_state_reads_refuses_writes_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    state
        .mark_verified(&name("a"), &vers("1.0.0"), &proof(1, 10))
        .unwrap();
    state.set_index_tree("abc").unwrap();
    // A run holds the state: a reader is refused, naming it.
    let err = State::open_read_only(dir.path(), options()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    drop(state);

    let files = |dir: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = crate::files(dir)
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        out.sort();
        out
    };
    let before = files(dir.path());
    let state = State::open_read_only(dir.path(), options()).unwrap();
    assert!(state.is_read_only());
    assert!(
        state
            .get(&name("a"), &vers("1.0.0"))
            .unwrap()
            .unwrap()
            .is_verified()
    );
    assert_eq!(state.index_tree().unwrap().as_deref(), Some("abc"));
    let err = state.set_index_tree("def").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "state {} is open read-only: setting a meta value needs write access to it",
            dir.path().display()
        )
    );
    assert!(matches!(
        state.mark_verified(&name("b"), &vers("1.0.0"), &proof(1, 1)),
        Err(Error::ReadOnly { .. })
    ));
    // Readers share the lock; a writer waits for them.
    let second = State::open_read_only(dir.path(), options()).unwrap();
    assert!(matches!(
        State::open(dir.path(), options()),
        Err(Error::Locked { .. })
    ));
    drop((state, second));
    assert_eq!(
        files(dir.path()),
        before,
        "a read-only open wrote to the state"
    );

    // Damage is refused from the copy too.
    std::fs::remove_dir_all(dir.path().join("sled/db")).ok();
    std::fs::remove_file(dir.path().join("sled/db")).ok();
    assert!(matches!(
        State::open_read_only(dir.path(), options()),
        Err(Error::Damaged { .. })
    ));
}
