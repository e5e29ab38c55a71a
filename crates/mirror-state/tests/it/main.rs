//! Integration tests for mirror-state: one test binary, one module per feature.

#![allow(clippy::unwrap_used, reason = "tests")]

mod corrupt;
mod damage;
mod meta;
mod open;
mod read_only;
mod records;
mod scale;

use std::path::Path;

use mirror_core::{Checksum, CrateName, Verified, Verifier, Version};
use mirror_state::{State, StateOptions};

fn name(s: &str) -> CrateName {
    CrateName::new(s).unwrap()
}

fn vers(s: &str) -> Version {
    Version::new(s).unwrap()
}

fn ck(byte: u8) -> Checksum {
    Checksum::from_bytes([byte; 32])
}

/// The checksum of `len` bytes of value `byte`.
fn sum(byte: u8, len: usize) -> Checksum {
    // A verifier expecting another checksum reports the actual one.
    let mut verifier = Verifier::new(ck(0));
    verifier.update(&vec![byte; len]);
    verifier.finish().unwrap_err().actual
}

/// The proof `mark_verified` asks for: `len` bytes of value `byte`, hashed and matched.
fn proof(byte: u8, len: usize) -> Verified {
    let mut verifier = Verifier::new(sum(byte, len));
    verifier.update(&vec![byte; len]);
    verifier.finish().unwrap()
}

fn open(dir: &Path) -> State {
    State::open(dir, options()).unwrap()
}

fn options() -> StateOptions {
    StateOptions {
        cache_bytes: 8 << 20,
        holder: "mirror-state tests".into(),
    }
}

/// The engine's directory inside a state directory, for tests that plant raw data. Planting
/// changes the database behind the integrity record's back, which is what damage looks like, so
/// the record is removed: the state then opens like one from a build that kept none.
fn raw_db(dir: &Path) -> sled::Db {
    match std::fs::remove_file(dir.join("INTEGRITY")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
        _ => {}
    }
    sled::open(dir.join("sled")).unwrap()
}

/// Every file below `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}
