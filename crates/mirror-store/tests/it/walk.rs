//! Walk: classifying what is under `crates/`.

use std::path::Path;

use mirror_store::WalkEntry;

use crate::{Fixture, name, vers};

/// Writes `files` (relative to the root), walks, and compares a one-line summary per entry.
#[track_caller]
fn check(files: &[&str], expect: &[&str]) {
    let fx = Fixture::new();
    for f in files {
        fx.store.write_atomic(Path::new(f), f.as_bytes()).unwrap();
    }
    assert_eq!(summary(&fx), expect);
}

fn summary(fx: &Fixture) -> Vec<String> {
    let root = fx.store.root();
    fx.store
        .walk()
        .map(|e| match e.unwrap() {
            WalkEntry::Crate {
                name,
                vers,
                path,
                size,
            } => {
                assert_eq!(path, fx.store.crate_path(&name, &vers));
                assert_eq!(size, std::fs::metadata(&path).unwrap().len());
                format!("crate {name} {vers}")
            }
            WalkEntry::Unexpected { path } => {
                let rel = path.strip_prefix(root).unwrap();
                format!("unexpected {}", rel.to_str().unwrap().replace('\\', "/"))
            }
            other => panic!("unknown entry {other:?}"),
        })
        .collect()
}

#[test]
fn crates_in_place() {
    check(
        &[
            "crates/1/a/a-0.1.0.crate",
            "crates/2/ab/ab-1.0.0.crate",
            "crates/3/a/Abc/Abc-1.0.0.crate",
            "crates/se/rd/serde/serde-1.0.0+build.1.crate",
            "crates/se/rd/serde/serde-1.0.0-rc.1.crate",
            "crates/fo/o-/foo-bar/foo-bar-2.0.0.crate",
        ],
        &[
            "crate a 0.1.0",
            "crate ab 1.0.0",
            "crate Abc 1.0.0",
            "crate foo-bar 2.0.0",
            "crate serde 1.0.0+build.1",
            "crate serde 1.0.0-rc.1",
        ],
    );
}

#[test]
fn unexpected_files() {
    check(
        &[
            // Stray files at every level.
            "crates/README",
            "crates/se/stray",
            "crates/se/rd/serde/notes.txt",
            // Wrong prefix directory: uppercase, wrong shard, too shallow, too deep.
            "crates/3/A/Abc/Abc-1.0.0.crate",
            "crates/2/abc/abc-1.0.0.crate",
            "crates/serde/serde-1.0.0.crate",
            "crates/x/se/rd/serde/serde-1.0.0.crate",
            // Temp-looking and misnamed files.
            "crates/se/rd/serde/serde-1.0.0.crate.part",
            "crates/se/rd/serde/.serde-1.0.0.crate.tmp",
            "crates/se/rd/serde/Serde-1.0.0.crate",
            "crates/se/rd/serde/serde-1.0.crate",
            "crates/se/rd/serde/serde_json-1.0.0.crate",
            "crates/fo/o-/foo-bar/foo-bar-baz-1.0.0.crate",
        ],
        &[
            "unexpected crates/2/abc/abc-1.0.0.crate",
            "unexpected crates/3/A/Abc/Abc-1.0.0.crate",
            "unexpected crates/README",
            "unexpected crates/fo/o-/foo-bar/foo-bar-baz-1.0.0.crate",
            "unexpected crates/se/rd/serde/.serde-1.0.0.crate.tmp",
            "unexpected crates/se/rd/serde/Serde-1.0.0.crate",
            "unexpected crates/se/rd/serde/notes.txt",
            "unexpected crates/se/rd/serde/serde-1.0.0.crate.part",
            "unexpected crates/se/rd/serde/serde-1.0.crate",
            "unexpected crates/se/rd/serde/serde_json-1.0.0.crate",
            "unexpected crates/se/stray",
            "unexpected crates/serde/serde-1.0.0.crate",
            "unexpected crates/x/se/rd/serde/serde-1.0.0.crate",
        ],
    );
}

#[test]
fn a_directory_named_like_a_crate_file_is_walked_into() {
    check(
        &["crates/1/a/a-1.0.0.crate/inner"],
        &["unexpected crates/1/a/a-1.0.0.crate/inner"],
    );
}

#[test]
fn empty_store_walks_nothing() {
    check(&[], &[]);
}

#[cfg(unix)]
#[test]
fn symlinks_are_unexpected_and_not_followed() {
    let fx = Fixture::new();
    let (n, v) = (name("serde"), vers("1.0.0"));
    let real = fx.store.relative_crate_path(&n, &v);
    fx.store.write_atomic(&real, b"real").unwrap();

    // A link to a file, named exactly like a crate file.
    let target = fx.store.crate_path(&n, &v);
    let link = fx.store.crate_path(&n, &vers("1.0.1"));
    std::os::unix::fs::symlink(&target, &link).unwrap();
    // A link to a directory outside the mirror, holding a well-placed crate file.
    let outside = fx.parent.path().join("outside");
    std::fs::create_dir_all(outside.join("ab")).unwrap();
    std::fs::write(outside.join("ab/ab-1.0.0.crate"), b"x").unwrap();
    std::os::unix::fs::symlink(&outside, fx.store.crates_dir().join("2")).unwrap();

    assert_eq!(
        summary(&fx),
        [
            "unexpected crates/2",
            "crate serde 1.0.0",
            "unexpected crates/se/rd/serde/serde-1.0.1.crate",
        ]
    );
}

#[cfg(unix)]
#[test]
fn writes_refuse_to_go_through_a_symlinked_directory() {
    let fx = Fixture::new();
    let outside = fx.parent.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, fx.store.crates_dir().join("2")).unwrap();
    let rel = fx.store.relative_crate_path(&name("ab"), &vers("1.0.0"));
    let err = fx.store.write_atomic(&rel, b"x").unwrap_err();
    assert!(
        matches!(err, mirror_store::Error::NotADirectory { .. }),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}
