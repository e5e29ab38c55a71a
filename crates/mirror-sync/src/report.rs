//! `SyncReport` and `VerifyReport`: what a run did, shaped as the `--json` summaries of the
//! command-line contract (field names are part of it; scripts depend on them).

use serde::Serialize;

/// One version that could not be mirrored in this run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The crate name, as published.
    pub name: String,
    /// The version.
    pub vers: String,
    /// A short stable class: the fetch error classes (`not_found`, `checksum_mismatch`, `http`,
    /// `timeout`, …), or `storage` when the mirror's own disk failed.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
}

/// A version named in a report.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct VersionRef {
    /// The crate name, as published.
    pub name: String,
    /// The version.
    pub vers: String,
}

/// A version whose index checksum is not the one its verified file had: it was re-published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChecksumChange {
    /// The crate name, as published.
    pub name: String,
    /// The version.
    pub vers: String,
    /// The checksum of the file the mirror had (now in quarantine).
    pub old: String,
    /// The checksum the index gives now.
    pub new: String,
}

/// What a sync did. Serialised, it is the `sync --json` summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SyncReport {
    /// Valid versions in the index files read.
    pub index_versions: u64,
    /// Versions selected for the mirror (after `--crate` and `--skip-yanked`).
    pub selected: u64,
    /// Selected versions already verified before this run, or found in place and verified by
    /// hashing (see `adopted`).
    pub already_present: u64,
    /// Versions downloaded and verified in this run.
    pub downloaded: u64,
    /// Bytes of the versions downloaded in this run.
    pub downloaded_bytes: u64,
    /// Versions that failed in this run.
    pub failed: u64,
    /// The failures, one per version.
    pub failures: Vec<Failure>,
    /// Recorded versions newly seen as removed from the index in this run (tombstoned; their
    /// files are kept unless `prune`).
    pub removed_upstream: u64,
    /// The first of them.
    pub removed: Vec<VersionRef>,
    /// Whole crates among those removals: crates with a version newly removed in this run and
    /// none of their mirrored versions still listed upstream (deleted crates, takedowns).
    pub removed_crates_upstream: u64,
    /// Versions whose files were moved to quarantine by `prune` (this run's removals and
    /// earlier ones).
    pub pruned: u64,
    /// Versions new in the index since the last synced tree (counted from the git diff; 0 when
    /// there is no earlier tree to compare with).
    pub added: u64,
    /// Versions yanked since the last synced tree (from the git diff).
    pub yanked: u64,
    /// Versions unyanked since the last synced tree (from the git diff).
    pub unyanked: u64,
    /// How much of the index was read: `full`, `incremental` (the files changed since the last
    /// synced tree) or `selected` (`--crate`).
    pub mode: String,
    /// Index files read and parsed.
    pub index_files_read: u64,
    /// Files of the published index (`index/` under the mirror) written by this run.
    pub published_written: u64,
    /// Files of the published index removed by this run (no verified version left).
    pub published_removed: u64,
    /// Versions whose checksum changed upstream since they were verified.
    pub checksum_changed: u64,
    /// The versions behind `checksum_changed`, with old and new checksums.
    pub checksum_changes: Vec<ChecksumChange>,
    /// Files that were in place without a record (an interrupted run, or a state moved aside
    /// and rebuilt: then matched against the mirror's published line) and matched their checksum.
    pub adopted: u64,
    /// Index lines skipped because they could not be parsed (each is logged as a warning).
    pub index_errors: u64,
    /// The first few skipped index lines, as `file:line: what is wrong`.
    pub index_error_samples: Vec<String>,
    /// Crates asked for by `--crate` that the index does not have.
    pub not_in_index: Vec<String>,
    /// Leftover temp files of an earlier run deleted at the start.
    pub temp_cleaned: u64,
    /// Whether this was a dry run (nothing downloaded or recorded).
    pub dry_run: bool,
    /// For a dry run: versions that would be downloaded (or, for files already in place, hashed
    /// and downloaded only if they do not match).
    pub would_download: u64,
    /// For a dry run: the bytes of those versions whose size is known (a version the mirror
    /// held before, found missing or corrupt; a file in place). The index gives no sizes, so
    /// versions never downloaded are counted in `would_download_unknown_size` instead.
    pub would_download_bytes: u64,
    /// For a dry run: versions to download whose size cannot be known without downloading.
    pub would_download_unknown_size: u64,
    /// Whether the run was interrupted (Ctrl-C); running again resumes.
    pub interrupted: bool,
    /// The index commit read, for a git source.
    pub index_commit: Option<String>,
    /// Wall-clock duration of the run in milliseconds.
    pub duration_ms: u64,
}

impl SyncReport {
    /// Whether everything selected is now verified and nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.failed == 0
            && self.index_errors == 0
            && self.not_in_index.is_empty()
            && !self.interrupted
    }
}

/// What a verify did. Serialised, it is the `verify --json` summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Recorded files checked.
    pub checked: u64,
    /// Files whose size and SHA-256 matched the record.
    pub ok: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Recorded versions whose file is not there.
    pub missing: Vec<VersionRef>,
    /// Recorded versions whose file does not match.
    pub corrupt: Vec<VersionRef>,
    /// Files under `crates/` that no verified record accounts for, relative to the mirror root.
    pub unexpected: Vec<String>,
    /// Missing and corrupt versions downloaded again and verified (with `--repair`).
    pub repaired: u64,
    /// Repairs that failed.
    pub failures: Vec<Failure>,
    /// Whether the run was interrupted (Ctrl-C).
    pub interrupted: bool,
    /// Wall-clock duration of the run in milliseconds.
    pub duration_ms: u64,
}

impl VerifyReport {
    /// Whether every recorded file is present and intact (after repairs), and nothing else is
    /// there.
    pub fn is_clean(&self) -> bool {
        let broken = (self.missing.len() + self.corrupt.len()) as u64;
        broken == self.repaired
            && self.failures.is_empty()
            && self.unexpected.is_empty()
            && !self.interrupted
    }
}
