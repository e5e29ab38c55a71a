//! `verify`: re-hash every recorded file on all cores, find what is missing, corrupt or
//! unexpected, and with `repair` download the broken ones again.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mirror_core::Verified;
use mirror_fetch::Fetcher;
use mirror_index::{Checksum, CrateName, DlTemplate, Version};
use mirror_state::{Batch, State, StateOptions, Status};
use mirror_store::{Store, WalkEntry};
use rayon::prelude::*;

use crate::download::{Work, download_all, runtime};
use crate::durable::Irreversible;
use crate::{Error, FetchSettings, Interrupt, Progress, Stage, VerifyReport, VersionRef, meta};

/// Records hashed per round: bounds memory whatever the size of the mirror, and is large enough
/// to keep every core busy.
const CHUNK: usize = 4096;

/// The failure class of a recorded file found missing.
const KIND_MISSING: &str = "missing";
/// The failure class of a recorded file found corrupt.
const KIND_CORRUPT: &str = "corrupt";
/// The failure class of a download our own disk refused (recorded by `download.rs`).
const KIND_STORAGE: &str = "storage";

/// What to verify and how.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Download missing and corrupt versions again (`--repair`), through the same polite path
    /// as a sync. Corrupt files are moved to quarantine first.
    pub repair: bool,
    /// Threads for hashing; 0 means one per core.
    pub threads: usize,
    /// How repairs are downloaded.
    pub fetch: FetchSettings,
    /// Who holds the state while this runs, such as `mirror-cli verify`.
    pub holder: Option<String>,
}

/// One recorded, verified version to check.
struct Check {
    name: CrateName,
    vers: Version,
    cksum: Checksum,
    size: u64,
    /// Recorded verified (else: found broken by an earlier verify).
    verified: bool,
}

enum Verdict {
    Ok(Verified),
    Missing,
    Corrupt(String),
}

/// Checks every version the state records as verified against the file on disk (size, then
/// SHA-256), and walks `crates/` for files no record accounts for.
///
/// A missing or corrupt version stops being recorded as verified (it is recorded as failed, so the
/// next sync downloads it again): the state never claims a file that fails verification. With
/// [`VerifyOptions::repair`], they are downloaded again now.
///
/// Blocking; hashing runs on a pool of [`VerifyOptions::threads`] threads.
pub fn verify(
    dest: &Path,
    options: &VerifyOptions,
    progress: &dyn Progress,
    interrupt: &Interrupt,
) -> Result<VerifyReport, Error> {
    let started = Instant::now();
    let mut report = VerifyReport::default();
    if !dest.join(".mirror").is_dir() {
        return Err(Error::Config(format!(
            "{} is not a mirror (no .mirror folder); run a sync first",
            dest.display()
        )));
    }
    let store = Arc::new(Store::open(dest)?);
    let state_options = StateOptions {
        holder: options
            .holder
            .clone()
            .unwrap_or_else(|| "mirror-sync verify".to_owned()),
        ..StateOptions::default()
    };
    // A mirror this process cannot write (a read-only mount, another user's files) is checked
    // all the same, from a private copy of its state; what is found is reported, not recorded.
    let (state, read_only) = match State::open(&store.state_dir(), state_options.clone()) {
        // A repair downloads into the mirror, records what it finds and takes broken versions
        // out of the published index: none of it can be done here, so it is refused before
        // anything is checked.
        Err(e) if e.is_not_writable() && options.repair => {
            return Err(Error::Config(format!(
                "verify --repair needs write access to the mirror at {} ({e}): it downloads into \
                 it, records what it finds and takes broken versions out of the published index; \
                 run it where the mirror is writable (verify without --repair checks a read-only \
                 mirror)",
                dest.display()
            )));
        }
        Err(e) if e.is_not_writable() => {
            tracing::info!("{e}: checking from a copy of the state, recording nothing");
            (
                Arc::new(State::open_read_only(&store.state_dir(), state_options)?),
                true,
            )
        }
        other => (Arc::new(other?), false),
    };
    report.read_only = read_only;
    if !read_only {
        store.clean_temp()?;
    }
    let irreversible = Irreversible::new(&store, &state);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .thread_name(|i| format!("mirror-verify-{i}"))
        .build()
        .map_err(|e| Error::Task(e.to_string()))?;

    let counts = state.counts()?;
    progress.stage(&Stage::Verifying {
        files: counts.verified,
        bytes: counts.verified_bytes,
    });
    // A mark left by a run that was stopped before it published: only a full publish (the next
    // sync's) catches up on it, so this run's partial one must leave it.
    let pending_at_start = state.get_meta(meta::PUBLISH_PENDING)?.is_some();
    let mut broken: Vec<(Work, bool)> = Vec::new();
    // Crates with versions verified again by this run, whose published index files need them.
    let mut republish: Vec<CrateName> = Vec::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut records = state.iter();
    loop {
        if interrupt.is_triggered() {
            report.interrupted = true;
            break;
        }
        chunk.clear();
        for item in records.by_ref() {
            let (name, vers, record) = match item {
                Ok(item) => item,
                Err(e) => {
                    tracing::warn!("skipping an unreadable state record: {e}");
                    continue;
                }
            };
            // Verified records, and those an earlier verify found broken and nothing has mended
            // since (or whose repair our own disk refused): they are checked again, so every
            // run reports the truth of the moment. A storage failure keeps the size of a copy
            // that was verified once (no crate file is empty); one with size 0 is a version a
            // sync never got onto the disk, so there is no file to miss.
            let recheck = match &record.status {
                Status::Verified { .. } => true,
                Status::Failed { kind, .. } => {
                    kind == KIND_MISSING
                        || kind == KIND_CORRUPT
                        || (kind == KIND_STORAGE && record.size > 0)
                }
            };
            if recheck {
                chunk.push(Check {
                    name,
                    vers,
                    cksum: record.cksum,
                    size: record.size,
                    verified: record.is_verified(),
                });
                if chunk.len() == CHUNK {
                    break;
                }
            }
        }
        if chunk.is_empty() {
            break;
        }
        let verdicts: Vec<Verdict> = pool.install(|| {
            chunk
                .par_iter()
                .map(|check| {
                    let verdict = check_one(&store, check);
                    progress.done(&check.name, &check.vers);
                    verdict
                })
                .collect()
        });
        // The versions of this chunk found broken, recorded as such before anything is done
        // about them.
        let mut found: Vec<(Check, &str)> = Vec::new();
        let mut marks = Batch::new();
        for (check, verdict) in chunk.drain(..).zip(verdicts) {
            report.checked += 1;
            let version = VersionRef {
                name: check.name.to_string(),
                vers: check.vers.to_string(),
            };
            let (kind, message) = match verdict {
                Verdict::Ok(proof) => {
                    let len = proof.len;
                    report.ok += 1;
                    report.bytes += len;
                    progress.bytes(len);
                    if !check.verified && !read_only {
                        // Put back by hand since an earlier verify: verified again, and to be
                        // published again (marked first, in case this run is killed).
                        if republish.is_empty() {
                            state.set_meta(meta::PUBLISH_PENDING, "verify is re-publishing")?;
                        }
                        state.mark_verified(&check.name, &check.vers, &proof)?;
                        republish.push(check.name.clone());
                    }
                    continue;
                }
                Verdict::Missing => {
                    report.missing.push(version);
                    (
                        KIND_MISSING,
                        "the recorded file is not in the mirror".to_owned(),
                    )
                }
                Verdict::Corrupt(why) => {
                    report.corrupt.push(version);
                    (KIND_CORRUPT, why)
                }
            };
            tracing::warn!(name = %check.name, vers = %check.vers, kind, "{message}");
            marks.mark_failed(&check.name, &check.vers, check.cksum, kind, &message);
            found.push((check, kind));
        }
        if !found.is_empty() && !read_only {
            // In this order, so that a verify killed at any point leaves nothing that lies: the
            // next sync compares everything (an incremental one reads only the index files
            // that changed upstream, and would never look at these versions again) and the
            // state stops claiming them, durably; only then does the published index stop
            // offering them (`Irreversible` flushes first). Killed in between, the published
            // index still offers lines whose files were broken before this run began, and the
            // next sync, a full compare, publishes those files again from the state.
            if broken.is_empty() {
                state.set_meta(
                    meta::FULL_COMPARE_NEEDED,
                    "verify found versions missing or corrupt",
                )?;
            }
            state.apply(std::mem::take(&mut marks))?;
            let versions: Vec<(CrateName, Version)> = found
                .iter()
                .map(|(c, _)| (c.name.clone(), c.vers.clone()))
                .collect();
            irreversible.retract(&versions)?;
            crate::crash::point("verify-retracted");
            broken.extend(found.into_iter().map(|(check, kind)| {
                (
                    Work {
                        name: check.name,
                        vers: check.vers,
                        cksum: check.cksum,
                    },
                    kind == KIND_CORRUPT,
                )
            }));
        }
    }

    // Retracted from the published index as they were found; a repair or the next sync brings
    // them back.
    let retracted: Vec<(CrateName, Version)> = broken
        .iter()
        .map(|(w, _)| (w.name.clone(), w.vers.clone()))
        .collect();
    if !broken.is_empty() {
        state.set_meta(
            meta::FULL_COMPARE_NEEDED,
            &format!("verify found {} versions missing or corrupt", broken.len()),
        )?;
    }

    if !report.interrupted {
        progress.stage(&Stage::Walking);
        let corrupt: HashSet<(String, String)> = report
            .corrupt
            .iter()
            .map(|v| (v.name.clone(), v.vers.clone()))
            .collect();
        for entry in store.walk() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!("{e}");
                    continue;
                }
            };
            let path = match entry {
                WalkEntry::Unexpected { path } => path,
                WalkEntry::Crate {
                    name, vers, path, ..
                } => {
                    if corrupt.contains(&(name.to_string(), vers.to_string())) {
                        continue;
                    }
                    match state.get(&name, &vers) {
                        Ok(Some(record)) if record.is_verified() => continue,
                        _ => path,
                    }
                }
                _ => continue,
            };
            let rel = path.strip_prefix(store.root()).unwrap_or(&path);
            report.unexpected.push(rel.to_string_lossy().into_owned());
        }
    }

    // Set when a repair stopped on a local failure (a full disk).
    let mut stopped = None;
    if options.repair && !broken.is_empty() && !report.interrupted {
        if republish.is_empty() {
            state.set_meta(meta::PUBLISH_PENDING, "verify is repairing")?;
        }
        republish.extend(retracted.iter().map(|(name, _)| name.clone()));
        stopped = repair(
            broken,
            &store,
            &state,
            options,
            progress,
            interrupt,
            &mut report,
        )?;
        // The mark stays even when every repair succeeded: only a full compare without
        // failures proves that nothing else an earlier verify found is still broken.
    }
    // Not after a repair stopped by a local failure (`repair` says so): publishing would write
    // to the same, likely full, disk. The pending mark makes the next sync publish everything.
    if stopped.is_none() && !republish.is_empty() {
        republish_crates(&store, &state, options, republish, pending_at_start)?;
    }
    report.interrupted |= interrupt.is_triggered();
    // A read-only state has nothing of its own to save (its copy is thrown away).
    let flushed = if read_only { Ok(()) } else { state.flush() };
    match (flushed, stopped) {
        (Ok(()), _) => {}
        // After a local failure the state may be unable to write; the report still says what
        // was found and repaired, and records that did not reach the disk are of files in
        // place, which the next sync adopts.
        (Err(e), Some(why)) => {
            tracing::error!("cannot save the state after the local failure ({why}): {e}");
        }
        (Err(e), None) => return Err(e.into()),
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn check_one(store: &Store, check: &Check) -> Verdict {
    let path = store.crate_path(&check.name, &check.vers);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Verdict::Missing,
        Err(e) => return Verdict::Corrupt(format!("cannot inspect {}: {e}", path.display())),
        Ok(meta) if !meta.is_file() => {
            return Verdict::Corrupt(format!("{} is not a regular file", path.display()));
        }
        Ok(meta) if meta.len() != check.size => {
            return Verdict::Corrupt(format!(
                "{} has {} bytes, the record says {}",
                path.display(),
                meta.len(),
                check.size
            ));
        }
        Ok(_) => {}
    }
    match mirror_store::verify_file(&path, check.cksum) {
        Ok(Ok(proof)) if proof.len == check.size => Verdict::Ok(proof),
        Ok(Ok(proof)) => Verdict::Corrupt(format!(
            "{} has {} bytes, the record says {}",
            path.display(),
            proof.len,
            check.size
        )),
        Ok(Err(mismatch)) => Verdict::Corrupt(format!(
            "{} has SHA-256 {}, the record says {}",
            path.display(),
            mismatch.actual,
            check.cksum
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Verdict::Missing,
        Err(e) => Verdict::Corrupt(format!("cannot read {}: {e}", path.display())),
    }
}

/// Moves corrupt files to quarantine and downloads the broken versions again. Returns why the
/// downloads stopped early when the mirror's own disk or state failed (such as a full disk).
fn repair(
    broken: Vec<(Work, bool)>,
    store: &Arc<Store>,
    state: &Arc<State>,
    options: &VerifyOptions,
    progress: &dyn Progress,
    interrupt: &Interrupt,
    report: &mut VerifyReport,
) -> Result<Option<String>, Error> {
    let dl = state.get_meta(meta::DL)?.ok_or_else(|| {
        Error::Config(
            "cannot repair: the mirror has no download template recorded (run a sync first)"
                .to_owned(),
        )
    })?;
    let dl = DlTemplate::new(&dl)?;
    let cdn = match state.get_meta(meta::CDN_FOR_DL)? {
        Some(for_dl) if for_dl == dl.as_str() && !dl.has_markers() => state
            .cdn_template()?
            .and_then(|t| DlTemplate::new(&t).ok())
            .filter(DlTemplate::has_markers),
        _ => None,
    };
    let mut work = Vec::with_capacity(broken.len());
    // The failure marks of every broken version were made durable before its line was
    // retracted; `Irreversible` checks again (a flush with nothing new is free).
    let irreversible = Irreversible::new(store, state);
    for (item, corrupt) in broken {
        if corrupt {
            let reason = "verify found it corrupt; replaced by a fresh download";
            if irreversible
                .quarantine(&item.name, &item.vers, reason)?
                .is_some()
            {
                crate::crash::point("verify-quarantined");
            }
        }
        work.push(item);
    }
    let fetcher = Fetcher::new(options.fetch.options(dl.clone(), cdn))?;
    progress.stage(&Stage::Downloading {
        versions: work.len() as u64,
        known_bytes: 0,
    });
    let rt = runtime(options.threads)?;
    let downloaded = rt.block_on(download_all(
        work, &fetcher, store, state, progress, interrupt,
    ));
    report.repaired = downloaded.done;
    report.failures = downloaded.failures;
    report.failures_by_kind = crate::report::group(&report.failures);
    report.host_stopped = downloaded.host_stopped;
    report.not_attempted = downloaded.not_attempted;
    report.interrupted |= downloaded.interrupted;
    if let Some(why) = downloaded.stopped {
        // Publishing would write to the same, likely full, disk and turn a report into a fatal
        // error; the published index still lists only verified versions, and the next sync or
        // repair brings the repaired ones back into it.
        tracing::error!("the repair stopped early: {why}; not publishing the index");
        return Ok(Some(why));
    }
    if let Some(template) = fetcher.learned_template() {
        state.set_cdn_template(template.as_str())?;
        state.set_meta(meta::CDN_FOR_DL, dl.as_str())?;
    }
    Ok(None)
}

/// Offers the versions of `crates` that are verified again in the published index, read from
/// the index clone as it was synced (no fetch). Clears the pending-publish mark unless an
/// earlier run left it (`pending_at_start`: then only the next sync's full publish catches up).
fn republish_crates(
    store: &Store,
    state: &State,
    options: &VerifyOptions,
    crates: Vec<CrateName>,
    pending_at_start: bool,
) -> Result<(), Error> {
    let (Some(src), true) = (
        state.get_meta(meta::INDEX_SOURCE)?,
        store.index_root().join("config.json").exists(),
    ) else {
        // Never published: the next sync publishes everything anyway.
        return Ok(());
    };
    let source =
        crate::Source::open_local(&src, &store.index_dir(), &options.fetch.full_user_agent())?;
    let paths: Vec<String> = crates
        .iter()
        .map(mirror_index::index_path)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let publish_options = crate::PublishOptions {
        threads: options.threads,
        ..Default::default()
    };
    crate::publish(store, state, &source, Some(&paths), &publish_options)?;
    if !pending_at_start {
        state.remove_meta(meta::PUBLISH_PENDING)?;
    }
    Ok(())
}
