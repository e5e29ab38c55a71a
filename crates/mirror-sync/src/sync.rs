//! `sync`: read the index, plan against the state and the store, adopt, download, record.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mirror_fetch::Fetcher;
use mirror_index::{Checksum, CrateName, DlTemplate, IndexFile, ReadOptions};
use mirror_state::{State, StateOptions, Status};
use mirror_store::Store;
use rayon::prelude::*;

use crate::download::{Work, download_all, runtime};
use crate::{
    ChecksumChange, Error, FetchSettings, Interrupt, Progress, Source, Stage, SyncReport, meta,
    now_unix,
};

/// How many skipped index lines a report quotes (all are logged).
const INDEX_ERROR_SAMPLES: usize = 20;

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
    /// Plan and report, but download and record nothing (`--dry-run`).
    pub dry_run: bool,
    /// Threads for parsing and hashing; 0 means one per core.
    pub threads: usize,
    /// How downloads are made.
    pub fetch: FetchSettings,
    /// Who holds the state while this runs (shown to a second process), such as
    /// `mirror-cli sync`.
    pub holder: Option<String>,
}

/// The plan: what the index holds against what the state and the store hold.
#[derive(Default)]
struct Plan {
    downloads: Vec<Work>,
    /// Not recorded as verified, but a file is in place: hash it before downloading.
    adopt: Vec<Work>,
    /// Verified under another checksum: the version was re-published.
    changed: Vec<(Work, Checksum)>,
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
    let user_agent = options.fetch.full_user_agent();
    let source = match Source::open(&src, &store.index_dir(), &user_agent, interrupt.as_atomic()) {
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

    progress.stage(&Stage::Planning);
    let plan = plan(&source, &state, &store, options, &mut report)?;
    if interrupt.is_triggered() {
        report.interrupted = true;
        return finish(report, &state, started);
    }
    if options.dry_run {
        report.would_download = (plan.downloads.len() + plan.changed.len()) as u64;
        // Files in place are hashed before anything is downloaded; count them as would-download
        // since their content is unknown until hashed.
        report.would_download += plan.adopt.len() as u64;
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    state.set_meta(meta::INDEX_SOURCE, &src)?;
    state.set_meta(meta::DL, dl.as_str())?;

    let Plan {
        mut downloads,
        adopt,
        changed,
    } = plan;
    adopt_in_place(
        adopt,
        &store,
        &state,
        options,
        progress,
        &mut downloads,
        &mut report,
    )?;
    for (work, old) in changed {
        // The old bytes are evidence and may be wanted: move them aside, never delete. Then the
        // state stops claiming them, so a crash before the new download leaves nothing that lies.
        let reason = format!(
            "checksum changed upstream: the mirror had {old}, the index now says {}",
            work.cksum
        );
        match store.quarantine(&work.name, &work.vers, &reason) {
            Ok(to) => {
                tracing::warn!(name = %work.name, vers = %work.vers, to = %to.display(), "{reason}")
            }
            Err(mirror_store::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        state.mark_failed(
            &work.name,
            &work.vers,
            work.cksum,
            "checksum_changed",
            &reason,
        )?;
        report.checksum_changes.push(ChecksumChange {
            name: work.name.to_string(),
            vers: work.vers.to_string(),
            old: old.to_string(),
            new: work.cksum.to_string(),
        });
        downloads.push(work);
    }
    report.checksum_changed = report.checksum_changes.len() as u64;

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
            state.set_cdn_template(template.as_str())?;
            state.set_meta(meta::CDN_FOR_DL, dl.as_str())?;
        }
        report.downloaded = downloaded.done;
        report.downloaded_bytes = downloaded.bytes;
        report.failures.extend(downloaded.failures);
        report.interrupted |= downloaded.interrupted;
        if let Some(why) = downloaded.stopped {
            tracing::error!("the run stopped early: {why}");
        }
    }
    report.interrupted |= interrupt.is_triggered();
    report.failed = report.failures.len() as u64;

    // The sync marker only moves when the whole index is mirrored: never past a failure.
    if report.failed == 0
        && !report.interrupted
        && options.crates.is_empty()
        && let Some((_, tip)) = source.git_tips()
    {
        state.set_index_commit(&tip.commit.to_string())?;
        state.set_index_tree(&tip.tree.to_string())?;
    }
    state.increment_sync_count()?;
    finish(report, &state, started)
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

/// Reads the index and sorts each selected version into: verified already, to adopt, to
/// download, re-published.
fn plan(
    source: &Source,
    state: &State,
    store: &Store,
    options: &SyncOptions,
    report: &mut SyncReport,
) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    let mut failure: Option<Error> = None;
    let mut sink = |file: IndexFile| {
        for problem in &file.problems {
            tracing::warn!("skipped {problem}");
            report.index_errors += 1;
            if report.index_error_samples.len() < INDEX_ERROR_SAMPLES {
                report.index_error_samples.push(problem.to_string());
            }
        }
        if failure.is_some() {
            return;
        }
        for entry in &file.entries {
            report.index_versions += 1;
            if options.skip_yanked && entry.yanked() {
                continue;
            }
            report.selected += 1;
            let work = || Work {
                name: entry.name().clone(),
                vers: entry.vers().clone(),
                cksum: *entry.cksum(),
            };
            let record = match state.get(entry.name(), entry.vers()) {
                Ok(record) => record,
                Err(mirror_state::Error::CorruptRecord { key, reason }) => {
                    // An unreadable record is no proof of anything: verify the version again.
                    tracing::warn!(%key, %reason, "ignoring an unreadable state record");
                    None
                }
                Err(e) => {
                    failure = Some(e.into());
                    return;
                }
            };
            match record {
                Some(record) if matches!(record.status, Status::Verified { .. }) => {
                    if record.cksum == *entry.cksum() {
                        report.already_present += 1;
                    } else {
                        plan.changed.push((work(), record.cksum));
                    }
                }
                _ => {
                    let path = store.crate_path(entry.name(), entry.vers());
                    match std::fs::symlink_metadata(&path) {
                        Ok(meta) if meta.is_file() => plan.adopt.push(work()),
                        _ => plan.downloads.push(work()),
                    }
                }
            }
        }
    };
    let read = source.read(
        &options.crates,
        &ReadOptions::with_threads(options.threads),
        &mut sink,
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    report.not_in_index = options
        .crates
        .iter()
        .filter(|name| read.not_found.contains(&mirror_index::index_path(name)))
        .map(ToString::to_string)
        .collect();
    Ok(plan)
}

/// Hashes files that are in place without a verified record (a run was killed between putting a
/// file in place and recording it, or `verify` found it corrupt). A match is recorded verified;
/// anything else is quarantined and downloaded again.
fn adopt_in_place(
    adopt: Vec<Work>,
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
    let hashed: Vec<(Work, std::io::Result<(u64, Checksum)>)> = pool.install(|| {
        adopt
            .into_par_iter()
            .map(|work| {
                let result = mirror_store::hash_file(&store.crate_path(&work.name, &work.vers));
                if let Ok((len, _)) = &result {
                    progress.bytes(*len);
                }
                (work, result)
            })
            .collect()
    });
    for (work, result) in hashed {
        match result {
            Ok((len, sum)) if sum == work.cksum => {
                state.mark_verified(&work.name, &work.vers, work.cksum, len)?;
                progress.done(&work.name, &work.vers);
                report.adopted += 1;
                report.already_present += 1;
            }
            Ok((_, sum)) => {
                let reason = format!(
                    "found in place without a record, but its SHA-256 is {sum}, not the index checksum {}",
                    work.cksum
                );
                tracing::warn!(name = %work.name, vers = %work.vers, "{reason}");
                store.quarantine(&work.name, &work.vers, &reason)?;
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
