//! `sync`: read the index, plan against the state and the store, adopt, download, record.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mirror_core::{Mismatch, Verified};
use mirror_fetch::Fetcher;
use mirror_index::{Checksum, CrateName, DlTemplate, GitId, Version, index_path};
use mirror_state::{Batch, State, StateOptions};
use mirror_store::Store;
use rayon::prelude::*;

use crate::download::{Work, download_all, runtime};
use crate::durable::Irreversible;
use crate::plan::{Drift, Mode, Plan, plan};
use crate::publish::sweep_published;
use crate::{
    ChecksumChange, Error, FetchSettings, Interrupt, Progress, Source, Stage, SyncReport, meta,
    now_unix,
};
use crate::{PublishOptions, publish};

/// How many removed versions a report names (all are counted and logged).
const REMOVED_SAMPLES: usize = 100;
/// Incremental syncs between two full compares, unless configured.
const FULL_EVERY_SYNCS: u64 = 24;
/// Days between two full compares, unless configured.
const FULL_EVERY_DAYS: u64 = 7;

/// What to sync and how.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SyncOptions {
    /// The index source (`--index`): a git URL, a local directory, or `sparse+http(s)://…`.
    /// `None` uses the source recorded by the mirror's last sync.
    pub index: Option<String>,
    /// The download template (`--dl`); `None` takes `dl` from the index's `config.json`.
    pub dl: Option<String>,
    /// Only these crates (`--crate`); empty means every crate in the index.
    pub crates: Vec<CrateName>,
    /// Leave out yanked versions not mirrored yet (`--skip-yanked`).
    pub skip_yanked: bool,
    /// Compare every index entry with the state (`--full`), even when the last synced tree is
    /// there to diff against. Finds drift and heals it.
    pub full: bool,
    /// Move the files of versions removed upstream into `.mirror/quarantine/` and forget them
    /// (`--prune`). Without it they are kept and tombstoned.
    pub prune: bool,
    /// Run a full compare by itself after this many incremental syncs; `None`: 24.
    pub full_every_syncs: Option<u64>,
    /// Run a full compare by itself when the last one is older than this many days; `None`: 7.
    pub full_every_days: Option<u64>,
    /// Plan and report, but download and record nothing (`--dry-run`).
    pub dry_run: bool,
    /// Threads for parsing and hashing; 0 means one per core.
    pub threads: usize,
    /// How downloads are made.
    pub fetch: FetchSettings,
    /// The base URL the published index's `config.json` points crate downloads at
    /// (`--base-url`); `None` keeps the one recorded by an earlier publish. See [`publish`].
    pub publish_base_url: Option<String>,
    /// Who holds the state while this runs (shown to a second process), such as
    /// `mirror-cli sync`.
    pub holder: Option<String>,
}

/// Mirrors the index into the mirror at `dest`: every selected version not yet verified is
/// downloaded (politely, verified against its checksum), put in place atomically, and recorded.
///
/// Blocking; it runs its own async runtime, so call it from a plain thread (or `spawn_blocking`).
/// Per-version problems are in the report; an `Err` means the run could not do its work (bad
/// options, an index or state that cannot be opened, another process holding the mirror).
pub fn sync(
    dest: &Path,
    options: &SyncOptions,
    progress: &dyn Progress,
    interrupt: &Interrupt,
) -> Result<SyncReport, Error> {
    let started = Instant::now();
    let mut report = SyncReport {
        dry_run: options.dry_run,
        ..SyncReport::default()
    };
    let store = Arc::new(Store::open(dest)?);
    let state = Arc::new(State::open(
        &store.state_dir(),
        StateOptions {
            holder: options
                .holder
                .clone()
                .unwrap_or_else(|| "mirror-sync".to_owned()),
            ..StateOptions::default()
        },
    )?);
    // Only after the lock: another run's temp files are its downloads in flight.
    report.temp_cleaned = store.clean_temp()? as u64;

    let src = match &options.index {
        Some(src) => src.clone(),
        None => state.get_meta(meta::INDEX_SOURCE)?.ok_or_else(|| {
            Error::Config(format!(
                "no index given and the mirror at {} has none recorded: pass --index with the registry's git index URL (or a directory, or sparse+https://… with --crate)",
                dest.display()
            ))
        })?,
    };
    progress.stage(&Stage::UpdatingIndex {
        source: src.clone(),
    });
    let source = match Source::open_with(
        &src,
        &store.index_dir(),
        &options.fetch,
        interrupt.as_atomic(),
    ) {
        Err(_) if interrupt.is_triggered() => return Err(Error::Interrupted),
        other => other?,
    };
    let dl = source.dl_template(options.dl.as_deref())?;
    if options.crates.is_empty() && !source.can_enumerate() {
        return Err(Error::Config(
            "a sparse index cannot be enumerated: name the crates with --crate, or use the git index"
                .to_owned(),
        ));
    }
    if let Some((_, tip)) = source.git_tips() {
        report.index_commit = Some(tip.commit.to_string());
    }

    // A published mirror with an empty state: the state was lost or moved aside (damaged).
    if !options.dry_run && crate::recover::needed(&store, &state) {
        let rebuilt = crate::recover::rebuild(&store, &state, options.threads, progress)?;
        report.adopted += rebuilt.records;
    }
    let Choice {
        mode,
        since,
        source_changed,
        full_reason,
    } = choose_mode(&source, &state, options, &src)?;
    report.mode = mode.as_str().to_owned();
    tracing::info!(mode = mode.as_str(), since = ?since, why = full_reason.as_deref().unwrap_or_default(), "planning");
    report.full_reason = full_reason;
    progress.stage(&Stage::Planning);
    let plan = match plan(
        (mode, since),
        &source,
        &state,
        &store,
        options,
        &mut report,
        interrupt,
    ) {
        Err(Error::Interrupted) => None,
        other => Some(other?),
    };
    let Some(plan) = plan.filter(|_| !interrupt.is_triggered()) else {
        report.interrupted = true;
        return finish(report, &state, started);
    };
    if options.dry_run {
        report.would_download =
            (plan.downloads.len() + plan.changed.len() + plan.drifted.len()) as u64;
        // Files in place are hashed before anything is downloaded; count them as would-download
        // since their content is unknown until hashed.
        report.would_download += plan.adopt.len() as u64;
        for work in plan
            .downloads
            .iter()
            .chain(plan.changed.iter().map(|(w, _)| w))
            .chain(plan.drifted.iter().map(|(w, _)| w))
        {
            // A record with the same checksum keeps the size of the bytes once verified.
            match state.get(&work.name, &work.vers) {
                Ok(Some(record)) if record.cksum == work.cksum && record.size > 0 => {
                    report.would_download_bytes += record.size;
                }
                _ => report.would_download_unknown_size += 1,
            }
        }
        for work in &plan.adopt {
            match std::fs::metadata(store.crate_path(&work.name, &work.vers)) {
                Ok(meta) => report.would_download_bytes += meta.len(),
                Err(_) => report.would_download_unknown_size += 1,
            }
        }
        report.removed_upstream = plan
            .removed
            .iter()
            .filter(|(name, vers)| !matches!(state.tombstone_for(name, vers), Ok(Some(_))))
            .count() as u64;
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    if source_changed && mode == Mode::Full {
        // Before the new source is recorded: a run killed from here on, whose next run sees
        // the same source, still compares everything until one full compare ends clean.
        state.set_meta(
            meta::FULL_COMPARE_NEEDED,
            "the index source changed, and no full compare has ended clean since",
        )?;
    }
    state.set_meta(meta::INDEX_SOURCE, &src)?;
    state.set_meta(meta::DL, dl.as_str())?;
    // A run before this one stopped between changing what is verified and publishing it: the
    // files it touched are not known any more, so this publish rewrites every file.
    let publish_everything = state.get_meta(meta::PUBLISH_PENDING)?.is_some();
    state.set_meta(meta::PUBLISH_PENDING, "a sync is running")?;

    let Plan {
        mut downloads,
        adopt,
        changed,
        drifted,
        forgotten,
        removed,
        restored,
        diff_paths,
        inline_published,
    } = plan;
    // The index files this run may change the published content of.
    let touched: BTreeSet<String> = diff_paths
        .into_iter()
        .chain(
            downloads
                .iter()
                .chain(&adopt)
                .chain(changed.iter().map(|(w, _)| w))
                .chain(drifted.iter().map(|(w, _)| w))
                .chain(forgotten.iter().map(|(w, _)| w))
                .map(|w| index_path(&w.name)),
        )
        .chain(removed.iter().chain(&restored).map(|(n, _)| index_path(n)))
        .collect();
    // Every irreversible step below (a retraction, a quarantine) goes through this, which makes
    // the state durable first: the tombstones, the index source and the failure marks that
    // justify it survive a kill right after it.
    let irreversible = Irreversible::new(&store, &state);
    record_removals(&removed, &restored, &state, &mut report)?;
    if options.prune {
        prune(&irreversible, &store, &state, &mut report)?;
    }
    // Versions re-published upstream, and versions recorded verified whose file is gone or of
    // another size: the state stops claiming them (and asks the next sync to compare
    // everything, should this one be killed before it downloads them), durably, before their
    // lines are retracted (no client may be offered a line whose file is about to go, or is
    // gone) and their files quarantined.
    let changed_reason = |work: &Work, old: &Checksum| {
        format!(
            "checksum changed upstream: the mirror had {old}, the index now says {}",
            work.cksum
        )
    };
    let mut marks = Batch::new();
    for (work, old) in &changed {
        let reason = changed_reason(work, old);
        marks.mark_failed(
            &work.name,
            &work.vers,
            work.cksum,
            "checksum_changed",
            &reason,
        );
    }
    for (work, drift) in &drifted {
        marks.mark_failed(
            &work.name,
            &work.vers,
            work.cksum,
            drift.kind(),
            &drift.message(),
        );
    }
    for (work, _) in &forgotten {
        marks.remove(&work.name, &work.vers);
    }
    if !drifted.is_empty() {
        state.set_meta(
            meta::FULL_COMPARE_NEEDED,
            "a sync found versions recorded verified whose file is missing or of the wrong size",
        )?;
    }
    state.apply(marks)?;
    let replaced: Vec<(CrateName, Version)> = changed
        .iter()
        .map(|(w, _)| w)
        .chain(drifted.iter().map(|(w, _)| w))
        .chain(forgotten.iter().map(|(w, _)| w))
        .map(|w| (w.name.clone(), w.vers.clone()))
        .collect();
    // Not counted in `published_removed`: these files are published again after the downloads
    // (a prune's retractions are, since those files stay removed).
    irreversible.retract(&replaced)?;
    adopt_in_place(
        adopt,
        &irreversible,
        &store,
        &state,
        options,
        progress,
        &mut downloads,
        &mut report,
    )?;
    for (work, old) in changed {
        // The old bytes are evidence and may be wanted: move them aside, never delete.
        let reason = changed_reason(&work, &old);
        if let Some(to) = irreversible.quarantine(&work.name, &work.vers, &reason)? {
            tracing::warn!(name = %work.name, vers = %work.vers, to = %to.display(), "{reason}");
            crate::crash::point("sync-quarantined");
        }
        report.checksum_changes.push(ChecksumChange {
            name: work.name.to_string(),
            vers: work.vers.to_string(),
            old: old.to_string(),
            new: work.cksum.to_string(),
        });
        downloads.push(work);
    }
    for (work, drift) in drifted {
        if !matches!(drift, Drift::Missing)
            && let Some(to) = irreversible.quarantine(&work.name, &work.vers, &drift.message())?
        {
            tracing::warn!(name = %work.name, vers = %work.vers, to = %to.display(), "quarantined");
            crate::crash::point("sync-quarantined");
        }
        downloads.push(work);
    }
    for (work, drift) in forgotten {
        if !matches!(drift, Drift::Missing)
            && let Some(to) = irreversible.quarantine(&work.name, &work.vers, &drift.message())?
        {
            tracing::warn!(name = %work.name, vers = %work.vers, to = %to.display(), "quarantined");
            crate::crash::point("sync-quarantined");
        }
    }
    report.checksum_changed = report.checksum_changes.len() as u64;

    // Set when the mirror's own disk or state failed (such as a full disk) and the downloads
    // stopped early.
    let mut stopped = None;
    if !downloads.is_empty() && !interrupt.is_triggered() {
        let cdn = match (dl.has_markers(), state.get_meta(meta::CDN_FOR_DL)?) {
            (false, Some(for_dl)) if for_dl == dl.as_str() => state
                .cdn_template()?
                .and_then(|t| DlTemplate::new(&t).ok())
                .filter(DlTemplate::has_markers),
            _ => None,
        };
        let fetcher = Fetcher::new(options.fetch.options(dl.clone(), cdn))?;
        progress.stage(&Stage::Downloading {
            versions: downloads.len() as u64,
            known_bytes: 0,
        });
        let rt = runtime(options.threads)?;
        let downloaded = rt.block_on(download_all(
            downloads, &fetcher, &store, &state, progress, interrupt,
        ));
        if let Some(template) = fetcher.learned_template() {
            let saved = state
                .set_cdn_template(template.as_str())
                .and_then(|()| state.set_meta(meta::CDN_FOR_DL, dl.as_str()));
            match (saved, &downloaded.stopped) {
                (Ok(()), _) => {}
                // A state that cannot write (the disk filled up) must not hide the report; the
                // template is learned again by the next run.
                (Err(e), Some(why)) => tracing::error!(
                    "cannot save the CDN template after the local failure ({why}): {e}"
                ),
                (Err(e), None) => return Err(e.into()),
            }
        }
        report.downloaded = downloaded.done;
        report.downloaded_bytes = downloaded.bytes;
        report.failures.extend(downloaded.failures);
        report.host_stopped = downloaded.host_stopped;
        report.not_attempted = downloaded.not_attempted;
        report.interrupted |= downloaded.interrupted;
        if let Some(why) = downloaded.stopped {
            tracing::error!("the run stopped early: {why}");
            stopped = Some(why);
        }
    }
    report.interrupted |= interrupt.is_triggered();
    report.failed = report.failures.len() as u64;
    report.failures_by_kind = crate::report::group(&report.failures);

    // Publish what is now verified (only that: the state says verified only once a file is in
    // place). A first publish of a mirror rewrites every file. A full compare published the
    // index files that needed no work while it read them; the others are published now, and
    // published files upstream no longer has are swept.
    // Not after a local failure: publishing writes to the same disk, which is likely full, and
    // would turn a clean stop with a report into a fatal error. The published index still lists
    // only verified versions; the pending mark makes the next run publish everything.
    if let Some(why) = &stopped {
        tracing::warn!(
            "not publishing the index after the local failure ({why}); the next run will"
        );
    } else if !report.interrupted {
        progress.stage(&Stage::Publishing);
        let paths: Option<Vec<String>> = match (mode, &inline_published) {
            // Whatever an earlier run left pending (or on a first publish), a full compare has
            // offered or deferred every file of the index by now.
            (Mode::Full, Some(inline)) => Some(
                inline
                    .deferred
                    .iter()
                    .cloned()
                    // This run's removals were tombstoned after the compare published their
                    // files: publish them again, keeping the removed versions listed.
                    .chain(removed.iter().map(|(name, _)| index_path(name)))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            ),
            _ if publish_everything || !store.index_root().join("config.json").exists() => None,
            (Mode::Full, None) => None,
            (Mode::Selected, _) => Some(options.crates.iter().map(index_path).collect()),
            (Mode::Incremental, _) => Some(touched.into_iter().collect()),
        };
        let mut publish_options = PublishOptions::default();
        publish_options
            .base_url
            .clone_from(&options.publish_base_url);
        publish_options.threads = options.threads;
        let published = publish(&store, &state, &source, paths.as_deref(), &publish_options)?;
        report.published_written = published.written;
        report.published_removed += published.removed;
        if let (Mode::Full, Some(inline)) = (mode, &inline_published) {
            report.published_written += inline.written;
            report.published_removed +=
                inline.removed + sweep_published(&store, &state, &inline.seen)?;
        }
        // Caught up: with an earlier run's mark, this publish was a full one.
        state.remove_meta(meta::PUBLISH_PENDING)?;
    }

    // The sync marker only moves when the whole index is mirrored: never past a failure, nor
    // past downloads a local failure or a host given up on kept from starting.
    let complete = report.failed == 0
        && !report.interrupted
        && stopped.is_none()
        && report.host_stopped.is_none()
        && report.not_attempted == 0;
    if complete
        && options.crates.is_empty()
        && let Some((_, tip)) = source.git_tips()
    {
        state.set_index_commit(&tip.commit.to_string())?;
        state.set_index_tree(&tip.tree.to_string())?;
        if options.skip_yanked {
            state.set_meta(meta::MARKER_SKIPPED_YANKED, "1")?;
        } else {
            state.remove_meta(meta::MARKER_SKIPPED_YANKED)?;
        }
    }
    let bookkeeping = || -> Result<SyncReport, Error> {
        let count = state.increment_sync_count()?;
        if mode == Mode::Full && !report.interrupted {
            state.set_last_full_compare_unix(now_unix())?;
            state.set_meta(meta::LAST_FULL_SYNC_COUNT, &count.to_string())?;
            // Damage an earlier verify found is mended only if this compare covered it all:
            // yanked versions skipped may be among it.
            if complete && !options.skip_yanked {
                state.remove_meta(meta::FULL_COMPARE_NEEDED)?;
            }
        }
        // A full compare that did not finish clean may have found drift in index files that
        // no later diff will touch (a lost record, a file in place with other bytes): only
        // another full compare retries those.
        if mode == Mode::Full && !complete {
            state.set_meta(
                meta::FULL_COMPARE_NEEDED,
                "the last full compare did not finish without failures",
            )?;
        }
        finish(report.clone(), &state, started)
    };
    match (bookkeeping(), stopped) {
        (Ok(report), _) => Ok(report),
        // After a local failure (a full disk) the state may be unable to write its counters
        // and the report too. That must not hide what the run did: the versions verified are
        // recorded (or, if their records did not reach the disk, are in place and adopted by
        // the next run), and the failures are in the report the caller gets.
        (Err(e), Some(why)) => {
            tracing::error!(
                "cannot record the end of the run after the local failure ({why}): {e}"
            );
            report.duration_ms = started.elapsed().as_millis() as u64;
            Ok(report)
        }
        (Err(e), None) => Err(e),
    }
}

fn finish(mut report: SyncReport, state: &State, started: Instant) -> Result<SyncReport, Error> {
    report.duration_ms = started.elapsed().as_millis() as u64;
    if !report.dry_run {
        state.set_meta(meta::LAST_SYNC_UNIX, &now_unix().to_string())?;
        let json = serde_json::to_string(&report).expect("a report always serialises");
        state.set_meta(meta::LAST_SYNC_REPORT, &json)?;
    }
    state.flush()?;
    Ok(report)
}

/// Hashes files that are in place without a verified record (a run was killed between putting a
/// file in place and recording it, or `verify` found it corrupt). A match is recorded verified;
/// anything else is quarantined and downloaded again.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site; the arguments are the run's shared parts"
)]
fn adopt_in_place(
    adopt: Vec<Work>,
    irreversible: &Irreversible<'_>,
    store: &Store,
    state: &State,
    options: &SyncOptions,
    progress: &dyn Progress,
    downloads: &mut Vec<Work>,
    report: &mut SyncReport,
) -> Result<(), Error> {
    if adopt.is_empty() {
        return Ok(());
    }
    progress.stage(&Stage::Adopting {
        files: adopt.len() as u64,
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| Error::Task(e.to_string()))?;
    type Hashed = std::io::Result<Result<Verified, Mismatch>>;
    let hashed: Vec<(Work, Hashed)> = pool.install(|| {
        adopt
            .into_par_iter()
            .map(|work| {
                let path = store.crate_path(&work.name, &work.vers);
                let result = mirror_store::verify_file(&path, work.cksum);
                if let Ok(Ok(proof)) = &result {
                    progress.bytes(proof.len);
                }
                (work, result)
            })
            .collect()
    });
    for (work, result) in hashed {
        match result {
            Ok(Ok(proof)) => {
                state.mark_verified(&work.name, &work.vers, &proof)?;
                progress.done(&work.name, &work.vers);
                report.adopted += 1;
                report.already_present += 1;
            }
            Ok(Err(mismatch)) => {
                let reason = format!(
                    "found in place without a record, but its SHA-256 is {}, not the index checksum {}",
                    mismatch.actual, work.cksum
                );
                tracing::warn!(name = %work.name, vers = %work.vers, "{reason}");
                irreversible.quarantine(&work.name, &work.vers, &reason)?;
                downloads.push(work);
            }
            Err(e) => {
                tracing::warn!(name = %work.name, vers = %work.vers, "cannot hash the file in place, downloading again: {e}");
                downloads.push(work);
            }
        }
    }
    Ok(())
}

/// Picks how much of the index to read: the named crates; else a diff from the last synced tree
/// when the repository still has it and no full compare is asked for or due; else everything.
/// Returns the last synced tree when it can be diffed against (it classifies changes in full
/// mode too).
fn choose_mode(
    source: &Source,
    state: &State,
    options: &SyncOptions,
    src: &str,
) -> Result<Choice, Error> {
    if !options.crates.is_empty() {
        return Ok(Choice {
            mode: Mode::Selected,
            since: None,
            source_changed: false,
            full_reason: None,
        });
    }
    // The sync marker says which tree the records match, but only while every run since read
    // the same index: a run against another source (a directory, a sparse index, another
    // registry) changes the records without moving the marker, and a diff from it would never
    // look at what that run took away (a prune) or left behind.
    let recorded = state.get_meta(meta::INDEX_SOURCE)?;
    let source_changed = recorded.as_deref().is_some_and(|old| old != src);
    let mut reasons: Vec<String> = Vec::new();
    if options.full {
        reasons.push("--full".to_owned());
    }
    let since = match (state.index_tree()?, source.git_index()) {
        (Some(tree), Some(git)) => match tree.parse::<GitId>() {
            Ok(id) if git.has_tree(&id)? => Some(id),
            Ok(id) => {
                tracing::warn!(%id, "the last synced tree is gone (a force-push?): comparing everything");
                reasons.push("the last synced tree is gone".to_owned());
                None
            }
            Err(e) => {
                tracing::warn!("ignoring an unreadable last synced tree: {e}");
                reasons.push("the last synced tree is unreadable".to_owned());
                None
            }
        },
        (None, Some(_)) => {
            reasons.push("no synced tree to diff against yet".to_owned());
            None
        }
        (_, None) => {
            reasons.push("the index is not a git repository".to_owned());
            None
        }
    };
    if source_changed {
        let why = "the index source changed: comparing everything";
        tracing::info!(
            recorded = recorded.as_deref().unwrap_or_default(),
            now = src,
            "{why}"
        );
        reasons.push("the index source changed".to_owned());
    }
    if full_compare_due(state, options)? {
        reasons.push("the periodic full compare is due".to_owned());
    }
    if let Some(why) = state.get_meta(meta::FULL_COMPARE_NEEDED)? {
        tracing::info!("comparing everything: {why}");
        reasons.push(why);
    }
    if !options.skip_yanked && state.get_meta(meta::MARKER_SKIPPED_YANKED)?.is_some() {
        tracing::info!(
            "comparing everything: the last synced tree was mirrored with --skip-yanked, this run mirrors yanked versions too"
        );
        reasons.push(
            "the last synced tree was mirrored with --skip-yanked, this run mirrors yanked versions too"
                .to_owned(),
        );
    }
    Ok(if reasons.is_empty() {
        Choice {
            mode: Mode::Incremental,
            since,
            source_changed,
            full_reason: None,
        }
    } else {
        Choice {
            mode: Mode::Full,
            since,
            source_changed,
            full_reason: Some(reasons.join("; ")),
        }
    })
}

/// How a sync reads the index, and why.
struct Choice {
    mode: Mode,
    /// The last synced tree, when it can be diffed against.
    since: Option<GitId>,
    /// The index source differs from the one the last sync recorded.
    source_changed: bool,
    /// Why a full compare was chosen (for the log and the report).
    full_reason: Option<String>,
}

/// Whether the periodic full compare is due: after `full_every_syncs` syncs or
/// `full_every_days` days since the last one.
fn full_compare_due(state: &State, options: &SyncOptions) -> Result<bool, Error> {
    let every_syncs = options.full_every_syncs.unwrap_or(FULL_EVERY_SYNCS);
    let every_days = options.full_every_days.unwrap_or(FULL_EVERY_DAYS);
    let last_count: u64 = state
        .get_meta(meta::LAST_FULL_SYNC_COUNT)?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // Syncs since the last full compare, this one included.
    if (state.sync_count()? + 1).saturating_sub(last_count) >= every_syncs {
        return Ok(true);
    }
    Ok(match state.last_full_compare_unix()? {
        Some(at) => now_unix().saturating_sub(at) >= every_days.saturating_mul(86_400),
        None => true,
    })
}

/// Tombstones versions newly seen as removed upstream (their files stay), and clears the
/// tombstones of versions listed again.
fn record_removals(
    removed: &[(CrateName, Version)],
    restored: &[(CrateName, Version)],
    state: &State,
    report: &mut SyncReport,
) -> Result<(), Error> {
    let now = now_unix();
    let mut crates: BTreeSet<&CrateName> = BTreeSet::new();
    for (name, vers) in removed {
        if state.tombstone_for(name, vers)?.is_none() {
            tracing::info!(%name, %vers, "removed upstream");
            state.tombstone(name, Some(vers), now)?;
            report.removed_upstream += 1;
            crates.insert(name);
            if report.removed.len() < REMOVED_SAMPLES {
                report.removed.push(crate::VersionRef {
                    name: name.to_string(),
                    vers: vers.to_string(),
                });
            }
        }
    }
    // A whole crate is gone when every version the mirror holds of it is removed upstream.
    for name in crates {
        let mut whole = true;
        for item in state.iter_crate(name) {
            let (name, vers, _) = item?;
            if state.tombstone_for(&name, &vers)?.is_none() {
                whole = false;
                break;
            }
        }
        if whole {
            tracing::info!(%name, "crate removed upstream");
            report.removed_crates_upstream += 1;
        }
    }
    for (name, vers) in restored {
        tracing::info!(%name, %vers, "listed upstream again");
        state.clear_tombstone(name, Some(vers))?;
    }
    Ok(())
}

/// Moves the files of tombstoned versions into quarantine and forgets their records.
///
/// In this order, each step durable before the next: the lines are retracted from the
/// published index (after the tombstones and the index source of this run reach the disk), the
/// records are forgotten, then the files go. Killed before the files go, the mirror has files
/// in place that no record claims (never a record claiming a file that is gone); the next prune
/// moves them, since it also looks for the files of tombstoned versions without a record.
fn prune(
    irreversible: &Irreversible<'_>,
    store: &Store,
    state: &State,
    report: &mut SyncReport,
) -> Result<(), Error> {
    let mut doomed = Vec::new();
    for tombstone in state.tombstones() {
        let tombstone = tombstone?;
        if let Some(vers) = tombstone.vers
            && (state.get(&tombstone.name, &vers)?.is_some()
                || std::fs::symlink_metadata(store.crate_path(&tombstone.name, &vers)).is_ok())
        {
            doomed.push((tombstone.name, vers));
        }
    }
    if doomed.is_empty() {
        return Ok(());
    }
    report.published_removed += irreversible.retract(&doomed)?.files_removed;
    let mut forget = Batch::new();
    for (name, vers) in &doomed {
        forget.remove(name, vers);
    }
    state.apply(forget)?;
    let reason = "removed from the upstream index; pruned by sync --prune";
    for (name, vers) in &doomed {
        if let Some(to) = irreversible.quarantine(name, vers, reason)? {
            tracing::info!(%name, %vers, to = %to.display(), "pruned");
            crate::crash::point("prune-quarantined");
        }
        report.pruned += 1;
    }
    Ok(())
}
