//! Rebuilding a state from the mirror's own files, after a damaged one was moved aside.
//!
//! A sync into a mirror whose state has no record at all, but whose published index exists
//! (`index/config.json`), is the recovery of a lost or damaged state. The files in place are
//! adopted by hashing them anyway; two things would be lost without this step:
//! - **Versions upstream removed** that the mirror kept: upstream no longer lists them, so the
//!   plan never hashes them, and their files and published lines would be dropped. The published
//!   index still has their lines (it keeps them while they are verified): a file that hashes to
//!   its published line's checksum is recorded verified here, so the plan finds it recorded and
//!   not listed upstream, and tombstones it as any removal, and its line stays published.
//! - **The base URL** given to an earlier publish: read back from `index/config.json`.
//!
//! Every file in place whose published line matches is recorded (not only the removed ones): it
//! saves hashing them again in the plan's adoption, and a version whose checksum upstream changed
//! since is then replaced like any re-published version. Files with no published line, or that
//! hash to something else, are left to the plan (adopted against the upstream checksum, or
//! reported by `verify` as unexpected). Failure records, the sync markers and the CDN template
//! are not rebuilt: the recovering sync is a full compare that retries what is missing and
//! learns the rest again.

use std::collections::HashMap;

use mirror_index::{Checksum, CrateName, IndexFile, Version, index_path};
use mirror_state::State;
use mirror_store::{Store, WalkEntry};
use rayon::prelude::*;

use crate::publish::{BASE_URL_META, base_url_of_config};
use crate::{Error, Progress};

/// Files hashed per round: bounds memory whatever the size of the mirror.
const CHUNK: usize = 4096;

/// What a rebuild recovered.
#[derive(Debug, Default)]
pub(crate) struct Rebuilt {
    /// Files in place recorded verified from their published line.
    pub(crate) records: u64,
    /// Whether the base URL was read back from `config.json`.
    pub(crate) base_url: bool,
}

/// Whether `state` is empty in a mirror that was published: a state lost or moved aside.
pub(crate) fn needed(store: &Store, state: &State) -> bool {
    state.iter().next().is_none() && store.index_root().join("config.json").is_file()
}

/// Rebuilds what the mirror's files say (see the module documentation).
pub(crate) fn rebuild(
    store: &Store,
    state: &State,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Rebuilt, Error> {
    let mut rebuilt = Rebuilt::default();
    if state.get_meta(BASE_URL_META)?.is_none() {
        let path = store.index_root().join("config.json");
        match std::fs::read(&path).map(|bytes| base_url_of_config(&bytes)) {
            Ok(Some(url)) => {
                tracing::info!(%url, "recovered the base URL from the published config.json");
                state.set_meta(BASE_URL_META, &url)?;
                rebuilt.base_url = true;
            }
            Ok(None) => tracing::warn!(
                path = %path.display(),
                "the published config.json names no base URL this mirror would have written"
            ),
            Err(e) => tracing::warn!(path = %path.display(), "cannot read: {e}"),
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Task(e.to_string()))?;
    // The published lines of the crate being walked (files of one crate come together).
    let mut lines: Option<(CrateName, HashMap<String, Checksum>)> = None;
    let mut chunk: Vec<(CrateName, Version, std::path::PathBuf, Checksum)> = Vec::new();
    let mut walk = store.walk();
    loop {
        let entry = walk.next();
        let done = entry.is_none();
        if let Some(entry) = entry {
            let Ok(WalkEntry::Crate {
                name, vers, path, ..
            }) = entry
            else {
                continue;
            };
            if lines.as_ref().is_none_or(|(n, _)| *n != name) {
                lines = Some((name.clone(), published_lines(store, &name)));
            }
            if let Some(cksum) = lines
                .as_ref()
                .and_then(|(_, by_vers)| by_vers.get(vers.as_str()))
            {
                chunk.push((name, vers, path, *cksum));
            }
        }
        if chunk.len() < CHUNK && !done {
            continue;
        }
        let hashed: Vec<_> = pool.install(|| {
            chunk
                .par_drain(..)
                .map(|(name, vers, path, cksum)| {
                    let result = mirror_store::verify_file(&path, cksum);
                    if let Ok(Ok(proof)) = &result {
                        progress.bytes(proof.len);
                    }
                    (name, vers, cksum, result)
                })
                .collect()
        });
        for (name, vers, cksum, result) in hashed {
            match result {
                Ok(Ok(proof)) => {
                    state.mark_verified(&name, &vers, &proof)?;
                    rebuilt.records += 1;
                }
                Ok(Err(mismatch)) => tracing::warn!(
                    %name, %vers,
                    "the file in place hashes to {}, not to its published checksum {cksum}: left to the sync",
                    mismatch.actual
                ),
                Err(e) => tracing::warn!(%name, %vers, "cannot hash the file in place: {e}"),
            }
        }
        if done {
            break;
        }
    }
    tracing::info!(
        records = rebuilt.records,
        "rebuilt records of files in place from the published index"
    );
    Ok(rebuilt)
}

/// The versions and checksums the mirror's published index file for `name` lists (none when it
/// has no readable file).
fn published_lines(store: &Store, name: &CrateName) -> HashMap<String, Checksum> {
    let path = index_path(name);
    let Ok(Some(bytes)) = store.read_published(&path) else {
        return HashMap::new();
    };
    IndexFile::parse(&path, &bytes)
        .entries
        .iter()
        .filter(|e| e.name() == name)
        .map(|e| (e.vers().as_str().to_owned(), *e.cksum()))
        .collect()
}
