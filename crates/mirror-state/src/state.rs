//! `State`: opening, locking and reading and writing the record of a mirror.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use mirror_core::{Checksum, CrateName, Verified, Version};

use crate::record::{self, Record, Status, Tombstone};
use crate::schema::{self, META_TREE, RECORDS_TREE, SCHEMA_KEY, TOMBSTONES_TREE};
use crate::{Error, lock};

/// Where the engine keeps its files, inside the state directory.
const DB_DIR: &str = "sled";

const KEY_INDEX_COMMIT: &str = "index_commit";
const KEY_INDEX_TREE: &str = "index_tree";
const KEY_CDN_TEMPLATE: &str = "cdn_template";
const KEY_SYNC_COUNT: &str = "sync_count";
const KEY_LAST_FULL_COMPARE: &str = "last_full_compare_unix";

/// How to open a [`State`].
#[derive(Clone, Debug)]
pub struct StateOptions {
    /// Bytes of page cache the database may use. The engine's own default is 1 GiB; ours is
    /// 8 MiB. The engine holds well above its budget, and a sync reads the records in one
    /// streaming pass or a few thousand lookups, which a larger cache does not speed up: the
    /// no-op full compare of `cargo xtask bench sync` (2.7M records) peaked at 417 MB of heap
    /// with 64 MiB and at 299 MB with 8 MiB, in the same time.
    pub cache_bytes: u64,
    /// Who is opening the state, written into the lock file (`pid 1234 ({holder})`) and shown to
    /// a second process that finds it locked. For example `mirror-cli sync`.
    pub holder: String,
}

impl Default for StateOptions {
    fn default() -> Self {
        let holder = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.file_stem()?.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown program".to_owned());
        StateOptions {
            cache_bytes: 8 << 20,
            holder,
        }
    }
}

/// Counts over all records, from one full scan (see [`State::counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records whose status is verified.
    pub verified: u64,
    /// Records whose status is failed.
    pub failed: u64,
    /// Sum of the sizes of verified records, in bytes.
    pub verified_bytes: u64,
}

/// The record of one mirror: which versions are verified, which failed (and how often), which
/// were removed upstream, and the sync markers.
///
/// Opening takes an exclusive lock, so one `State` at a time exists per directory, across
/// processes and within one. A `State` is `Send + Sync`: share it by reference (or `Arc`) between
/// the threads of a sync.
///
/// # The contract: verified means verified
///
/// The state records what its caller tells it. It never says a version is verified unless the
/// caller hands it a [`Verified`], which only code that hashed matching bytes can make, and the
/// caller must do so only once the file is also in place under its final name (the store writes and renames
/// first, then the sync engine calls [`State::mark_verified`]). A crash between the two leaves a
/// file the state does not know about, which the next run verifies again: harmless. The other
/// order could leave the state claiming a file that is not there.
///
/// Writes are durable after [`State::flush`]; without it, the engine flushes in the background
/// every half second, and a crash may lose the last moments of writes (again, only causing
/// re-verification).
///
/// # Names and case
///
/// Keys use the crate name exactly as the index line publishes it. Crates.io treats names as
/// unique ignoring case (and `-` versus `_`), so a crate has one published spelling, and the sync
/// engine always has it from the index line. Lookups are exact: asking for `Serde` when the
/// record is under `serde` finds nothing. There is no case-insensitive lookup; a miss only means
/// the version is verified again, never that something unverified is served.
pub struct State {
    records: sled::Tree,
    tombstones: sled::Tree,
    meta: sled::Tree,
    db: sled::Db,
    dir: PathBuf,
    // Declared last so the lock is released only after the engine has closed its files.
    _lock: File,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("dir", &self.dir).finish()
    }
}

/// A set of writes applied together by [`State::apply`]: the fast path for the thousands of
/// updates per second of a sync, and for bulk seeding.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<(Vec<u8>, Op)>,
}

#[derive(Debug)]
enum Op {
    Put(Vec<u8>),
    Failed {
        cksum: Checksum,
        kind: String,
        message: String,
    },
    Remove,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Stores `record` as is (for seeding and tests; a sync uses the `mark_*` methods).
    pub fn put(&mut self, name: &CrateName, vers: &Version, record: &Record) {
        self.ops.push((
            record::key(name, Some(vers)),
            Op::Put(record::encode_record(record)),
        ));
    }

    /// Like [`State::mark_verified`], timestamped when the batch is built.
    pub fn mark_verified(&mut self, name: &CrateName, vers: &Version, proof: &Verified) {
        self.put(name, vers, &verified_record(proof));
    }

    /// Like [`State::mark_failed`]. The attempt count is based on the record as stored before
    /// the batch is applied, not on earlier operations in the same batch.
    pub fn mark_failed(
        &mut self,
        name: &CrateName,
        vers: &Version,
        cksum: Checksum,
        kind: &str,
        message: &str,
    ) {
        self.ops.push((
            record::key(name, Some(vers)),
            Op::Failed {
                cksum,
                kind: kind.to_owned(),
                message: message.to_owned(),
            },
        ));
    }

    /// Like [`State::remove`].
    pub fn remove(&mut self, name: &CrateName, vers: &Version) {
        self.ops.push((record::key(name, Some(vers)), Op::Remove));
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl State {
    /// Opens the state in `dir` (a mirror passes `<dest>/.mirror/state`), creating it if needed,
    /// locking it, and migrating an older schema.
    ///
    /// Errors: [`Error::Locked`] naming the holder when another process (or another `State` in
    /// this process) has it open; [`Error::SchemaTooNew`] when a newer build wrote it.
    ///
    /// ```
    /// use mirror_state::{State, StateOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = State::open(dir.path(), StateOptions::default()).unwrap();
    /// let again = State::open(dir.path(), StateOptions::default()).unwrap_err();
    /// assert!(matches!(again, mirror_state::Error::Locked { .. }));
    /// drop(state);
    /// State::open(dir.path(), StateOptions::default()).unwrap();
    /// ```
    pub fn open(dir: &Path, options: StateOptions) -> Result<State, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        // Our lock comes before the engine's own, so a second process gets a clear error naming
        // the holder instead of the engine's generic one.
        let lock = lock::acquire(&dir.join(lock::LOCK_FILE), &options.holder)?;
        let db_path = dir.join(DB_DIR);
        let db = sled::Config::new()
            .path(&db_path)
            .cache_capacity(options.cache_bytes)
            .open()
            .map_err(|e| Error::db(&db_path, e))?;
        schema::migrate(&db, &db_path)?;
        let tree = |name| db.open_tree(name).map_err(|e| Error::db(&db_path, e));
        Ok(State {
            records: tree(RECORDS_TREE)?,
            tombstones: tree(TOMBSTONES_TREE)?,
            meta: tree(META_TREE)?,
            db,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory the state was opened in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn db_err(&self) -> impl Fn(sled::Error) -> Error + '_ {
        move |e| Error::db(&self.dir.join(DB_DIR), e)
    }

    /// The record of one version, if any.
    pub fn get(&self, name: &CrateName, vers: &Version) -> Result<Option<Record>, Error> {
        let key = record::key(name, Some(vers));
        match self.records.get(&key).map_err(self.db_err())? {
            None => Ok(None),
            Some(value) => record::decode_record(&key, &value).map(|(_, _, r)| Some(r)),
        }
    }

    /// Records that `name vers` is verified: its file, `proof.len` bytes, hashed to
    /// `proof.sha256` and is in place. The [`Verified`] can only come from code that hashed the
    /// bytes (see [`mirror_core::Verifier`]); call this only once the file is also in place (see
    /// the contract on [`State`]).
    pub fn mark_verified(
        &self,
        name: &CrateName,
        vers: &Version,
        proof: &Verified,
    ) -> Result<(), Error> {
        let record = verified_record(proof);
        self.records
            .insert(
                record::key(name, Some(vers)),
                record::encode_record(&record),
            )
            .map_err(self.db_err())?;
        Ok(())
    }

    /// Records a failed attempt at `name vers` and returns the new record.
    ///
    /// `attempts` counts consecutive failures for the same checksum: it is one more than the
    /// stored failure's, or 1 when the stored record is verified, has another checksum (the
    /// version was re-published), is unreadable, or is absent. The size of a stored record with
    /// the same checksum is kept; otherwise it is 0. The update is atomic per key.
    pub fn mark_failed(
        &self,
        name: &CrateName,
        vers: &Version,
        cksum: Checksum,
        kind: &str,
        message: &str,
    ) -> Result<Record, Error> {
        let key = record::key(name, Some(vers));
        let now = now_unix();
        let mut result = None;
        self.records
            .update_and_fetch(&key, |old| {
                let record = failed(old, cksum, kind, message, now);
                let encoded = record::encode_record(&record);
                result = Some(record);
                Some(encoded)
            })
            .map_err(self.db_err())?;
        Ok(result.expect("update_and_fetch calls the closure at least once"))
    }

    /// Forgets `name vers`; returns whether there was a record.
    pub fn remove(&self, name: &CrateName, vers: &Version) -> Result<bool, Error> {
        let old = self
            .records
            .remove(record::key(name, Some(vers)))
            .map_err(self.db_err())?;
        Ok(old.is_some())
    }

    /// Applies all operations of `batch` atomically (all or none are visible after a crash).
    /// When one key appears more than once, the last operation wins.
    ///
    /// ```
    /// use mirror_core::{CrateName, Verifier, Version};
    /// use mirror_state::{Batch, State, StateOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = State::open(dir.path(), StateOptions::default()).unwrap();
    /// let name = CrateName::new("serde").unwrap();
    /// let mut verifier = Verifier::new(
    ///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".parse().unwrap(),
    /// );
    /// verifier.update(b"abc");
    /// let proof = verifier.finish().unwrap();
    /// let mut batch = Batch::new();
    /// for v in ["1.0.0", "1.0.1"] {
    ///     batch.mark_verified(&name, &Version::new(v).unwrap(), &proof);
    /// }
    /// state.apply(batch).unwrap();
    /// assert_eq!(state.counts().unwrap().verified, 2);
    /// ```
    pub fn apply(&self, batch: Batch) -> Result<(), Error> {
        let now = now_unix();
        let mut engine = sled::Batch::default();
        for (key, op) in batch.ops {
            match op {
                Op::Put(value) => engine.insert(key, value),
                Op::Remove => engine.remove(key),
                Op::Failed {
                    cksum,
                    kind,
                    message,
                } => {
                    let old = self.records.get(&key).map_err(self.db_err())?;
                    let record = failed(old.as_deref(), cksum, &kind, &message, now);
                    engine.insert(key, record::encode_record(&record));
                }
            }
        }
        self.records.apply_batch(engine).map_err(self.db_err())
    }

    /// Every record, in key order: by name bytes (so `Serde` sorts before `abc`), then by version
    /// *string* (so `1.10.0` sorts before `1.9.0`; sort by [`Version`] if semver order matters).
    ///
    /// Streaming: records are read from the engine as the iterator advances, so memory stays
    /// flat however many there are: 2.5M records take about 6 s and 250 MB peak in a process
    /// that opened an existing state (2 cores; see the `seed` example). In a process that has
    /// just written millions of records, sled 0.34 holds them unconsolidated in memory (6 GB
    /// after 2.5M) and a full pass is many times slower: keep bulk seeding and full passes in
    /// separate runs.
    ///
    /// A record that cannot be decoded is yielded as an [`Error::CorruptRecord`] and iteration
    /// can go on past it.
    pub fn iter(&self) -> Records {
        Records {
            inner: self.records.iter(),
            path: self.dir.join(DB_DIR),
        }
    }

    /// The records of one crate (exact name), in version-string order.
    pub fn iter_crate(&self, name: &CrateName) -> Records {
        Records {
            inner: self.records.scan_prefix(record::crate_prefix(name)),
            path: self.dir.join(DB_DIR),
        }
    }

    /// Counts verified and failed records and the verified bytes.
    ///
    /// Cost: one full scan, decoding every record (no counters are kept, so the numbers can
    /// never drift from the records). Fine for `status`; do not call it per download.
    pub fn counts(&self) -> Result<Counts, Error> {
        let mut counts = Counts::default();
        for item in self.records.iter() {
            let (key, value) = item.map_err(self.db_err())?;
            let record = record::decode_value(&value).map_err(|reason| Error::CorruptRecord {
                key: record::display_key(&key),
                reason,
            })?;
            match record.status {
                Status::Verified { .. } => {
                    counts.verified += 1;
                    counts.verified_bytes += record.size;
                }
                Status::Failed { .. } => counts.failed += 1,
            }
        }
        Ok(counts)
    }

    /// Notes that upstream no longer lists `name vers` (or the whole crate when `vers` is
    /// `None`), noticed at `at` (seconds since the Unix epoch). This does not remove the record:
    /// whether to prune is the sync engine's decision.
    pub fn tombstone(
        &self,
        name: &CrateName,
        vers: Option<&Version>,
        at: u64,
    ) -> Result<(), Error> {
        self.tombstones
            .insert(record::key(name, vers), record::encode_tombstone(at))
            .map_err(self.db_err())?;
        Ok(())
    }

    /// Removes a tombstone (the version or crate came back); returns whether there was one.
    pub fn clear_tombstone(&self, name: &CrateName, vers: Option<&Version>) -> Result<bool, Error> {
        let old = self
            .tombstones
            .remove(record::key(name, vers))
            .map_err(self.db_err())?;
        Ok(old.is_some())
    }

    /// The tombstone covering `name vers`: the version's own, else the whole crate's.
    pub fn tombstone_for(
        &self,
        name: &CrateName,
        vers: &Version,
    ) -> Result<Option<Tombstone>, Error> {
        for key in [record::key(name, Some(vers)), record::crate_prefix(name)] {
            if let Some(value) = self.tombstones.get(&key).map_err(self.db_err())? {
                return record::decode_tombstone(&key, &value).map(Some);
            }
        }
        Ok(None)
    }

    /// Every tombstone in key order; a crate's own tombstone comes before its versions'.
    pub fn tombstones(&self) -> Tombstones {
        Tombstones {
            inner: self.tombstones.iter(),
            path: self.dir.join(DB_DIR),
        }
    }

    /// A free-form meta string, if set.
    pub fn get_meta(&self, key: &str) -> Result<Option<String>, Error> {
        check_meta_key(key)?;
        match self.meta.get(key).map_err(self.db_err())? {
            None => Ok(None),
            Some(value) => {
                String::from_utf8(value.to_vec())
                    .map(Some)
                    .map_err(|_| Error::CorruptMeta {
                        key: key.to_owned(),
                        reason: "value is not UTF-8".to_owned(),
                    })
            }
        }
    }

    /// Sets a free-form meta string. The typed accessors below use keys in the same space.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), Error> {
        check_meta_key(key)?;
        self.meta.insert(key, value).map_err(self.db_err())?;
        Ok(())
    }

    /// Removes a meta string; returns whether it was set.
    pub fn remove_meta(&self, key: &str) -> Result<bool, Error> {
        check_meta_key(key)?;
        Ok(self.meta.remove(key).map_err(self.db_err())?.is_some())
    }

    fn get_meta_u64(&self, key: &str) -> Result<Option<u64>, Error> {
        self.get_meta(key)?
            .map(|s| {
                s.parse().map_err(|_| Error::CorruptMeta {
                    key: key.to_owned(),
                    reason: format!("{s:?} is not a number"),
                })
            })
            .transpose()
    }

    /// The index commit (hex) of the last sync that completed without failures.
    pub fn index_commit(&self) -> Result<Option<String>, Error> {
        self.get_meta(KEY_INDEX_COMMIT)
    }

    /// Sets [`State::index_commit`].
    pub fn set_index_commit(&self, hex: &str) -> Result<(), Error> {
        self.set_meta(KEY_INDEX_COMMIT, hex)
    }

    /// The index tree (hex) of the last sync that completed without failures. Trees, not
    /// commits, survive a squash of the index history.
    pub fn index_tree(&self) -> Result<Option<String>, Error> {
        self.get_meta(KEY_INDEX_TREE)
    }

    /// Sets [`State::index_tree`].
    pub fn set_index_tree(&self, hex: &str) -> Result<(), Error> {
        self.set_meta(KEY_INDEX_TREE, hex)
    }

    /// The CDN download template learned from the registry's redirect.
    pub fn cdn_template(&self) -> Result<Option<String>, Error> {
        self.get_meta(KEY_CDN_TEMPLATE)
    }

    /// Sets [`State::cdn_template`].
    pub fn set_cdn_template(&self, template: &str) -> Result<(), Error> {
        self.set_meta(KEY_CDN_TEMPLATE, template)
    }

    /// How many syncs have run (0 when never).
    pub fn sync_count(&self) -> Result<u64, Error> {
        Ok(self.get_meta_u64(KEY_SYNC_COUNT)?.unwrap_or(0))
    }

    /// Adds one to [`State::sync_count`] and returns the new value.
    pub fn increment_sync_count(&self) -> Result<u64, Error> {
        // The state is locked to one process, and a sync increments once per run, so a plain
        // read-modify-write is enough.
        let next = self.sync_count()?.saturating_add(1);
        self.set_meta(KEY_SYNC_COUNT, &next.to_string())?;
        Ok(next)
    }

    /// When the last full index-versus-state compare finished, in seconds since the Unix epoch.
    pub fn last_full_compare_unix(&self) -> Result<Option<u64>, Error> {
        self.get_meta_u64(KEY_LAST_FULL_COMPARE)
    }

    /// Sets [`State::last_full_compare_unix`].
    pub fn set_last_full_compare_unix(&self, at: u64) -> Result<(), Error> {
        self.set_meta(KEY_LAST_FULL_COMPARE, &at.to_string())
    }

    /// Makes every write so far durable (waits for the engine to sync to disk).
    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush().map_err(self.db_err())?;
        Ok(())
    }
}

fn check_meta_key(key: &str) -> Result<(), Error> {
    if key == SCHEMA_KEY {
        return Err(Error::ReservedKey {
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// The record after one more failure, given the stored value (see [`State::mark_failed`]).
fn failed(old: Option<&[u8]>, cksum: Checksum, kind: &str, message: &str, now: u64) -> Record {
    let old = old.and_then(|v| record::decode_value(v).ok());
    let (size, attempts) = match old {
        Some(old) if old.cksum == cksum => match old.status {
            Status::Failed { attempts, .. } => (old.size, attempts.saturating_add(1)),
            Status::Verified { .. } => (old.size, 1),
        },
        _ => (0, 1),
    };
    Record {
        cksum,
        size,
        status: Status::Failed {
            kind: kind.to_owned(),
            message: message.to_owned(),
            attempts,
            last_attempt: now,
        },
    }
}

/// The record of a version whose bytes `proof` shows were hashed and matched.
fn verified_record(proof: &Verified) -> Record {
    Record {
        cksum: proof.sha256,
        size: proof.len,
        status: Status::Verified { at: now_unix() },
    }
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Streaming iterator over records, from [`State::iter`] and [`State::iter_crate`].
pub struct Records {
    inner: sled::Iter,
    path: PathBuf,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").field("path", &self.path).finish()
    }
}

impl Iterator for Records {
    type Item = Result<(CrateName, Version, Record), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.inner.next()? {
            Ok((key, value)) => record::decode_record(&key, &value),
            Err(e) => Err(Error::db(&self.path, e)),
        })
    }
}

/// Streaming iterator over tombstones, from [`State::tombstones`].
pub struct Tombstones {
    inner: sled::Iter,
    path: PathBuf,
}

impl std::fmt::Debug for Tombstones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tombstones")
            .field("path", &self.path)
            .finish()
    }
}

impl Iterator for Tombstones {
    type Item = Result<Tombstone, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.inner.next()? {
            Ok((key, value)) => record::decode_tombstone(&key, &value),
            Err(e) => Err(Error::db(&self.path, e)),
        })
    }
}
