//! The integrity record: a small file beside the database that says what the database held when
//! the last run that changed it ended, so that a database the engine silently "recovered" by
//! dropping data (a truncated or bit-flipped file) is refused instead of trusted.
//!
//! # Why
//!
//! sled checks each log entry's CRC when it opens and, on a bad one, recovers by dropping that
//! entry and everything written after it. It reports no error: the database opens with part of
//! its records, tombstones and meta values gone, and a state that forgot versions would have
//! them downloaded again at best, and published lines or markers silently lost at worst.
//!
//! # The protocol
//!
//! The file `INTEGRITY` in the state directory holds, with a SHA-256 of its own content:
//! - `generation`: a counter, also stored in the meta tree (key `integrity_generation`);
//! - `closed`: whether the run that wrote it ended (`yes`) or was still running (`no`);
//! - the totals: records, verified, failed (and unreadable) records, tombstones;
//! - a digest of every meta value (the sync markers, the CDN template, the base URL, counters).
//!
//! A run writes it (temp file, fsync, rename, directory fsync) twice, and only if it changes the
//! state: **before its first change**, a record with `closed no` and the generation it will end
//! with; and **when it closes** (the `State` is dropped), after storing that generation in the
//! meta tree and flushing the database, a record with `closed yes` and the totals and meta
//! digests of that moment. A run that changes nothing (`status`) writes nothing.
//!
//! On open, before anything is read for use:
//! - no record: a new state, or one written by a build without integrity records: nothing to
//!   compare (it gets a record when a run changes it);
//! - `closed yes`: the database must hold exactly what the record says: same generation, same
//!   meta values, same totals. Anything else is damage;
//! - `closed no` (the last run was killed, or could not write its closing record on a full
//!   disk): the totals and meta values are unknown, since the killed run's last writes may or
//!   may not have reached the disk. Only the generation is checked: it must be the one of the
//!   last clean close or the one the killed run would have written, so a database that lost
//!   more than the killed run's tail is still caught. A killed run is never a reason to refuse
//!   the next one.
//!
//! # Limits
//!
//! - After a killed run, damage that leaves the generation intact is not caught by the next open
//!   (the totals cannot be compared). The next clean close writes a fresh record, so the check
//!   is back from then on.
//! - Damage that keeps every total and meta value but changes a record's content (a flipped bit
//!   sled's CRC misses) is not caught here; `verify` hashes every file against its record.
//! - A state without a record (a new one, or one from an older build, or one whose record was
//!   deleted) cannot be checked.
//! - Opening scans every record once to count them (about as long as one streaming pass).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::Error;

/// The record's file name inside the state directory.
pub(crate) const FILE: &str = "INTEGRITY";
/// The meta key holding the generation of the last clean close.
pub(crate) const GENERATION_KEY: &str = "integrity_generation";

const HEADER: &str = "mirror-state integrity record v1";

/// What a record value counts as. Decided from the encoding version and status tag only, the
/// same way when the database is scanned and when a write is tracked, so the two always agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Verified,
    Failed,
    Unreadable,
}

/// Classifies a stored record value (see `record.rs` for the layout: version byte, 32-byte
/// checksum, 8-byte size, then the status tag).
pub(crate) fn classify(value: &[u8]) -> Class {
    match (value.first(), value.get(41)) {
        (Some(1), Some(0)) => Class::Verified,
        (Some(1), Some(1)) => Class::Failed,
        _ => Class::Unreadable,
    }
}

/// Counts over the records and tombstones trees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) records: u64,
    pub(crate) verified: u64,
    pub(crate) failed: u64,
    pub(crate) tombstones: u64,
}

impl Totals {
    pub(crate) fn add(&mut self, class: Class, sign: i64) {
        let apply = |n: &mut u64| *n = n.saturating_add_signed(sign);
        apply(&mut self.records);
        match class {
            Class::Verified => apply(&mut self.verified),
            Class::Failed => apply(&mut self.failed),
            Class::Unreadable => {}
        }
    }
}

/// One integrity record, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IntegrityRecord {
    /// Closed: the generation the meta tree holds. Open: the one the running run closes with.
    pub(crate) generation: u64,
    pub(crate) closed: bool,
    /// The generation of the last clean close before this record (0: none).
    pub(crate) last_closed: u64,
    pub(crate) totals: Totals,
    /// Meta key to the first 16 hex digits of the SHA-256 of its value.
    pub(crate) meta: BTreeMap<String, String>,
}

/// The short digest of a meta value kept in the record.
pub(crate) fn meta_digest(value: &[u8]) -> String {
    let sum = Sha256::digest(value);
    sum[..8].iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

impl IntegrityRecord {
    fn encode(&self) -> String {
        let mut body = String::new();
        let _ = writeln!(body, "{HEADER}");
        let _ = writeln!(body, "generation {}", self.generation);
        let _ = writeln!(body, "closed {}", if self.closed { "yes" } else { "no" });
        let _ = writeln!(body, "last_closed {}", self.last_closed);
        let t = self.totals;
        let _ = writeln!(body, "records {}", t.records);
        let _ = writeln!(body, "verified {}", t.verified);
        let _ = writeln!(body, "failed {}", t.failed);
        let _ = writeln!(body, "tombstones {}", t.tombstones);
        for (key, digest) in &self.meta {
            // Meta keys are the program's own constants (no spaces or newlines), but escape
            // anyway so a strange key can never break the format.
            let _ = writeln!(body, "meta {} {digest}", key.escape_default());
        }
        let sum = meta_digest(body.as_bytes());
        let _ = writeln!(body, "check {sum}");
        body
    }

    fn decode(text: &str) -> Result<IntegrityRecord, String> {
        let body_end = text
            .trim_end_matches('\n')
            .rfind('\n')
            .map(|i| i + 1)
            .ok_or("it has no check line")?;
        let (body, check) = text.split_at(body_end);
        let check = check
            .trim_end_matches('\n')
            .strip_prefix("check ")
            .ok_or("its last line is not its check")?;
        if check != meta_digest(body.as_bytes()) {
            return Err("its content does not match its check".to_owned());
        }
        let mut lines = body.lines();
        if lines.next() != Some(HEADER) {
            return Err("it does not start with the expected header".to_owned());
        }
        let generation = number(&mut lines, "generation")?;
        let closed = match lines.next() {
            Some("closed yes") => true,
            Some("closed no") => false,
            _ => return Err("its closed line is missing".to_owned()),
        };
        let last_closed = number(&mut lines, "last_closed")?;
        let totals = Totals {
            records: number(&mut lines, "records")?,
            verified: number(&mut lines, "verified")?,
            failed: number(&mut lines, "failed")?,
            tombstones: number(&mut lines, "tombstones")?,
        };
        let mut meta = BTreeMap::new();
        for line in lines {
            let (key, digest) = line
                .strip_prefix("meta ")
                .and_then(|l| l.rsplit_once(' '))
                .ok_or_else(|| format!("unexpected line {line:?}"))?;
            meta.insert(unescape(key), digest.to_owned());
        }
        Ok(IntegrityRecord {
            generation,
            closed,
            last_closed,
            totals,
            meta,
        })
    }
}

/// The next line, `{name} {number}`.
fn number(lines: &mut std::str::Lines<'_>, name: &str) -> Result<u64, String> {
    lines
        .next()
        .and_then(|l| l.strip_prefix(name))
        .and_then(|l| l.strip_prefix(' '))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("its {name} line is missing or not a number"))
}

/// Undoes `str::escape_default` for the keys written (the program's keys need none of it).
fn unescape(key: &str) -> String {
    key.replace("\\\\", "\\")
}

/// Reads the record in `dir`: `Ok(None)` when there is none, `Err(reason)` when it exists but
/// cannot be trusted.
pub(crate) fn read(dir: &Path) -> Result<Option<IntegrityRecord>, ReadError> {
    let path = dir.join(FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ReadError::Io(source)),
    };
    let text =
        String::from_utf8(bytes).map_err(|_| ReadError::Invalid("it is not UTF-8".to_owned()))?;
    IntegrityRecord::decode(&text)
        .map(Some)
        .map_err(ReadError::Invalid)
}

/// Why a record could not be read.
pub(crate) enum ReadError {
    Io(io::Error),
    Invalid(String),
}

/// Writes `record` to `dir` atomically and durably: temp file, fsync, rename, directory fsync.
pub(crate) fn write(dir: &Path, record: &IntegrityRecord) -> Result<(), Error> {
    let path = dir.join(FILE);
    let temp = dir.join(format!("{FILE}.{}.tmp", std::process::id()));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    let result = (|| {
        let mut file = File::create(&temp).map_err(io("creating", &temp))?;
        file.write_all(record.encode().as_bytes())
            .map_err(io("writing", &temp))?;
        file.sync_all().map_err(io("syncing", &temp))?;
        fs::rename(&temp, &path).map_err(io("renaming into place", &path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing directory", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn sample(closed: bool) -> IntegrityRecord {
        IntegrityRecord {
            generation: 7,
            closed,
            last_closed: 6,
            totals: Totals {
                records: 289,
                verified: 280,
                failed: 9,
                tombstones: 3,
            },
            meta: [("index_tree".to_owned(), meta_digest(b"abc"))]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn records_round_trip_and_any_changed_byte_is_refused() {
        for closed in [true, false] {
            let record = sample(closed);
            let text = record.encode();
            assert_eq!(IntegrityRecord::decode(&text).unwrap(), record);
            for i in 0..text.len() {
                let mut bytes = text.clone().into_bytes();
                bytes[i] ^= 0x04;
                if let Ok(changed) = String::from_utf8(bytes) {
                    assert!(
                        IntegrityRecord::decode(&changed).is_err(),
                        "byte {i} changed and still accepted"
                    );
                }
            }
            for len in 0..text.len() - 1 {
                assert!(
                    IntegrityRecord::decode(&text[..len]).is_err(),
                    "cut at {len}"
                );
            }
        }
    }

    #[test]
    fn classify_matches_the_encoder() {
        use crate::record::{Record, Status, encode_record};
        let cksum = mirror_core::Checksum::from_bytes([0; 32]);
        let verified = Record {
            cksum,
            size: 1,
            status: Status::Verified { at: 1 },
        };
        let failed = Record {
            cksum,
            size: 1,
            status: Status::Failed {
                kind: "k".into(),
                message: "m".into(),
                attempts: 1,
                last_attempt: 1,
            },
        };
        assert_eq!(classify(&encode_record(&verified)), Class::Verified);
        assert_eq!(classify(&encode_record(&failed)), Class::Failed);
        assert_eq!(classify(b"\xff garbage"), Class::Unreadable);
        assert_eq!(classify(b""), Class::Unreadable);
    }
}
