//! Tombstones and meta values.

use mirror_state::{Error, Tombstone};

use crate::{name, open, vers};

#[test]
fn tombstones_for_versions_and_whole_crates() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    let (n, v) = (name("gone"), vers("1.0.0"));
    assert_eq!(state.tombstone_for(&n, &v).unwrap(), None);

    state.tombstone(&n, Some(&v), 10).unwrap();
    state.tombstone(&name("deleted"), None, 20).unwrap();
    state
        .tombstone(&name("deleted"), Some(&vers("0.1.0")), 30)
        .unwrap();
    assert_eq!(state.tombstone_for(&n, &v).unwrap().unwrap().at, 10);
    assert_eq!(state.tombstone_for(&n, &vers("2.0.0")).unwrap(), None);
    // The whole-crate tombstone covers every version; a version's own wins.
    assert_eq!(
        state
            .tombstone_for(&name("deleted"), &vers("9.9.9"))
            .unwrap()
            .unwrap()
            .at,
        20
    );
    assert_eq!(
        state
            .tombstone_for(&name("deleted"), &vers("0.1.0"))
            .unwrap()
            .unwrap()
            .at,
        30
    );

    let all: Vec<Tombstone> = state.tombstones().map(Result::unwrap).collect();
    assert_eq!(
        all,
        [
            Tombstone {
                name: name("deleted"),
                vers: None,
                at: 20
            },
            Tombstone {
                name: name("deleted"),
                vers: Some(vers("0.1.0")),
                at: 30
            },
            Tombstone {
                name: name("gone"),
                vers: Some(vers("1.0.0")),
                at: 10
            },
        ]
    );

    assert!(state.clear_tombstone(&name("deleted"), None).unwrap());
    assert!(!state.clear_tombstone(&name("deleted"), None).unwrap());
    assert_eq!(
        state
            .tombstone_for(&name("deleted"), &vers("9.9.9"))
            .unwrap(),
        None
    );
    assert_eq!(state.tombstones().count(), 2);
}

#[test]
fn meta_markers_and_free_form_values() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    assert_eq!(state.index_commit().unwrap(), None);
    assert_eq!(state.sync_count().unwrap(), 0);
    assert_eq!(state.last_full_compare_unix().unwrap(), None);

    state.set_index_commit("0123abcd").unwrap();
    state.set_index_tree("4567ef").unwrap();
    state
        .set_cdn_template("https://cdn.example/{crate}/{crate}-{version}.crate")
        .unwrap();
    assert_eq!(state.increment_sync_count().unwrap(), 1);
    assert_eq!(state.increment_sync_count().unwrap(), 2);
    state.set_last_full_compare_unix(1_700_000_000).unwrap();
    state.set_meta("custom", "value").unwrap();

    assert_eq!(state.index_commit().unwrap().as_deref(), Some("0123abcd"));
    assert_eq!(state.index_tree().unwrap().as_deref(), Some("4567ef"));
    assert_eq!(
        state.cdn_template().unwrap().as_deref(),
        Some("https://cdn.example/{crate}/{crate}-{version}.crate")
    );
    assert_eq!(state.sync_count().unwrap(), 2);
    assert_eq!(state.last_full_compare_unix().unwrap(), Some(1_700_000_000));
    assert_eq!(state.get_meta("custom").unwrap().as_deref(), Some("value"));
    assert!(state.remove_meta("custom").unwrap());
    assert_eq!(state.get_meta("custom").unwrap(), None);

    // The schema stamp is off limits, and a number that is not one is an error, not a panic.
    let err = state.set_meta("schema_version", "9").unwrap_err();
    assert!(matches!(err, Error::ReservedKey { .. }), "{err}");
    state.set_meta("sync_count", "many").unwrap();
    assert_eq!(
        state.sync_count().unwrap_err().to_string(),
        r#"corrupt state meta value "sync_count": "many" is not a number"#
    );
}
