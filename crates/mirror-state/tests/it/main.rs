//! Integration tests for mirror-state: one test binary, one module per feature.

#![allow(clippy::unwrap_used, reason = "tests")]

mod corrupt;
mod meta;
mod open;
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

/// The engine's directory inside a state directory, for tests that plant raw data.
fn raw_db(dir: &Path) -> sled::Db {
    sled::open(dir.join("sled")).unwrap()
}
