//! Atomic writes, temp cleanup, quarantine and hashing.

use std::path::Path;

use mirror_core::Sink as _;
use sha2::{Digest as _, Sha256};

use crate::{Fixture, files_under, name, vers};

#[tokio::test]
async fn commit_makes_file_appear_only_then_with_exact_bytes() {
    let fx = Fixture::new();
    let (n, v) = (name("Serde"), vers("1.0.0+meta"));
    let dest = fx.store.crate_path(&n, &v);

    let mut pending = fx.store.begin(&n, &v).unwrap();
    assert_eq!(pending.final_path(), dest);
    assert!(pending.temp_path().starts_with(fx.store.temp_dir()));
    pending.reset().await.unwrap();
    pending.write(b"hello ").await.unwrap();
    pending.write(b"world").await.unwrap();
    pending.finish().await.unwrap();
    assert!(!dest.exists(), "final path exists before commit");
    assert!(
        !dest.parent().unwrap().exists(),
        "crate dir exists before commit"
    );
    let temp = pending.temp_path().to_owned();

    let path = pending.commit().await.unwrap();
    assert_eq!(path, dest);
    assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
    assert!(!temp.exists());
    assert!(files_under(&fx.store.temp_dir()).is_empty());
    fx.assert_nothing_outside();
}

#[tokio::test]
async fn reset_truncates() {
    let fx = Fixture::new();
    let (n, v) = (name("ab"), vers("0.1.0"));
    let mut pending = fx.store.begin(&n, &v).unwrap();
    pending.write(b"a partial body that is long").await.unwrap();
    pending.reset().await.unwrap();
    pending.write(b"short").await.unwrap();
    pending.finish().await.unwrap();
    let path = pending.commit().await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), b"short");
}

#[tokio::test]
async fn large_bodies_are_written_whole_and_reset_truncates_what_reached_the_file() {
    let fx = Fixture::new();
    let (n, v) = (name("large"), vers("1.0.0"));
    // Megabytes in uneven chunks, reset after they reached the temp file.
    let body: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let mut pending = fx.store.begin(&n, &v).unwrap();
    for chunk in body.chunks(16_411) {
        pending.write(chunk).await.unwrap();
    }
    assert!(std::fs::metadata(pending.temp_path()).unwrap().len() > 0);
    pending.reset().await.unwrap();
    assert_eq!(std::fs::metadata(pending.temp_path()).unwrap().len(), 0);
    for chunk in body.chunks(65_536) {
        pending.write(chunk).await.unwrap();
    }
    pending.finish().await.unwrap();
    let path = pending.commit().await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), body);
    assert!(files_under(&fx.store.temp_dir()).is_empty());
}

#[tokio::test]
async fn commit_replaces_an_existing_file() {
    let fx = Fixture::new();
    let (n, v) = (name("a"), vers("1.0.0"));
    for body in [&b"corrupt"[..], b"good"] {
        let mut pending = fx.store.begin(&n, &v).unwrap();
        pending.write(body).await.unwrap();
        pending.commit().await.unwrap();
    }
    assert_eq!(std::fs::read(fx.store.crate_path(&n, &v)).unwrap(), b"good");
}

#[tokio::test]
async fn drop_without_commit_removes_temp() {
    let fx = Fixture::new();
    let (n, v) = (name("abc"), vers("0.1.0"));
    let mut pending = fx.store.begin(&n, &v).unwrap();
    pending.write(b"unverified").await.unwrap();
    let temp = pending.temp_path().to_owned();
    assert!(temp.exists());
    drop(pending);
    assert!(!temp.exists());
    assert!(!fx.store.crate_path(&n, &v).exists());
    assert!(files_under(&fx.store.temp_dir()).is_empty());
    assert!(files_under(&fx.store.crates_dir()).is_empty());
}

#[test]
fn temp_names_are_unique() {
    let fx = Fixture::new();
    let (n, v) = (name("abc"), vers("0.1.0"));
    let a = fx.store.begin(&n, &v).unwrap();
    let b = fx.store.begin(&n, &v).unwrap();
    assert_ne!(a.temp_path(), b.temp_path());
}

#[test]
fn write_atomic_writes_and_replaces() {
    let fx = Fixture::new();
    let rel = Path::new("index/se/rd/serde");
    let path = fx.store.write_atomic(rel, b"one\n").unwrap();
    assert_eq!(path, fx.store.root().join(rel));
    assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
    fx.store.write_atomic(rel, b"two\n").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
    assert!(files_under(&fx.store.temp_dir()).is_empty());
    fx.assert_nothing_outside();
}

#[test]
fn clean_temp_removes_leftovers() {
    let fx = Fixture::new();
    let tmp = fx.store.temp_dir();
    std::fs::write(tmp.join("123-0-abc.part"), b"x").unwrap();
    std::fs::write(tmp.join("other"), b"y").unwrap();
    std::fs::create_dir_all(tmp.join("dir/sub")).unwrap();
    std::fs::write(tmp.join("dir/sub/f"), b"z").unwrap();
    // Leftovers of a begin() whose process died: the guard never ran.
    std::mem::forget(fx.store.begin(&name("a"), &vers("1.0.0")).unwrap());
    assert_eq!(fx.store.clean_temp().unwrap(), 4);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    assert_eq!(fx.store.clean_temp().unwrap(), 0);
}

#[cfg(unix)]
#[test]
fn clean_temp_does_not_follow_symlinks() {
    let fx = Fixture::new();
    let outside = fx.parent.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"k").unwrap();
    std::os::unix::fs::symlink(&outside, fx.store.temp_dir().join("link")).unwrap();
    assert_eq!(fx.store.clean_temp().unwrap(), 1);
    assert!(outside.join("keep").exists());
}

#[test]
fn quarantine_moves_the_file_with_its_reason() {
    let fx = Fixture::new();
    let (n, v) = (name("Serde"), vers("1.0.0+x"));
    let rel = fx.store.relative_crate_path(&n, &v);
    fx.store.write_atomic(&rel, b"bad bytes").unwrap();

    let moved = fx.store.quarantine(&n, &v, "checksum mismatch").unwrap();
    assert!(!fx.store.crate_path(&n, &v).exists());
    assert!(moved.starts_with(fx.store.quarantine_dir()));
    assert!(moved.ends_with(&rel));
    assert_eq!(std::fs::read(&moved).unwrap(), b"bad bytes");
    let mut note = moved.clone().into_os_string();
    note.push(".reason");
    assert_eq!(
        std::fs::read_to_string(note).unwrap(),
        "checksum mismatch\n"
    );

    // A missing file is an error, not a silent success.
    assert!(fx.store.quarantine(&n, &v, "again").is_err());
    fx.assert_nothing_outside();
}

#[test]
fn quarantine_path_only_takes_files_under_crates() {
    let fx = Fixture::new();
    fx.store
        .write_atomic(Path::new("crates/stray.txt"), b"s")
        .unwrap();
    let moved = fx
        .store
        .quarantine_path(&fx.store.crates_dir().join("stray.txt"), "unexpected")
        .unwrap();
    assert!(moved.ends_with("crates/stray.txt"));
    assert!(!fx.store.crates_dir().join("stray.txt").exists());

    fx.store
        .write_atomic(Path::new("index/config.json"), b"{}")
        .unwrap();
    for bad in [
        "index/config.json",
        "crates",
        "../x",
        "crates/../index/config.json",
    ] {
        assert!(
            fx.store.quarantine_path(Path::new(bad), "no").is_err(),
            "{bad}"
        );
    }
    assert!(fx.store.index_root().join("config.json").exists());
}

#[test]
fn hash_file_matches_sha2() {
    let fx = Fixture::new();
    // Larger than the read buffer, and not a multiple of it.
    let data: Vec<u8> = (0..700_001u32).map(|i| (i * 31 % 251) as u8).collect();
    let path = fx
        .store
        .write_atomic(Path::new("crates/big"), &data)
        .unwrap();
    let (len, sum) = mirror_store::hash_file(&path).unwrap();
    assert_eq!(len, data.len() as u64);
    assert_eq!(sum.as_bytes()[..], Sha256::digest(&data)[..]);

    let empty = fx
        .store
        .write_atomic(Path::new("crates/empty"), b"")
        .unwrap();
    let (len, sum) = mirror_store::hash_file(&empty).unwrap();
    assert_eq!(len, 0);
    assert_eq!(
        sum.to_string(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
