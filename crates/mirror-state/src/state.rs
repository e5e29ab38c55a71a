//! `State`: opening, locking and reading and writing the record of a mirror.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mirror_core::{Checksum, CrateName, Verified, Version};

use crate::integrity::{self, IntegrityRecord, Totals};
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
    tracker: Tracker,
    /// For a state opened read-only: the private copy of the database it reads (removed when
    /// the state is dropped).
    copy: Option<tempfile::TempDir>,
    // Declared last so the lock is released only after the engine has closed its files.
    _lock: File,
}

/// One key's stored value before a batch and after it (`None`: absent).
type Change = (Option<Vec<u8>>, Option<Vec<u8>>);

/// What the integrity record needs to follow the run (see `integrity.rs`).
struct Tracker {
    /// The totals now: counted when the state was opened, then moved by every write.
    totals: Mutex<Totals>,
    /// Set once the "run in progress" record is on disk (before the first change).
    started: AtomicBool,
    /// Serialises the first-change record.
    start: Mutex<()>,
    /// Single writes share it; [`State::apply`] takes it alone, since it reads the old values
    /// of its keys before it writes them.
    writes: RwLock<()>,
    /// The generation the meta tree held when the state was opened (0: none).
    opened_generation: u64,
    /// The generation this run stores when it closes.
    next_generation: u64,
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
    ///
    /// The database is checked against its integrity record (see [`Error::Damaged`]); this
    /// counts every record once.
    pub fn open(dir: &Path, options: StateOptions) -> Result<State, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        // Our lock comes before the engine's own, so a second process gets a clear error naming
        // the holder instead of the engine's generic one.
        let lock = lock::acquire(&dir.join(lock::LOCK_FILE), &options.holder)?;
        State::open_db(dir, &dir.join(DB_DIR), options, lock, None)
    }

    /// Opens the state in `dir` for reading only, for a mirror this process cannot write (a
    /// read-only mount, another user's files): takes the lock shared (so no run changes the
    /// state meanwhile, and none is running), copies the database into a private temporary
    /// directory (the engine cannot open a database it cannot write) and opens the copy.
    /// Every write is refused with [`Error::ReadOnly`]. The copy costs time and temporary space
    /// in proportion to the database.
    ///
    /// The copy is checked against the integrity record like [`State::open`] does.
    pub fn open_read_only(dir: &Path, options: StateOptions) -> Result<State, Error> {
        let lock = lock::acquire_shared(&dir.join(lock::LOCK_FILE))?;
        let db_path = dir.join(DB_DIR);
        if !db_path.is_dir() {
            return Err(Error::Io {
                action: "opening",
                path: db_path,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let copy = tempfile::Builder::new()
            .prefix("mirror-state-read-only-")
            .tempdir()
            .map_err(|source| Error::Io {
                action: "creating a temporary directory for a copy of",
                path: db_path.clone(),
                source,
            })?;
        let copied = copy.path().join(DB_DIR);
        copy_dir(&db_path, &copied)?;
        State::open_db(dir, &copied, options, lock, Some(copy))
    }

    fn open_db(
        dir: &Path,
        db_path: &Path,
        options: StateOptions,
        lock: File,
        copy: Option<tempfile::TempDir>,
    ) -> Result<State, Error> {
        // Errors name the database in the state directory, also when a copy is read.
        let named = dir.join(DB_DIR);
        let db = open_engine(db_path, options.cache_bytes).map_err(|e| Error::db(&named, e))?;
        schema::migrate(&db, &named)?;
        let tree = |name| db.open_tree(name).map_err(|e| Error::db(&named, e));
        let (records, tombstones, meta) = (
            tree(RECORDS_TREE)?,
            tree(TOMBSTONES_TREE)?,
            tree(META_TREE)?,
        );
        let (totals, opened_generation, next_generation) =
            check_integrity(dir, &records, &tombstones, &meta)?;
        Ok(State {
            records,
            tombstones,
            meta,
            db,
            dir: dir.to_path_buf(),
            tracker: Tracker {
                totals: Mutex::new(totals),
                started: AtomicBool::new(false),
                start: Mutex::new(()),
                writes: RwLock::new(()),
                opened_generation,
                next_generation,
            },
            copy,
            _lock: lock,
        })
    }

    /// Whether this state was opened with [`State::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.copy.is_some()
    }

    /// Called before every change: refuses writes to a read-only state, and before the first
    /// change of the run, puts the "run in progress" integrity record on disk, so a run killed
    /// after it is never mistaken for damage.
    fn begin(&self, what: &'static str) -> Result<(), Error> {
        if self.copy.is_some() {
            return Err(Error::ReadOnly {
                path: self.dir.clone(),
                action: what,
            });
        }
        if self.tracker.started.load(Ordering::Acquire) {
            return Ok(());
        }
        let _start = self
            .tracker
            .start
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.tracker.started.load(Ordering::Acquire) {
            return Ok(());
        }
        let record = IntegrityRecord {
            generation: self.tracker.next_generation,
            closed: false,
            last_closed: self.tracker.opened_generation,
            totals: self.totals(),
            meta: meta_digests(&self.meta).map_err(self.db_err())?,
        };
        integrity::write(&self.dir, &record)?;
        self.tracker.started.store(true, Ordering::Release);
        Ok(())
    }

    fn totals(&self) -> Totals {
        *self
            .tracker
            .totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the totals by one record replaced (`old`, `new`: the stored values before and
    /// after, `None` when absent).
    fn track(&self, old: Option<&[u8]>, new: Option<&[u8]>) {
        let mut totals = self
            .tracker
            .totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = old {
            totals.add(integrity::classify(old), -1);
        }
        if let Some(new) = new {
            totals.add(integrity::classify(new), 1);
        }
    }

    fn track_tombstone(&self, sign: i64) {
        let mut totals = self
            .tracker
            .totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        totals.tombstones = totals.tombstones.saturating_add_signed(sign);
    }

    fn shared_write(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.tracker
            .writes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the run: stores the new generation, flushes, and writes the "closed" integrity
    /// record with the totals and meta values of this moment. Only for a run that changed
    /// something.
    fn close(&self) -> Result<(), Error> {
        let generation = self.tracker.next_generation;
        self.meta
            .insert(integrity::GENERATION_KEY, generation.to_string().as_bytes())
            .map_err(self.db_err())?;
        self.db.flush().map_err(self.db_err())?;
        let record = IntegrityRecord {
            generation,
            closed: true,
            last_closed: generation,
            totals: self.totals(),
            meta: meta_digests(&self.meta).map_err(self.db_err())?,
        };
        integrity::write(&self.dir, &record)
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
        self.begin("recording a version verified")?;
        let _shared = self.shared_write();
        let value = record::encode_record(&record);
        let old = self
            .records
            .insert(record::key(name, Some(vers)), value.as_slice())
            .map_err(self.db_err())?;
        self.track(old.as_deref(), Some(&value));
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
        self.begin("recording a failure")?;
        let _shared = self.shared_write();
        let mut result = None;
        // The closure may run more than once (the engine retries on contention): the last run
        // is the one applied, so its old value is the one replaced.
        let mut replaced = None;
        let new = self
            .records
            .update_and_fetch(&key, |old| {
                let record = failed(old, cksum, kind, message, now);
                let encoded = record::encode_record(&record);
                result = Some(record);
                replaced = old.map(<[u8]>::to_vec);
                Some(encoded)
            })
            .map_err(self.db_err())?;
        self.track(replaced.as_deref(), new.as_deref());
        Ok(result.expect("update_and_fetch calls the closure at least once"))
    }

    /// Forgets `name vers`; returns whether there was a record.
    pub fn remove(&self, name: &CrateName, vers: &Version) -> Result<bool, Error> {
        self.begin("forgetting a version")?;
        let _shared = self.shared_write();
        let old = self
            .records
            .remove(record::key(name, Some(vers)))
            .map_err(self.db_err())?;
        self.track(old.as_deref(), None);
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
        if batch.is_empty() {
            return Ok(());
        }
        let now = now_unix();
        self.begin("applying a batch")?;
        // Alone: the totals need the old value of every key, read before the batch is applied.
        let _alone = self
            .tracker
            .writes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut engine = sled::Batch::default();
        // Per key, the value stored before the batch and the one after it (the last op wins).
        let mut changes: HashMap<Vec<u8>, Change> = HashMap::new();
        for (key, op) in batch.ops {
            if !changes.contains_key(&key) {
                let old = self.records.get(&key).map_err(self.db_err())?;
                changes.insert(key.clone(), (old.map(|v| v.to_vec()), None));
            }
            let new = match op {
                Op::Put(value) => Some(value),
                Op::Remove => None,
                Op::Failed {
                    cksum,
                    kind,
                    message,
                } => {
                    let old = changes.get(&key).and_then(|(old, _)| old.as_deref());
                    let record = failed(old, cksum, &kind, &message, now);
                    Some(record::encode_record(&record))
                }
            };
            match &new {
                Some(value) => engine.insert(key.as_slice(), value.as_slice()),
                None => engine.remove(key.as_slice()),
            }
            if let Some(change) = changes.get_mut(&key) {
                change.1 = new;
            }
        }
        self.records.apply_batch(engine).map_err(self.db_err())?;
        for (old, new) in changes.values() {
            self.track(old.as_deref(), new.as_deref());
        }
        Ok(())
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
        self.begin("recording a removal")?;
        let old = self
            .tombstones
            .insert(record::key(name, vers), record::encode_tombstone(at))
            .map_err(self.db_err())?;
        if old.is_none() {
            self.track_tombstone(1);
        }
        Ok(())
    }

    /// Removes a tombstone (the version or crate came back); returns whether there was one.
    pub fn clear_tombstone(&self, name: &CrateName, vers: Option<&Version>) -> Result<bool, Error> {
        self.begin("clearing a removal")?;
        let old = self
            .tombstones
            .remove(record::key(name, vers))
            .map_err(self.db_err())?;
        if old.is_some() {
            self.track_tombstone(-1);
        }
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
        self.begin("setting a meta value")?;
        self.meta.insert(key, value).map_err(self.db_err())?;
        Ok(())
    }

    /// Removes a meta string; returns whether it was set.
    pub fn remove_meta(&self, key: &str) -> Result<bool, Error> {
        check_meta_key(key)?;
        self.begin("removing a meta value")?;
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

impl Drop for State {
    fn drop(&mut self) {
        // A run that changed nothing leaves the record as it was. One that did writes its
        // closing record; if it cannot (a full disk), the "in progress" record stays, which
        // only means the next open cannot compare the totals.
        if self.copy.is_none()
            && self.tracker.started.load(Ordering::Acquire)
            && let Err(e) = self.close()
        {
            tracing::warn!(
                "cannot write the integrity record of {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// The digest of every meta value but the generation (checked on its own).
fn meta_digests(meta: &sled::Tree) -> Result<BTreeMap<String, String>, sled::Error> {
    let mut out = BTreeMap::new();
    for item in meta.iter() {
        let (key, value) = item?;
        let key = String::from_utf8_lossy(&key).into_owned();
        if key != integrity::GENERATION_KEY {
            out.insert(key, integrity::meta_digest(&value));
        }
    }
    Ok(out)
}

/// Counts the records and tombstones and compares them, the meta values and the generation with
/// the integrity record (see `integrity.rs` for what is compared when). Returns the totals, the
/// generation the meta tree holds, and the one this run closes with.
fn check_integrity(
    dir: &Path,
    records: &sled::Tree,
    tombstones: &sled::Tree,
    meta: &sled::Tree,
) -> Result<(Totals, u64, u64), Error> {
    let db_path = dir.join(DB_DIR);
    let db_err = |e| Error::db(&db_path, e);
    let mut totals = Totals::default();
    for value in records.iter().values() {
        totals.add(integrity::classify(&value.map_err(db_err)?), 1);
    }
    totals.tombstones = tombstones
        .iter()
        .keys()
        .try_fold(0u64, |n, key| key.map(|_| n + 1).map_err(db_err))?;
    let generation = match meta.get(integrity::GENERATION_KEY).map_err(db_err)? {
        None => None,
        Some(value) => Some(
            std::str::from_utf8(&value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| Error::Damaged {
                    path: dir.to_path_buf(),
                    problems: "its integrity generation is not a number".to_owned(),
                })?,
        ),
    };
    let record = match integrity::read(dir) {
        Ok(record) => record,
        Err(integrity::ReadError::Io(source)) => {
            return Err(Error::Io {
                action: "reading",
                path: dir.join(integrity::FILE),
                source,
            });
        }
        Err(integrity::ReadError::Invalid(reason)) => {
            return Err(Error::Damaged {
                path: dir.to_path_buf(),
                problems: format!(
                    "its integrity record {} is unreadable: {reason}",
                    integrity::FILE
                ),
            });
        }
    };
    let Some(record) = record else {
        // A new state, or one from a build that kept no record: nothing to compare with.
        let current = generation.unwrap_or(0);
        return Ok((totals, current, current + 1));
    };
    let shown = |g: Option<u64>| g.map_or_else(|| "none".to_owned(), |g| g.to_string());
    let mut problems = Vec::new();
    if record.closed {
        if generation != Some(record.generation) {
            problems.push(format!(
                "it is at generation {} where the record says {}",
                shown(generation),
                record.generation
            ));
        }
        let expected = record.totals;
        for (what, found, wanted) in [
            ("records", totals.records, expected.records),
            ("verified records", totals.verified, expected.verified),
            ("failed records", totals.failed, expected.failed),
            ("tombstones", totals.tombstones, expected.tombstones),
        ] {
            if found != wanted {
                problems.push(format!(
                    "it has {found} {what} where the record says {wanted}"
                ));
            }
        }
        let now = meta_digests(meta).map_err(db_err)?;
        let keys: std::collections::BTreeSet<&String> =
            now.keys().chain(record.meta.keys()).collect();
        let mut lost = Vec::new();
        let mut changed = Vec::new();
        let mut added = Vec::new();
        for key in keys {
            match (record.meta.get(key), now.get(key)) {
                (Some(_), None) => lost.push(key.as_str()),
                (None, Some(_)) => added.push(key.as_str()),
                (Some(a), Some(b)) if a != b => changed.push(key.as_str()),
                _ => {}
            }
        }
        for (what, keys) in [("lost", lost), ("changed", changed), ("unexpected", added)] {
            if !keys.is_empty() {
                problems.push(format!("meta values {what}: {}", keys.join(", ")));
            }
        }
    } else {
        // The last run was killed (or could not close): its own writes may or may not have
        // reached the disk, but nothing before it may be missing.
        let before = (record.last_closed != 0).then_some(record.last_closed);
        if generation != before && generation != Some(record.generation) {
            problems.push(format!(
                "it is at generation {} where the last run, which did not finish, started at \
                 {} and would have ended at {}",
                shown(generation),
                shown(before),
                record.generation
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Damaged {
            path: dir.to_path_buf(),
            problems: problems.join("; "),
        });
    }
    let current = generation.unwrap_or(0);
    Ok((totals, current, current.max(record.generation) + 1))
}

/// How long an open waits for the engine's own file lock (see [`open_engine`]).
const ENGINE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Opens the engine's database at `path`, waiting for its file lock when this process's
/// previous instance still holds it.
///
/// The engine takes its own lock on its log file, and releases it only when its background
/// writer threads let go of the file, a moment after the last handle is dropped. So a process
/// that drops a `State` and opens it again at once (tests; a library user running a sync, then
/// a verify) was refused now and then with "could not acquire lock". Our own lock is held by
/// now, so no other `State` can hold the engine's: whoever does is this process's previous
/// instance finishing (or a program that ignores our lock), and waiting a bounded time is right.
fn open_engine(path: &Path, cache_bytes: u64) -> sled::Result<sled::Db> {
    let started = Instant::now();
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
        {
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && started.elapsed() < ENGINE_LOCK_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Copies the database directory `from` (files and subdirectories) to `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<(), Error> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(to).map_err(io("creating", to))?;
    for entry in std::fs::read_dir(from).map_err(io("listing", from))? {
        let entry = entry.map_err(io("listing", from))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io("inspecting", &path))?;
        if kind.is_dir() {
            copy_dir(&path, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&path, &target).map_err(io("copying", &path))?;
        }
    }
    Ok(())
}

fn check_meta_key(key: &str) -> Result<(), Error> {
    if key == SCHEMA_KEY || key == integrity::GENERATION_KEY {
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
