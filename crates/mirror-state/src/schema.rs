//! Schema versions and the migrations between them.
//!
//! The `meta` tree holds `schema_version` as a big-endian `u32`. [`open`](crate::State::open)
//! reads it, refuses a version newer than [`SCHEMA_VERSION`], and runs every migration from the
//! stored version up, in order, bumping the stored version after each one. Each migration is
//! idempotent, so a crash in the middle of one just runs it again on the next open.
//!
//! Versions:
//! - **0**, the prototype layout before the schema was versioned: no `schema_version` key, records
//!   in the engine's default tree, key `{name}\0{vers}`, value the ASCII text `{cksum hex} {size}`,
//!   meaning verified at an unknown time.
//! - **1**, the current layout: trees `records`, `tombstones` and `meta`, values in the binary
//!   encoding described in `record.rs`.
//!
//! A database with no `schema_version` and nothing in the default tree is new, and is stamped
//! with the current version without running migrations.

use std::path::Path;

use mirror_core::Checksum;

use crate::Error;
use crate::record::{self, Record, Status};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 1;

pub(crate) const SCHEMA_KEY: &str = "schema_version";
pub(crate) const RECORDS_TREE: &str = "records";
pub(crate) const TOMBSTONES_TREE: &str = "tombstones";
pub(crate) const META_TREE: &str = "meta";

/// One step: migrates the database from version `i` to `i + 1`, where `i` is its index.
type Migration = fn(&sled::Db, &Path) -> Result<(), Error>;

const MIGRATIONS: &[(&str, Migration)] = &[("v0 to v1: binary records tree", v0_to_v1)];

const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION as usize);

/// Brings the database to [`SCHEMA_VERSION`], or refuses a newer one.
pub(crate) fn migrate(db: &sled::Db, path: &Path) -> Result<(), Error> {
    let meta = db.open_tree(META_TREE).map_err(|e| Error::db(path, e))?;
    let mut version = match meta.get(SCHEMA_KEY).map_err(|e| Error::db(path, e))? {
        Some(bytes) => {
            let bytes: [u8; 4] = bytes.as_ref().try_into().map_err(|_| Error::CorruptMeta {
                key: SCHEMA_KEY.to_owned(),
                reason: format!("expected 4 bytes, found {}", bytes.len()),
            })?;
            u32::from_be_bytes(bytes)
        }
        None if is_empty_v0(db, path)? => SCHEMA_VERSION,
        None => 0,
    };
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    while version < SCHEMA_VERSION {
        let (what, step) = MIGRATIONS[version as usize];
        tracing::info!(path = %path.display(), from = version, "migrating state: {what}");
        step(db, path)?;
        version += 1;
        meta.insert(SCHEMA_KEY, &version.to_be_bytes())
            .map_err(|e| Error::db(path, e))?;
        db.flush().map_err(|e| Error::db(path, e))?;
    }
    // A new database gets its stamp here; an up-to-date one is rewritten with the same value.
    meta.insert(SCHEMA_KEY, &version.to_be_bytes())
        .map_err(|e| Error::db(path, e))?;
    Ok(())
}

fn is_empty_v0(db: &sled::Db, path: &Path) -> Result<bool, Error> {
    Ok(db.first().map_err(|e| Error::db(path, e))?.is_none())
}

/// v0 to v1: moves the text records from the default tree into `records`, binary-encoded.
///
/// A v0 value that cannot be parsed is dropped with a warning: the version is then simply not
/// known to the state and is downloaded and verified again, which never makes the state claim
/// more than it knows.
fn v0_to_v1(db: &sled::Db, path: &Path) -> Result<(), Error> {
    let records = db.open_tree(RECORDS_TREE).map_err(|e| Error::db(path, e))?;
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    for item in db.iter() {
        let (key, value) = item.map_err(|e| Error::db(path, e))?;
        match parse_v0(&key, &value) {
            Ok(record) => {
                batch.insert(key.as_ref(), record::encode_record(&record));
                pending += 1;
            }
            Err(reason) => tracing::warn!(
                key = %record::display_key(&key),
                "dropping unreadable schema-0 record: {reason}"
            ),
        }
        if pending == 10_000 {
            records
                .apply_batch(std::mem::take(&mut batch))
                .map_err(|e| Error::db(path, e))?;
            pending = 0;
        }
    }
    records.apply_batch(batch).map_err(|e| Error::db(path, e))?;
    db.flush().map_err(|e| Error::db(path, e))?;
    db.clear().map_err(|e| Error::db(path, e))?;
    Ok(())
}

fn parse_v0(key: &[u8], value: &[u8]) -> Result<Record, String> {
    if record::decode_key(key)
        .map_err(|e| e.to_string())?
        .1
        .is_none()
    {
        return Err("key has no version".to_owned());
    }
    let text = std::str::from_utf8(value).map_err(|_| "value is not UTF-8".to_owned())?;
    let (cksum, size) = text
        .split_once(' ')
        .ok_or_else(|| format!("expected `cksum size`, found {text:?}"))?;
    Ok(Record {
        cksum: Checksum::from_hex(cksum).map_err(|e| e.to_string())?,
        size: size
            .parse()
            .map_err(|_| format!("size {size:?} is not a number"))?,
        status: Status::Verified { at: 0 },
    })
}
