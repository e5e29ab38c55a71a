//! Layout: where each name and version lives, and what `open` creates.

use std::path::Path;

use mirror_store::Store;

use crate::{Fixture, name, vers};

#[track_caller]
fn check(n: &str, v: &str, expect: &str) {
    let fx = Fixture::new();
    let rel = fx.store.relative_crate_path(&name(n), &vers(v));
    assert_eq!(rel.to_str().unwrap().replace('\\', "/"), expect);
    let abs = fx.store.crate_path(&name(n), &vers(v));
    assert!(abs.is_absolute());
    assert_eq!(abs, fx.store.root().join(&rel));
}

#[test]
fn crate_paths() {
    check("a", "0.1.0", "crates/1/a/a-0.1.0.crate");
    check("B", "1.0.0", "crates/1/B/B-1.0.0.crate");
    check("ab", "0.0.1", "crates/2/ab/ab-0.0.1.crate");
    check("abc", "1.2.3", "crates/3/a/abc/abc-1.2.3.crate");
    check("Abc", "1.2.3", "crates/3/a/Abc/Abc-1.2.3.crate");
    check("serde", "1.0.0", "crates/se/rd/serde/serde-1.0.0.crate");
    check(
        "Serde_JSON",
        "1.0.0",
        "crates/se/rd/Serde_JSON/Serde_JSON-1.0.0.crate",
    );
    check(
        "a-b-c",
        "0.1.0-alpha.1",
        "crates/a-/b-/a-b-c/a-b-c-0.1.0-alpha.1.crate",
    );
    check(
        "foo",
        "1.0.0+build.5",
        "crates/3/f/foo/foo-1.0.0+build.5.crate",
    );
    check(
        "zstd-sys",
        "2.0.9+zstd.1.5.5",
        "crates/zs/td/zstd-sys/zstd-sys-2.0.9+zstd.1.5.5.crate",
    );
}

#[test]
fn open_creates_layout_and_private_dirs_are_under_root() {
    let fx = Fixture::new();
    let s = &fx.store;
    assert!(s.root().is_absolute());
    assert!(s.crates_dir().is_dir());
    assert!(s.temp_dir().is_dir());
    assert_eq!(s.crates_dir(), s.root().join("crates"));
    assert_eq!(s.state_dir(), s.root().join(".mirror/state"));
    assert_eq!(s.index_dir(), s.root().join(".mirror/index.git"));
    assert_eq!(s.temp_dir(), s.root().join(".mirror/tmp"));
    assert_eq!(s.index_root(), s.root().join("index"));
    fx.assert_nothing_outside();
}

#[test]
fn open_is_idempotent_and_accepts_nested_dest() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a/b/mirror");
    let first = Store::open(&dest).unwrap();
    let second = Store::open(&dest).unwrap();
    assert_eq!(first.root(), second.root());
}

#[cfg(unix)]
#[test]
fn open_refuses_symlinked_crates_dir() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let dest = dir.path().join("mirror");
    std::fs::create_dir(&dest).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("crates")).unwrap();
    let err = Store::open(&dest).unwrap_err();
    assert!(
        matches!(err, mirror_store::Error::NotADirectory { .. }),
        "{err}"
    );
}

#[test]
fn write_atomic_rejects_escaping_paths() {
    let fx = Fixture::new();
    for bad in ["../x", "/etc/x", "", "index/../../x", "./x"] {
        let err = fx.store.write_atomic(Path::new(bad), b"x").unwrap_err();
        assert!(
            matches!(err, mirror_store::Error::InvalidPath { .. }),
            "{bad}: {err}"
        );
    }
    fx.assert_nothing_outside();
}
