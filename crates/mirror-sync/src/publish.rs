//! `publish`: the sparse index a mirror serves, written under `index/` from the upstream index and
//! the state: only verified versions, their lines byte for byte and in upstream order, and a
//! `config.json` whose `dl` points at the mirror's own crate files.
//!
//! The tree needs no server logic: any static file server (nginx, an object store behind a CDN)
//! can serve `--dest` as it is, and `mirror-serve` serves it too.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mirror_index::{CrateName, IndexEntry, IndexFile, ReadOptions, Version, index_path};
use mirror_state::{State, StateOptions, Status};
use mirror_store::{BaseUrl, Store};
use rayon::prelude::*;
use serde::Serialize;

use crate::source::crate_of_index_path;
use crate::{Error, FetchSettings, Source, meta};

/// The state's meta key holding the base URL of the last publish that was given one.
pub(crate) const BASE_URL_META: &str = "publish_base_url";

/// The base URL used until one is given: where `mirror-cli serve` listens by default. Right for
/// `mirror-cli serve` on its default address, and harmless for it on any other (the server
/// rewrites `dl` to its own address); a static host needs the real one (`--base-url`).
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";

/// Index files handed to the workers at once: enough to keep every core busy, few enough that the
/// lines held in memory stay at a few MB whatever the size of the index.
const BATCH: usize = 1024;

/// How to publish.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PublishOptions {
    /// The URL clients reach the mirror root at (`https://mirror.example.org`, optionally with a
    /// path); `config.json`'s `dl` points below it. It is remembered in the state, so `None` uses
    /// the last one given, and [`DEFAULT_BASE_URL`] when none ever was.
    pub base_url: Option<String>,
    /// Threads for state lookups and writes; 0 means one per core (and at least eight, since
    /// writes wait on the disk).
    pub threads: usize,
    /// Who holds the state while [`republish`] runs (shown to a second process), such as
    /// `mirror-cli publish`.
    pub holder: Option<String>,
}

/// What a publish did. Serialised, it is the `publish --json` summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PublishReport {
    /// Upstream index files read.
    pub files_read: u64,
    /// Index files published (holding at least one line) among those read.
    pub files: u64,
    /// Lines published: versions verified with the checksum the line gives.
    pub versions: u64,
    /// Lines left out: versions not verified, or verified under another checksum.
    pub left_out: u64,
    /// Index files written (new or changed); the others were already up to date on disk.
    pub written: u64,
    /// Index files already up to date (not touched, so their `ETag` and mtime stay).
    pub unchanged: u64,
    /// Published index files deleted: no verified line left (upstream, or removed upstream and
    /// kept).
    pub removed: u64,
    /// Whether `config.json` was written (it changed, or did not exist).
    pub config_written: bool,
    /// Leftover temp files of an interrupted run deleted at the start (by `mirror-cli publish`;
    /// a sync counts them in its own summary).
    pub temp_cleaned: u64,
    /// The base URL `config.json`'s `dl` points below.
    pub base_url: String,
    /// Wall-clock duration in milliseconds.
    pub duration_ms: u64,
}

/// What happened to one index file.
#[derive(Default)]
struct FileOutcome {
    published: bool,
    written: bool,
    removed: bool,
    versions: u64,
    left_out: u64,
}

/// Publishes the sparse index of the mirror in `store`: for each index file of `source` (every
/// one when `paths` is `None`, else the index paths given, such as `se/rd/serde`), the lines of
/// versions `state` records verified with the same checksum, byte for byte, in upstream order,
/// written to `index/{path}`; and `index/config.json`.
///
/// - A file is written (temp file, fsync, rename) only when its content changed, so unchanged
///   files keep their `ETag` and mtime and a publish that changes nothing writes nothing.
/// - Versions removed upstream that the mirror keeps (still verified: not pruned) stay listed,
///   after the upstream lines, with the bytes they were published with; a crate deleted
///   upstream keeps its file for them. `sync --prune` [`retract`]s them. A kept version that is
///   retracted (found corrupt by verify) is not offered again, since upstream has no line for
///   it any more.
/// - A file left with no line is deleted. With `paths` `None`, every published index file the
///   source no longer has is unpublished the same way.
/// - `config.json` is `{"dl": "{base}/crates/{lowerprefix}/{crate}/{crate}-{version}.crate"}`:
///   no `api` (the mirror has no web API, and upstream's would receive the user's token) and no
///   `auth-required`. See [`PublishOptions::base_url`].
///
/// Readers see each file whole, old or new. Only versions whose file is in place are listed,
/// since the state records a version verified only after its file is in place: publish after
/// the downloads, and [`retract`] before taking a file away.
///
/// A source that cannot enumerate (sparse) is read for the crates the state has records of
/// when `paths` is `None`. Memory stays bounded: files are read, filtered and written in
/// batches; only the set of published paths is kept for the final sweep.
///
/// ```no_run
/// use mirror_state::{State, StateOptions};
/// use mirror_store::{BaseUrl, Store};
/// use mirror_sync::{PublishOptions, Source, publish};
///
/// let store = Store::open("mirror".as_ref())?;
/// let state = State::open(&store.state_dir(), StateOptions::default())?;
/// let never = std::sync::atomic::AtomicBool::new(false);
/// let source = Source::open("file:///srv/index.git", &store.index_dir(), "my-tool/1.0", &never)?;
/// let mut options = PublishOptions::default();
/// options.base_url = Some("https://mirror.example.org".into());
/// let report = publish(&store, &state, &source, None, &options)?;
/// println!("{} versions in {} index files", report.versions, report.files);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn publish(
    store: &Store,
    state: &State,
    source: &Source,
    paths: Option<&[String]>,
    options: &PublishOptions,
) -> Result<PublishReport, Error> {
    let started = Instant::now();
    let base_url = base_url(state, options.base_url.as_deref())?;
    let mut report = PublishReport {
        base_url: base_url.to_string(),
        ..PublishReport::default()
    };
    let pool = publish_pool(options.threads)?;
    let full = paths.is_none();

    // Every path the source has, published or not, for the sweep after a full publish.
    let mut seen: HashSet<u64> = HashSet::new();
    let mut batch: Vec<IndexFile> = Vec::with_capacity(BATCH);
    let mut failure: Option<Error> = None;
    let mut flush = |batch: &mut Vec<IndexFile>, report: &mut PublishReport| {
        let outcomes: Vec<Result<FileOutcome, Error>> = pool.install(|| {
            batch
                .par_iter()
                .map(|file| publish_file(store, state, file))
                .collect()
        });
        for (file, outcome) in batch.drain(..).zip(outcomes) {
            match outcome {
                Ok(outcome) => {
                    report.files_read += 1;
                    report.files += u64::from(outcome.published);
                    report.written += u64::from(outcome.written);
                    report.unchanged += u64::from(outcome.published && !outcome.written);
                    report.removed += u64::from(outcome.removed);
                    if outcome.removed {
                        // Here, once the batch's writes are done: a writer in the same shard
                        // would otherwise race the removal of its directory.
                        store.remove_empty_published_dirs(&file.path)?;
                    }
                    report.versions += outcome.versions;
                    report.left_out += outcome.left_out;
                    if full {
                        seen.insert(path_key(&file.path));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    let mut sink = |file: IndexFile| {
        if failure.is_some() {
            return;
        }
        // Strays (files not where an index file belongs) come with no entries; they name no
        // crate, so there is nothing to publish or remove for them.
        if crate_of_index_path(&file.path).is_none() {
            return;
        }
        batch.push(file);
        if batch.len() >= BATCH
            && let Err(e) = flush(&mut batch, &mut report)
        {
            failure = Some(e);
        }
    };
    let read_options = ReadOptions::with_threads(options.threads);
    let stats = match paths {
        Some(paths) => source.read_paths(paths, &read_options, &mut sink)?,
        None if source.can_enumerate() => source.read(&[], &read_options, &mut sink)?,
        None => {
            let names = recorded_crates(state)?;
            if names.is_empty() {
                mirror_index::ReadStats::default()
            } else {
                source.read(&names, &read_options, &mut sink)?
            }
        }
    };
    if let Some(e) = failure {
        return Err(e);
    }
    flush(&mut batch, &mut report)?;

    // Index files the source does not have (any more): the crate is gone upstream.
    for path in &stats.not_found {
        if crate_of_index_path(path).is_some() && unpublish_deleted(store, state, path)? {
            store.remove_empty_published_dirs(path)?;
            report.removed += 1;
        }
    }
    if full {
        report.removed += sweep(store, state, &seen)?;
    }

    let config = mirror_store::config_json(&base_url);
    report.config_written = store.write_if_changed(Path::new("index/config.json"), &config)?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        files = report.files,
        versions = report.versions,
        left_out = report.left_out,
        written = report.written,
        removed = report.removed,
        base_url = %report.base_url,
        duration_ms = report.duration_ms,
        "published the index"
    );
    Ok(report)
}

/// Re-publishes the mirror at `dest` from the index its last sync read, without syncing and
/// without going to the network for a git index (its local clone is read as the sync left it).
/// For changing the base URL of a mirror, or publishing a mirror synced before publishing
/// existed.
///
/// Takes the state's lock, so it fails with [`Error::is_locked`] while a sync or verify runs.
pub fn republish(dest: &Path, options: &PublishOptions) -> Result<PublishReport, Error> {
    if !dest.join(".mirror").is_dir() {
        return Err(Error::Config(format!(
            "{} is not a mirror (no .mirror folder); run a sync first",
            dest.display()
        )));
    }
    let store = Store::open(dest)?;
    let state = State::open(
        &store.state_dir(),
        StateOptions {
            holder: options
                .holder
                .clone()
                .unwrap_or_else(|| "mirror-sync publish".to_owned()),
            ..StateOptions::default()
        },
    )?;
    // Only after the lock: the temp files of a run in progress would be its writes in flight.
    // A publish killed mid-write (or any run) leaves its `.part` files here.
    let temp_cleaned = store.clean_temp()? as u64;
    let src = state.get_meta(meta::INDEX_SOURCE)?.ok_or_else(|| {
        Error::Config(format!(
            "the mirror at {} was never synced: there is nothing to publish",
            dest.display()
        ))
    })?;
    let user_agent = FetchSettings::default().full_user_agent();
    let source = Source::open_local(&src, &store.index_dir(), &user_agent)?;
    let mut report = publish(&store, &state, &source, None, options)?;
    report.temp_cleaned = temp_cleaned;
    // A full publish: whatever an interrupted run left unpublished is caught up.
    state.remove_meta(meta::PUBLISH_PENDING)?;
    state.flush()?;
    Ok(report)
}

/// Takes `versions` out of the published index, now, without reading the upstream index: each
/// affected `index/{path}` is rewritten without their lines (or deleted when none is left).
/// Returns how many lines were removed.
///
/// Call it before a verified file leaves its place (a re-published version quarantined, a
/// corrupt file found by verify, a prune), so that no client is ever offered a line whose file
/// is not there, or whose file has other bytes than its checksum says. The next [`publish`]
/// brings the lines back once the versions are verified again.
pub fn retract(store: &Store, versions: &[(CrateName, Version)]) -> Result<u64, Error> {
    retract_counted(store, versions).map(|r| r.lines)
}

/// What [`retract_counted`] did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Retracted {
    /// Lines taken out.
    pub(crate) lines: u64,
    /// Published index files deleted (no line left in them).
    pub(crate) files_removed: u64,
}

/// [`retract`], also counting the published files it deleted.
pub(crate) fn retract_counted(
    store: &Store,
    versions: &[(CrateName, Version)],
) -> Result<Retracted, Error> {
    let mut by_path: BTreeMap<String, HashSet<&str>> = BTreeMap::new();
    for (name, vers) in versions {
        by_path
            .entry(index_path(name))
            .or_default()
            .insert(vers.as_str());
    }
    let mut done = Retracted::default();
    for (path, gone) in by_path {
        let rel = Path::new("index").join(&path);
        let Some(published) = store.read_published(&path)? else {
            continue;
        };
        let file = IndexFile::parse(&path, &published);
        let mut kept = Vec::with_capacity(published.len());
        let mut dropped = 0;
        for entry in &file.entries {
            if gone.contains(entry.vers().as_str()) {
                dropped += 1;
            } else {
                kept.extend_from_slice(entry.raw());
                kept.push(b'\n');
            }
        }
        if dropped == 0 {
            continue;
        }
        if kept.is_empty() {
            if store.remove_published(&path)? {
                store.remove_empty_published_dirs(&path)?;
                done.files_removed += 1;
            }
        } else {
            store.write_atomic(&rel, &kept)?;
        }
        tracing::debug!(path, lines = dropped, "retracted from the published index");
        done.lines += dropped;
    }
    Ok(done)
}

/// The base URL to publish with: the one given (checked, then remembered), else the remembered
/// one, else the default.
fn base_url(state: &State, given: Option<&str>) -> Result<BaseUrl, Error> {
    if let Some(given) = given {
        let url = BaseUrl::parse(given)?;
        if state.get_meta(BASE_URL_META)?.as_deref() != Some(url.as_str()) {
            state.set_meta(BASE_URL_META, url.as_str())?;
        }
        return Ok(url);
    }
    let remembered = state
        .get_meta(BASE_URL_META)?
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    Ok(BaseUrl::parse(&remembered)?)
}

/// The base URL a `config.json` this mirror wrote points below, if it is one: the inverse of
/// [`mirror_store::config_json`], for rebuilding a lost state.
pub(crate) fn base_url_of_config(bytes: &[u8]) -> Option<String> {
    let config: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    mirror_store::base_url_of_dl(config.get("dl")?.as_str()?).map(|url| url.to_string())
}

/// The names of every crate the state has a record of, for a source that cannot enumerate.
fn recorded_crates(state: &State) -> Result<Vec<CrateName>, Error> {
    let mut names: Vec<CrateName> = Vec::new();
    for item in state.iter() {
        match item {
            Ok((name, _, _)) => {
                if names.last() != Some(&name) {
                    names.push(name);
                }
            }
            Err(mirror_state::Error::CorruptRecord { key, reason }) => {
                tracing::warn!(%key, %reason, "skipping an unreadable state record");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(names)
}

/// Publishes one index file (whose path was checked to be an index path).
fn publish_file(store: &Store, state: &State, file: &IndexFile) -> Result<FileOutcome, Error> {
    let mut outcome = FileOutcome::default();
    let mut lines = Vec::new();
    for entry in &file.entries {
        if is_verified(state, entry)? {
            lines.extend_from_slice(entry.raw());
            lines.push(b'\n');
            outcome.versions += 1;
        } else {
            outcome.left_out += 1;
        }
    }
    let upstream: HashSet<&str> = file.entries.iter().map(|e| e.vers().as_str()).collect();
    put_published(store, state, &file.path, lines, &upstream, &mut outcome)?;
    Ok(outcome)
}

/// Puts the published `index/{path}` in place: `lines` (upstream's verified lines, in upstream
/// order), then the lines of the file published now for versions upstream does not list
/// (`upstream` names those it lists) that the state still records verified with the same
/// checksum, in the order they were published: a mirror keeps what upstream deleted (a crate
/// deleted, a takedown) until `sync --prune` [`retract`]s it. Written only when the content
/// changed; deleted when it is empty.
///
/// The published file is read to compare anyway; it is parsed only when it differs from
/// `lines`, so an unchanged file costs one read.
fn put_published(
    store: &Store,
    state: &State,
    path: &str,
    mut lines: Vec<u8>,
    upstream: &HashSet<&str>,
    outcome: &mut FileOutcome,
) -> Result<(), Error> {
    let current = store.read_published(path)?;
    if let Some(current) = &current
        && *current != lines
    {
        let published = IndexFile::parse(path, current);
        for entry in &published.entries {
            if !upstream.contains(entry.vers().as_str()) && is_verified(state, entry)? {
                lines.extend_from_slice(entry.raw());
                lines.push(b'\n');
                outcome.versions += 1;
            }
        }
    }
    if lines.is_empty() {
        outcome.removed = store.remove_published(path)?;
        return Ok(());
    }
    outcome.published = true;
    if current.as_deref() != Some(lines.as_slice()) {
        store.write_atomic(&Path::new("index").join(path), &lines)?;
        outcome.written = true;
    }
    Ok(())
}

/// Publishing from inside a full compare, which reads every index file and knows, without
/// asking the state again, which of its lines are verified with the line's checksum: each index
/// file whose versions need no work in this run is published as it is read ([`offer`]), and
/// the others are left for the publish after the downloads ([`defer`]). One pass over the index
/// instead of two, and no state lookup per line.
///
/// [`offer`]: InlinePublisher::offer
/// [`defer`]: InlinePublisher::defer
pub(crate) struct InlinePublisher<'a> {
    store: &'a Store,
    state: &'a State,
    pool: rayon::ThreadPool,
    batch: Vec<(IndexFile, Vec<bool>)>,
    done: InlinePublished,
}

/// What an [`InlinePublisher`] did, and what is left for the publish after the downloads.
#[derive(Debug, Default)]
pub(crate) struct InlinePublished {
    /// Every index path read (published or not), for the sweep of published files upstream no
    /// longer has ([`sweep_published`]).
    pub(crate) seen: HashSet<u64>,
    /// Index paths left for the publish after the downloads.
    pub(crate) deferred: Vec<String>,
    /// Published files written (new or changed).
    pub(crate) written: u64,
    /// Published files deleted (no verified line left).
    pub(crate) removed: u64,
}

impl<'a> InlinePublisher<'a> {
    /// A publisher into `store`'s `index/`, with `threads` workers (0: as [`publish`] picks).
    pub(crate) fn new(store: &'a Store, state: &'a State, threads: usize) -> Result<Self, Error> {
        Ok(InlinePublisher {
            store,
            state,
            pool: publish_pool(threads)?,
            batch: Vec::with_capacity(BATCH),
            done: InlinePublished::default(),
        })
    }

    /// Publishes `file` now, listing the entries whose `listed` flag is set (verified with the
    /// line's checksum). Files whose path is not an index path are ignored.
    pub(crate) fn offer(&mut self, file: IndexFile, listed: Vec<bool>) -> Result<(), Error> {
        if crate_of_index_path(&file.path).is_none() {
            return Ok(());
        }
        self.done.seen.insert(path_key(&file.path));
        self.batch.push((file, listed));
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Leaves the index file at `path` for the publish after the downloads.
    pub(crate) fn defer(&mut self, path: &str) {
        if crate_of_index_path(path).is_none() {
            return;
        }
        self.done.seen.insert(path_key(path));
        self.done.deferred.push(path.to_owned());
    }

    /// Publishes what is still batched and says what was done.
    pub(crate) fn finish(mut self) -> Result<InlinePublished, Error> {
        self.flush()?;
        Ok(self.done)
    }

    fn flush(&mut self) -> Result<(), Error> {
        let (store, state) = (self.store, self.state);
        let outcomes: Vec<Result<FileOutcome, Error>> = self.pool.install(|| {
            self.batch
                .par_iter()
                .map(|(file, listed)| {
                    let mut lines = Vec::new();
                    for (entry, _) in file.entries.iter().zip(listed).filter(|(_, l)| **l) {
                        lines.extend_from_slice(entry.raw());
                        lines.push(b'\n');
                    }
                    let upstream: HashSet<&str> =
                        file.entries.iter().map(|e| e.vers().as_str()).collect();
                    let mut outcome = FileOutcome::default();
                    put_published(store, state, &file.path, lines, &upstream, &mut outcome)?;
                    Ok(outcome)
                })
                .collect()
        });
        for ((file, _), outcome) in self.batch.drain(..).zip(outcomes) {
            let outcome = outcome?;
            self.done.written += u64::from(outcome.written);
            self.done.removed += u64::from(outcome.removed);
            if outcome.removed {
                // After the batch's writes, never beside them (see `Store::remove_empty_published_dirs`).
                store.remove_empty_published_dirs(&file.path)?;
            }
        }
        Ok(())
    }
}

/// The key of an index path in the sets of paths a full publish read: a 64-bit hash, so that
/// 250k paths cost 2 MB, not 20. Two paths sharing a key would only make the sweep leave a
/// published file alone, and a file the sweep would have touched keeps just what it would
/// have kept anyway (lines still verified; others were retracted when they stopped being).
fn path_key(path: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    // SipHash with fixed keys: the same in every process.
    let mut hasher = std::hash::DefaultHasher::new();
    path.hash(&mut hasher);
    hasher.finish()
}

/// Unpublishes every published index file of `store` whose path is not in `keep` (see
/// [`publish`] with all paths): only lines of versions removed upstream and kept stay. Returns
/// how many files it deleted.
pub(crate) fn sweep_published(
    store: &Store,
    state: &State,
    keep: &HashSet<u64>,
) -> Result<u64, Error> {
    sweep(store, state, keep)
}

/// The worker pool of a publish: `threads`, or one per core and at least eight: each written
/// file waits for two fsyncs (the file, its directory), and the file system commits the fsyncs
/// of many writers together.
fn publish_pool(threads: usize) -> Result<rayon::ThreadPool, Error> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    rayon::ThreadPoolBuilder::new()
        .num_threads(match threads {
            0 => cores.max(8),
            n => n,
        })
        .thread_name(|i| format!("publish-{i}"))
        .build()
        .map_err(|e| Error::Task(e.to_string()))
}

/// Whether `entry` is recorded verified with the checksum its line gives.
fn is_verified(state: &State, entry: &IndexEntry) -> Result<bool, Error> {
    let record = match state.get(entry.name(), entry.vers()) {
        Ok(record) => record,
        Err(mirror_state::Error::CorruptRecord { key, reason }) => {
            // An unreadable record proves nothing: leave the line out.
            tracing::warn!(%key, %reason, "ignoring an unreadable state record");
            None
        }
        Err(e) => return Err(e.into()),
    };
    Ok(record
        .is_some_and(|r| matches!(r.status, Status::Verified { .. }) && r.cksum == *entry.cksum()))
}

/// For an index file upstream no longer has (the crate was deleted): keeps the lines
/// [`put_published`] keeps, or deletes the file when there are none. Returns whether it deleted
/// the file.
fn unpublish_deleted(store: &Store, state: &State, path: &str) -> Result<bool, Error> {
    let mut outcome = FileOutcome::default();
    put_published(
        store,
        state,
        path,
        Vec::new(),
        &HashSet::new(),
        &mut outcome,
    )?;
    Ok(outcome.removed)
}

/// Unpublishes every published index file whose path is not in `keep` (see
/// [`unpublish_deleted`]); leaves `config.json` and anything that is not where an index file
/// belongs. Symlinked directories are not entered. Returns how many files it deleted.
fn sweep(store: &Store, state: &State, keep: &HashSet<u64>) -> Result<u64, Error> {
    let index_root = &store.index_root();
    let mut removed = 0;
    match fs::symlink_metadata(index_root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Ok(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(store_io("inspecting", index_root)(e)),
    }
    let mut stack = vec![(index_root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let listing = fs::read_dir(&dir).map_err(store_io("listing", &dir))?;
        for entry in listing {
            let entry = entry.map_err(store_io("listing", &dir))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let file_type = entry
                .file_type()
                .map_err(store_io("inspecting", entry.path()))?;
            if file_type.is_dir() {
                stack.push((entry.path(), child));
            } else if crate_of_index_path(&child).is_some()
                && !keep.contains(&path_key(&child))
                && unpublish_deleted(store, state, &child)?
            {
                store.remove_empty_published_dirs(&child)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

fn store_io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| {
        Error::Store(mirror_store::Error::Io {
            action,
            path,
            source,
        })
    }
}
