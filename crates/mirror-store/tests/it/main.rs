//! Integration tests for mirror-store: one binary, one module per feature.
#![allow(clippy::unwrap_used, reason = "tests")]

mod atomic;
mod layout;
mod walk;

use std::path::{Path, PathBuf};

use mirror_core::{CrateName, Version};
use mirror_store::Store;

/// A store in `{tempdir}/mirror`, so tests can check that nothing appears next to it.
struct Fixture {
    parent: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    fn new() -> Self {
        let parent = tempfile::tempdir().unwrap();
        let store = Store::open(&parent.path().join("mirror")).unwrap();
        Fixture { parent, store }
    }

    /// Asserts that the store's parent directory holds nothing but the store.
    fn assert_nothing_outside(&self) {
        let names: Vec<_> = std::fs::read_dir(self.parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["mirror"], "files appeared next to the mirror root");
    }
}

fn name(s: &str) -> CrateName {
    s.parse().unwrap()
}

fn vers(s: &str) -> Version {
    s.parse().unwrap()
}

/// Every file (not directory) under `dir`, relative to it, sorted, `/`-separated.
fn files_under(dir: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path: PathBuf = entry.path();
            if entry.file_type().unwrap().is_dir() {
                go(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                out.push(rel.to_str().unwrap().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        go(dir, dir, &mut out);
    }
    out.sort();
    out
}
