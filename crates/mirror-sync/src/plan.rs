//! Planning a sync: which index files to read (all, the changed ones, or the named crates), and
//! what each selected version needs (nothing, a hash of the file in place, a download, a
//! replacement), plus what changed upstream (added, yanked, unyanked, removed).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher};

use mirror_index::{
    ChangeKind, Checksum, CrateName, GitId, IndexEntry, IndexFile, ReadOptions, Version,
};
use mirror_state::{Record, State, Status};
use mirror_store::Store;
use rayon::prelude::*;

use crate::download::Work;
use crate::publish::{InlinePublished, InlinePublisher};
use crate::{Error, Interrupt, Source, SyncOptions, SyncReport};

/// How many skipped index lines a report quotes (all are logged).
const INDEX_ERROR_SAMPLES: usize = 20;
/// How many versions found without their file (or with another size) a report names.
const DRIFT_SAMPLES: usize = 100;

/// How much of the index a sync reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every index file, compared with every record: finds drift, and removals even when the
    /// last synced tree is gone.
    Full,
    /// Only the index files that differ between the last synced tree and the new one.
    Incremental,
    /// Only the crates named with `--crate`.
    Selected,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
            Mode::Selected => "selected",
        }
    }
}

/// The plan: what the index holds against what the state and the store hold.
#[derive(Default)]
pub(crate) struct Plan {
    pub(crate) downloads: Vec<Work>,
    /// Not recorded as verified, but a file is in place: hash it before downloading.
    pub(crate) adopt: Vec<Work>,
    /// Verified under another checksum: the version was re-published.
    pub(crate) changed: Vec<(Work, Checksum)>,
    /// Recorded verified with the index checksum, but the file is not in place or does not
    /// have the recorded size: to be recorded failed, quarantined (if there) and downloaded.
    pub(crate) drifted: Vec<(Work, Drift)>,
    /// The same, for yanked versions `--skip-yanked` leaves out: their records are forgotten
    /// (the mirror no longer claims them) and, if of another size, their files quarantined,
    /// but nothing is downloaded.
    pub(crate) forgotten: Vec<(Work, Drift)>,
    /// Recorded versions the index no longer lists.
    pub(crate) removed: Vec<(CrateName, Version)>,
    /// Tombstoned versions the index lists again.
    pub(crate) restored: Vec<(CrateName, Version)>,
    /// Every index path the diff from the last synced tree reports (added, modified, deleted):
    /// what an incremental publish must look at.
    pub(crate) diff_paths: Vec<String>,
    /// A full compare (not a dry run) publishes as it reads: what it published, and the index
    /// files it left for the publish after the downloads.
    pub(crate) inline_published: Option<InlinePublished>,
}

/// What a sync found wrong with the file of a version recorded verified.
#[derive(Clone, Debug)]
pub(crate) enum Drift {
    /// No regular file where the version's file belongs.
    Missing,
    /// A file of `found` bytes; the record says `recorded`.
    Size { found: u64, recorded: u64 },
    /// Something else than a regular file or a directory (a symlink).
    NotAFile,
}

impl Drift {
    /// The failure class recorded for it (the classes `verify` records).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Drift::Missing => "missing",
            Drift::Size { .. } | Drift::NotAFile => "corrupt",
        }
    }

    /// What is wrong, for people.
    pub(crate) fn message(&self) -> String {
        match self {
            Drift::Missing => {
                "recorded verified, but the file is not in the mirror (found by a sync)".to_owned()
            }
            Drift::Size { found, recorded } => format!(
                "recorded verified with {recorded} bytes, but the file has {found} (found by a sync)"
            ),
            Drift::NotAFile => {
                "recorded verified, but a symlink or special file is in its place (found by a sync)"
                    .to_owned()
            }
        }
    }
}

/// A version named by its published name and version text.
type Key = (String, String);

fn key(name: &CrateName, vers: &Version) -> Key {
    (name.as_str().to_owned(), vers.as_str().to_owned())
}

/// Plans a sync in `mode`. For [`Mode::Full`] and [`Mode::Incremental`], `since` is the last
/// synced tree when the repository still has it: the diff against it classifies what changed
/// upstream (in incremental mode it is also all that is read).
pub(crate) fn plan(
    (mode, since): (Mode, Option<GitId>),
    source: &Source,
    state: &State,
    store: &Store,
    options: &SyncOptions,
    report: &mut SyncReport,
    interrupt: &Interrupt,
) -> Result<Plan, Error> {
    let read_options = ReadOptions::with_threads(options.threads);
    let tombstoned: HashSet<Key> = state
        .tombstones()
        .filter_map(Result::ok)
        .filter_map(|t| Some(key(&t.name, t.vers.as_ref()?)))
        .collect();

    // What changed between the last synced tree and this one: the old content of every changed
    // file, to compare the new content against.
    let mut diff = match (since, source.git_index(), source.tree()) {
        (Some(old), Some(git), Some(new)) if mode != Mode::Selected => {
            let changes = git.diff_trees(&old, &new)?;
            let mut old_paths = Vec::new();
            let mut new_paths = Vec::new();
            for change in changes {
                match change.kind {
                    ChangeKind::Added => new_paths.push(change.path),
                    ChangeKind::Modified => {
                        old_paths.push(change.path.clone());
                        new_paths.push(change.path);
                    }
                    ChangeKind::Deleted => old_paths.push(change.path),
                }
            }
            let mut old_entries: HashMap<Key, bool> = HashMap::new();
            git.read_paths(&old, &old_paths, &read_options, &mut |file| {
                for entry in &file.entries {
                    old_entries.insert(key(entry.name(), entry.vers()), entry.yanked());
                }
            })?;
            Some(Diff {
                deleted_paths: old_paths
                    .into_iter()
                    .filter(|p| !new_paths.contains(p))
                    .collect(),
                new_paths,
                changed: HashSet::new(),
                old_entries,
            })
        }
        _ => None,
    };
    if let Some(diff) = &mut diff {
        diff.changed = diff.new_paths.iter().cloned().collect();
    }

    // For a full compare, every record at once, compactly: a lookup per index line is then a hash
    // probe, and what no line claimed was removed upstream.
    let mut known = match mode {
        Mode::Full => Some(Known::load(state, !options.dry_run)?),
        _ => None,
    };
    // A full compare reads every index file and knows which lines are verified: it publishes
    // them on the way instead of reading the whole index again afterwards.
    let publisher = match mode {
        Mode::Full if !options.dry_run => {
            Some(InlinePublisher::new(store, state, options.threads)?)
        }
        _ => None,
    };

    let mut planner = Planner {
        state,
        store,
        options,
        plan: Plan::default(),
        tombstoned: &tombstoned,
        known: known.as_mut(),
        diff: diff.as_mut(),
        publisher,
        pending: Vec::new(),
        checks: Vec::new(),
        stat_pool: stat_pool()?,
        failure: None,
        seen: HashSet::new(),
        report,
        interrupt,
    };
    let read = match mode {
        Mode::Full => source.read(&[], &read_options, &mut |file| planner.file(file))?,
        Mode::Selected => source.read(&options.crates, &read_options, &mut |file| {
            planner.file(file)
        })?,
        Mode::Incremental => {
            let paths = planner
                .diff
                .as_ref()
                .map(|d| d.new_paths.clone())
                .unwrap_or_default();
            let (git, tree) = source
                .git_index()
                .zip(source.tree())
                .expect("incremental mode is only chosen for a git source");
            git.read_paths(&tree, &paths, &read_options, &mut |file| planner.file(file))?
        }
    };
    if planner.failure.is_none() {
        planner.settle();
    }
    if let Some(e) = planner.failure.take() {
        return Err(e);
    }
    planner.report.index_files_read = read.files as u64;
    let seen = std::mem::take(&mut planner.seen);
    let mut plan = std::mem::take(&mut planner.plan);
    let publisher = planner.publisher.take();
    drop(planner);
    plan.inline_published = publisher.map(InlinePublisher::finish).transpose()?;

    // Removed upstream: recorded versions no index line claims any more.
    let mut removed: Vec<(CrateName, Version)> = Vec::new();
    match mode {
        Mode::Full => {
            if let Some(known) = &known {
                removed = known.unseen(state)?;
            }
        }
        Mode::Incremental => {
            if let Some(diff) = &diff {
                for (name, vers) in diff.old_entries.keys() {
                    let (Ok(name), Ok(vers)) = (CrateName::new(name), Version::new(vers)) else {
                        continue;
                    };
                    if state.get(&name, &vers)?.is_some() {
                        removed.push((name, vers));
                    }
                }
            }
        }
        Mode::Selected => {
            for name in &options.crates {
                for item in state.iter_crate(name) {
                    let (name, vers, _) = item?;
                    if !seen.contains(&key(&name, &vers)) {
                        removed.push((name, vers));
                    }
                }
            }
        }
    }
    removed.sort();
    plan.removed = removed;
    if let Some(diff) = &diff {
        plan.diff_paths = diff
            .new_paths
            .iter()
            .chain(&diff.deleted_paths)
            .cloned()
            .collect();
    }
    report.not_in_index = options
        .crates
        .iter()
        .filter(|name| read.not_found.contains(&mirror_index::index_path(name)))
        .map(ToString::to_string)
        .collect();
    Ok(plan)
}

/// The old side of a diff.
struct Diff {
    /// Index files added or modified: what incremental mode reads.
    new_paths: Vec<String>,
    /// Index files deleted.
    deleted_paths: Vec<String>,
    /// The same, as a set, to tell whether a file read in full mode changed.
    changed: HashSet<String>,
    /// Every version in the old content of modified and deleted files, with its yanked flag.
    /// Versions found in the new content are taken out; what is left was removed.
    old_entries: HashMap<Key, bool>,
}

/// Every record in a compact table, for a full compare: per version, keyed by a hash of its
/// name and version, one word holding the first 37 bits of its checksum, its size when under
/// 16 MiB, whether it is verified, and whether an index line claimed it, in a sorted vector: 16
/// bytes a record (2.7M records, 43 MB at crates.io scale), so the compare stays within bounded
/// memory; the names themselves are not kept, and finding the records no line claimed takes a
/// second pass over the state, only when there is one.
///
/// 37 bits of checksum tell a re-published version from its old record but for a chance of
/// one in 10^11 per re-publication; the size (checked against the file in place) makes a
/// 16-byte slot hold what a third word would otherwise add (22 MB at crates.io scale). Larger
/// files are looked up in the state.
struct Known {
    /// `(key hash, slot)`, sorted by key hash, one entry per key (records sharing one are a
    /// single `COLLIDED` slot): 16 bytes a record, with no spare buckets.
    slots: Vec<(u64, u64)>,
    /// Slots claimed by at least one line.
    claimed: usize,
    /// Keys of versions claimed whose hash two records share (a 64-bit collision: in practice
    /// never): their slot cannot say which one was seen, so the keys are kept.
    collided_seen: HashSet<Key>,
}

/// The state's meta key holding how many records the last full compare loaded: the capacity
/// of the next one's table.
const KNOWN_RECORDS_META: &str = "known_records";

/// The low 37 bits of a slot: the checksum prefix.
const CKSUM_BITS: u64 = (1 << 37) - 1;
/// Where the size sits in a slot, above the checksum prefix.
const SIZE_SHIFT: u32 = 37;
/// The 24 bits of the size; all ones means "16 MiB or more: ask the state".
const SIZE_MASK: u64 = (1 << 24) - 1;
/// Two records share the slot's key hash; look them up in the state instead.
const COLLIDED: u64 = 1 << 61;
const VERIFIED: u64 = 1 << 62;
const SEEN: u64 = 1 << 63;

fn key_hash(name: &str, vers: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    name.hash(&mut hasher);
    vers.hash(&mut hasher);
    hasher.finish()
}

fn cksum_prefix(cksum: &Checksum) -> u64 {
    let bytes = cksum.as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().expect("a checksum has 32 bytes")) & CKSUM_BITS
}

/// Every record of `state`, skipping (with a warning) the ones that cannot be read.
fn records(
    state: &State,
) -> impl Iterator<Item = Result<(CrateName, Version, Record), Error>> + '_ {
    state.iter().filter_map(|item| match item {
        Ok(item) => Some(Ok(item)),
        Err(mirror_state::Error::CorruptRecord { key, reason }) => {
            tracing::warn!(%key, %reason, "ignoring an unreadable state record");
            None
        }
        Err(e) => Some(Err(e.into())),
    })
}

impl Known {
    /// Loads every record; `remember` (not for a dry run) keeps the count for the next load.
    fn load(state: &State, remember: bool) -> Result<Known, Error> {
        // Sized by the last load's count, so that growing never doubles it past what is needed.
        let hint: usize = state
            .get_meta(KNOWN_RECORDS_META)?
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut slots = Vec::with_capacity(hint.saturating_add(hint / 64));
        for item in records(state) {
            let (name, vers, record) = item?;
            let mut slot = cksum_prefix(&record.cksum) | (record.size.min(SIZE_MASK) << SIZE_SHIFT);
            if record.is_verified() {
                slot |= VERIFIED;
            }
            slots.push((key_hash(name.as_str(), vers.as_str()), slot));
        }
        let count = slots.len();
        slots.sort_unstable_by_key(|&(key, _)| key);
        // Records sharing a key hash become one slot that says so.
        slots.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = COLLIDED;
            }
            same
        });
        if remember && hint != count {
            state.set_meta(KNOWN_RECORDS_META, &count.to_string())?;
        }
        Ok(Known {
            slots,
            claimed: 0,
            collided_seen: HashSet::new(),
        })
    }

    fn slot_mut(&mut self, key: u64) -> Option<&mut u64> {
        let i = self.slots.binary_search_by_key(&key, |&(k, _)| k).ok()?;
        Some(&mut self.slots[i].1)
    }

    fn slot(&self, key: u64) -> Option<u64> {
        let i = self.slots.binary_search_by_key(&key, |&(k, _)| k).ok()?;
        Some(self.slots[i].1)
    }

    /// Marks `entry` seen and says what the table knows of its record.
    fn claim(&mut self, entry: &IndexEntry) -> Claim {
        match self.claim_slot(entry) {
            None => Claim::Unrecorded,
            Some(None) => Claim::Ask,
            Some(Some(size)) => Claim::Verified { size },
        }
    }

    /// [`Known::claim`]: `None` when there is no record, `Some(Some(size))` when it is verified
    /// with the entry's checksum and `size` bytes, `Some(None)` when the state must be asked.
    fn claim_slot(&mut self, entry: &IndexEntry) -> Option<Option<u64>> {
        let slot_ref = self.slot_mut(key_hash(entry.name().as_str(), entry.vers().as_str()))?;
        let first = *slot_ref & SEEN == 0;
        *slot_ref |= SEEN;
        let slot = *slot_ref;
        if first {
            self.claimed += 1;
        }
        if slot & COLLIDED != 0 {
            self.collided_seen.insert(key(entry.name(), entry.vers()));
            return Some(None);
        }
        let size = (slot >> SIZE_SHIFT) & SIZE_MASK;
        let verified = slot & VERIFIED != 0 && slot & CKSUM_BITS == cksum_prefix(entry.cksum());
        Some((verified && size != SIZE_MASK).then_some(size))
    }

    /// The records no index line claimed: none without looking further when every slot was
    /// claimed, else found by a second pass over the state.
    fn unseen(&self, state: &State) -> Result<Vec<(CrateName, Version)>, Error> {
        let mut out = Vec::new();
        let collided = self.slots.iter().any(|&(_, s)| s & COLLIDED != 0);
        if self.claimed == self.slots.len() && !collided {
            return Ok(out);
        }
        for item in records(state) {
            let (name, vers, _) = item?;
            let Some(slot) = self.slot(key_hash(name.as_str(), vers.as_str())) else {
                // Recorded after the compare started: not this compare's business.
                continue;
            };
            let seen = if slot & COLLIDED != 0 {
                self.collided_seen.contains(&key(&name, &vers))
            } else {
                slot & SEEN != 0
            };
            if !seen {
                out.push((name, vers));
            }
        }
        Ok(out)
    }
}

/// What the compact table of a full compare knows about an index entry's record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// No record.
    Unrecorded,
    /// Recorded verified with the entry's checksum, `size` bytes.
    Verified { size: u64 },
    /// Anything else: the state is asked.
    Ask,
}

/// How many `stat`s of files in place a full compare makes at once: as many as there are
/// threads to wait for them, so that the system can serve them side by side.
const STAT_THREADS: usize = 16;
/// How many `stat`s a planner gathers before making them (in parallel). With about ten versions
/// an index file at crates.io scale, the index files held meanwhile weigh a few MB.
const STAT_BATCH: usize = 4096;
/// How many index files a planner holds at most before it settles them, `stat`s or not.
const PENDING_FILES: usize = 512;

/// The pool the `stat`s of files in place run on: they wait on the file system (its caches,
/// or the disk) rather than compute, so more of them than cores is what makes them fast.
fn stat_pool() -> Result<rayon::ThreadPool, Error> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(STAT_THREADS)
        .thread_name(|i| format!("mirror-stat-{i}"))
        .build()
        .map_err(|e| Error::Task(e.to_string()))
}

/// An index file read, whose decision waits for the `stat`s of its versions' files.
struct PendingFile {
    file: IndexFile,
    /// Per entry: verified with the line's checksum and, once the checks are settled, in place.
    listed: Vec<bool>,
    /// Work was planned for some of its versions already (a download, an adoption, …).
    needs_work: bool,
    /// Its checks, in [`Planner::checks`].
    checks: std::ops::Range<usize>,
}

/// A version recorded verified with its line's checksum: its file must be in place with its
/// recorded size for the line to be published as it is (and, when selected, for the version
/// to count as present rather than drift).
struct Check {
    /// The index file, in [`Planner::pending`], and the entry in it.
    file: usize,
    entry: usize,
    size: u64,
    /// Selected by this run (not a yanked version `--skip-yanked` leaves alone): drift is
    /// downloaded again.
    selected: bool,
    /// What the `stat` found wrong, once made.
    drift: Option<Drift>,
}

/// Sorts the entries of each index file into the plan.
struct Planner<'a> {
    state: &'a State,
    store: &'a Store,
    options: &'a SyncOptions,
    plan: Plan,
    tombstoned: &'a HashSet<Key>,
    known: Option<&'a mut Known>,
    diff: Option<&'a mut Diff>,
    /// Publishes the index files that need no work as they are read (full compares).
    publisher: Option<InlinePublisher<'a>>,
    /// Index files read whose versions' files are still to be `stat`ed, in reading order.
    pending: Vec<PendingFile>,
    /// The `stat`s they wait for.
    checks: Vec<Check>,
    stat_pool: rayon::ThreadPool,
    failure: Option<Error>,
    /// For selected mode: the versions read.
    seen: HashSet<Key>,
    report: &'a mut SyncReport,
    interrupt: &'a Interrupt,
}

impl Planner<'_> {
    fn file(&mut self, file: IndexFile) {
        for problem in &file.problems {
            tracing::warn!("skipped {problem}");
            self.report.index_errors += 1;
            if self.report.index_error_samples.len() < INDEX_ERROR_SAMPLES {
                self.report.index_error_samples.push(problem.to_string());
            }
        }
        if self.failure.is_some() {
            return;
        }
        if self.interrupt.is_triggered() {
            // The reader cannot be stopped from here; the rest of its files are skipped.
            self.failure = Some(Error::Interrupted);
            return;
        }
        let changed = self
            .diff
            .as_ref()
            .is_some_and(|d| d.changed.contains(&file.path));
        let before = self.work_planned();
        let index = self.pending.len();
        let first_check = self.checks.len();
        for (i, entry) in file.entries.iter().enumerate() {
            match self.entry(entry, changed) {
                Ok(None) => {}
                Ok(Some((size, selected))) => self.checks.push(Check {
                    file: index,
                    entry: i,
                    size,
                    selected,
                    drift: None,
                }),
                Err(e) => {
                    self.failure = Some(e);
                    return;
                }
            }
        }
        let needs_work = self.work_planned() != before;
        self.pending.push(PendingFile {
            listed: vec![false; file.entries.len()],
            file,
            needs_work,
            checks: first_check..self.checks.len(),
        });
        if self.checks.len() >= STAT_BATCH || self.pending.len() >= PENDING_FILES {
            self.settle();
        }
    }

    fn work_planned(&self) -> usize {
        let plan = &self.plan;
        plan.downloads.len() + plan.adopt.len() + plan.changed.len() + plan.drifted.len()
    }

    /// `stat`s the files the pending index files wait for, all at once on the stat pool, then
    /// decides each file in reading order: its versions present or drifted, and the file
    /// published now (no work) or after the downloads.
    fn settle(&mut self) {
        let (store, pending) = (self.store, &self.pending);
        let checks = &mut self.checks;
        self.stat_pool.install(|| {
            checks.par_iter_mut().for_each(|check| {
                let entry = &pending[check.file].file.entries[check.entry];
                check.drift = in_place(store, entry.name(), entry.vers(), check.size);
            });
        });
        let mut checks = std::mem::take(&mut self.checks);
        for mut file in std::mem::take(&mut self.pending) {
            for check in &mut checks[file.checks.clone()] {
                let entry = &file.file.entries[check.entry];
                match check.drift.take() {
                    None => {
                        file.listed[check.entry] = true;
                        if check.selected {
                            self.report.already_present += 1;
                        }
                    }
                    Some(drift) if check.selected => {
                        self.drifted(entry, drift, true);
                        file.needs_work = true;
                    }
                    // A yanked version `--skip-yanked` leaves out: no longer claimed, not
                    // downloaded again.
                    Some(drift) => {
                        self.drifted(entry, drift, false);
                        file.needs_work = true;
                    }
                }
            }
            if self.failure.is_some() {
                continue;
            }
            // A file with work to do is published after the downloads, with what they
            // verified.
            if let Some(publisher) = self.publisher.as_mut() {
                let result = if file.needs_work {
                    publisher.defer(&file.file.path);
                    Ok(())
                } else {
                    publisher.offer(file.file, file.listed)
                };
                if let Err(e) = result {
                    self.failure = Some(e);
                }
            }
        }
        // Kept for its capacity.
        checks.clear();
        self.checks = checks;
    }

    /// Sorts one entry into the plan. Returns `Some((size, selected))` when it is recorded
    /// verified with its checksum and `size` bytes: it is present (and may be published as it
    /// is) if its file is in place with that size, which [`Planner::settle`] checks; `selected`
    /// is false for a yanked version `--skip-yanked` leaves alone.
    fn entry(&mut self, entry: &IndexEntry, changed: bool) -> Result<Option<(u64, bool)>, Error> {
        let report = &mut *self.report;
        report.index_versions += 1;
        let (name, vers) = (entry.name(), entry.vers());
        if changed && let Some(diff) = self.diff.as_deref_mut() {
            match diff.old_entries.remove(&key(name, vers)) {
                None => report.added += 1,
                Some(was_yanked) if was_yanked != entry.yanked() => {
                    if entry.yanked() {
                        report.yanked += 1;
                    } else {
                        report.unyanked += 1;
                    }
                }
                Some(_) => {}
            }
        }
        // Only selected mode needs the set of versions read.
        if !self.options.crates.is_empty() {
            self.seen.insert(key(name, vers));
        }
        if !self.tombstoned.is_empty() && self.tombstoned.contains(&key(name, vers)) {
            self.plan.restored.push((name.clone(), vers.clone()));
        }
        let claimed = self.known.as_deref_mut().map(|k| k.claim(entry));
        let work = || Work {
            name: name.clone(),
            vers: vers.clone(),
            cksum: *entry.cksum(),
        };
        if self.options.skip_yanked && entry.yanked() {
            // Not selected: a version kept from before is published as it is, but only with
            // its file in place (it is not downloaded again: `--skip-yanked` asks for that).
            return Ok(match claimed {
                Some(Claim::Verified { size }) => Some((size, false)),
                _ => None,
            });
        }
        report.selected += 1;
        let record = match claimed {
            // A full compare's fast path: verified with this checksum, nothing to look up but
            // the file itself.
            Some(Claim::Verified { size }) => return Ok(Some((size, true))),
            Some(Claim::Unrecorded) => None,
            _ => match self.state.get(name, vers) {
                Ok(record) => record,
                Err(mirror_state::Error::CorruptRecord { key, reason }) => {
                    // An unreadable record is no proof of anything: verify the version again.
                    tracing::warn!(%key, %reason, "ignoring an unreadable state record");
                    None
                }
                Err(e) => return Err(e.into()),
            },
        };
        match record {
            Some(Record {
                cksum,
                size,
                status: Status::Verified { .. },
            }) => {
                if cksum == *entry.cksum() {
                    return Ok(Some((size, true)));
                }
                self.plan.changed.push((work(), cksum));
            }
            _ => {
                let path = self.store.crate_path(name, vers);
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_file() => self.plan.adopt.push(work()),
                    _ => self.plan.downloads.push(work()),
                }
            }
        }
        Ok(None)
    }

    /// A version recorded verified with its index checksum whose file is not in place with
    /// its recorded size (a `stat`, no hashing: "recorded verified"): planned for a fresh
    /// download when `selected`, else for its record to be forgotten.
    fn drifted(&mut self, entry: &IndexEntry, drift: Drift, selected: bool) {
        let (name, vers) = (entry.name(), entry.vers());
        tracing::warn!(%name, %vers, "{}", drift.message());
        match drift {
            Drift::Missing => self.report.recorded_missing += 1,
            Drift::Size { .. } | Drift::NotAFile => self.report.recorded_wrong_size += 1,
        }
        if self.report.drift.len() < DRIFT_SAMPLES {
            self.report.drift.push(crate::VersionRef {
                name: name.to_string(),
                vers: vers.to_string(),
            });
        }
        let work = Work {
            name: name.clone(),
            vers: vers.clone(),
            cksum: *entry.cksum(),
        };
        if selected {
            self.plan.drifted.push((work, drift));
        } else {
            self.report.drift_forgotten += 1;
            self.plan.forgotten.push((work, drift));
        }
    }
}

/// What is wrong with the file of a version recorded verified with `size` bytes, if anything:
/// it must be a regular file (not a symlink) of that size.
fn in_place(store: &Store, name: &CrateName, vers: &Version, size: u64) -> Option<Drift> {
    match std::fs::symlink_metadata(store.crate_path(name, vers)) {
        Ok(meta) if meta.is_file() && meta.len() == size => None,
        Ok(meta) if meta.is_file() => Some(Drift::Size {
            found: meta.len(),
            recorded: size,
        }),
        Ok(meta) if !meta.is_dir() => Some(Drift::NotAFile),
        // A directory where the file belongs is no copy either; the download's rename fails on
        // it and is reported.
        _ => Some(Drift::Missing),
    }
}
