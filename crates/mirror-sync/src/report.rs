//! `SyncReport` and `VerifyReport`: what a run did, shaped as the `--json` summaries of the
//! command-line contract (field names are part of it; scripts depend on them).

use std::collections::HashMap;

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
    /// The host the last request went to (with its port when the URL gives one), when the
    /// failure came from a server; `None` for the mirror's own failures (`storage`).
    pub host: Option<String>,
}

/// Failures of one kind from one host, counted: what a run with a thousand failures says first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailureGroup {
    /// The class, as in [`Failure::kind`].
    pub kind: String,
    /// The host, as in [`Failure::host`].
    pub host: Option<String>,
    /// How many versions failed so.
    pub count: u64,
}

/// Failures counted by kind and host as they are seen (a status of millions of failures keeps
/// one counter per group, not a list).
#[derive(Debug, Default)]
pub(crate) struct FailureCounts(HashMap<(String, Option<String>), u64>);

impl FailureCounts {
    pub(crate) fn add(&mut self, kind: &str, host: Option<&str>) {
        *self
            .0
            .entry((kind.to_owned(), host.map(str::to_owned)))
            .or_default() += 1;
    }

    /// The groups, the largest first (then by kind and host, so the order is stable).
    pub(crate) fn into_groups(self) -> Vec<FailureGroup> {
        let mut groups: Vec<FailureGroup> = self
            .0
            .into_iter()
            .map(|((kind, host), count)| FailureGroup { kind, host, count })
            .collect();
        groups.sort_by(|a, b| (b.count, &a.kind, &a.host).cmp(&(a.count, &b.kind, &b.host)));
        groups
    }
}

/// Groups a list of failures by kind and host, the largest group first.
pub(crate) fn group(failures: &[Failure]) -> Vec<FailureGroup> {
    let mut counts = FailureCounts::default();
    for failure in failures {
        counts.add(&failure.kind, failure.host.as_deref());
    }
    counts.into_groups()
}

/// The host of a URL (with its port when one is given), without parsing the rest.
pub(crate) fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#', ',', ')']).next()?;
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    (!host.is_empty()).then(|| host.to_owned())
}

/// The host of the URL a download failure's message ends with (`… (URL)` or
/// `… (URL, after N attempts)`, as [`mirror_fetch::FetchError`] shows it): the state keeps the
/// message of a failure, not its host.
pub(crate) fn host_in_message(message: &str) -> Option<String> {
    let start = message.rfind(" (http")?;
    url_host(&message[start + 2..])
}

/// The host a run stopped downloading from: too many downloads from it failed in a row (see
/// `docs/politeness.md`). The versions not tried yet stay as they were, for the next run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostStopped {
    /// The host, with its port when the URL gives one.
    pub host: String,
    /// The class of the failure that made the run stop, as in [`Failure::kind`].
    pub kind: String,
    /// The HTTP status of that failure, when it was one (`403`, `429`, `503`, …).
    pub status: Option<u16>,
    /// Downloads from the host that failed in a row.
    pub failures: u64,
    /// The message of that failure.
    pub last_error: String,
}

impl HostStopped {
    pub(crate) fn new(stop: &mirror_fetch::HostStop) -> Self {
        let status = match &stop.kind {
            mirror_fetch::FetchErrorKind::Http(code) => Some(*code),
            mirror_fetch::FetchErrorKind::Forbidden => {
                // 401 or 403: the message says which.
                [401, 403]
                    .into_iter()
                    .find(|code| stop.last_error.contains(&format!("status {code}")))
            }
            _ => None,
        };
        HostStopped {
            host: stop.host.clone(),
            kind: stop.kind.as_str().to_owned(),
            status,
            failures: u64::from(stop.failures),
            last_error: stop.last_error.clone(),
        }
    }
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
    /// Selected versions already present: recorded verified before this run with their file
    /// in place at the recorded size (checked with a `stat`, not hashed: `verify` hashes), or
    /// found in place without a record and verified by hashing (see `adopted`).
    pub already_present: u64,
    /// Versions recorded verified whose file was not in place: recorded failed (kind
    /// `missing`) and downloaded again.
    pub recorded_missing: u64,
    /// Versions recorded verified whose file had another size than recorded (or was not a
    /// regular file): recorded failed (kind `corrupt`), quarantined and downloaded again.
    pub recorded_wrong_size: u64,
    /// The first of the versions behind `recorded_missing` and `recorded_wrong_size`.
    pub drift: Vec<VersionRef>,
    /// Of those, yanked versions `--skip-yanked` leaves out: their records are forgotten (the
    /// mirror no longer claims them) and they are not downloaded again.
    pub drift_forgotten: u64,
    /// Versions downloaded and verified in this run.
    pub downloaded: u64,
    /// Bytes of the versions downloaded in this run.
    pub downloaded_bytes: u64,
    /// Versions that failed in this run.
    pub failed: u64,
    /// The failures, one per version.
    pub failures: Vec<Failure>,
    /// The failures counted by kind and host, the largest group first.
    pub failures_by_kind: Vec<FailureGroup>,
    /// Set when the run stopped downloading because one host failed too many downloads in a
    /// row (it refuses the mirror, or is down): the versions not tried are in `not_attempted`.
    pub host_stopped: Option<HostStopped>,
    /// Versions to download that were never tried (the run stopped early); the next run tries
    /// them.
    pub not_attempted: u64,
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
    /// Why every index file was read (`mode` is `full`): `--full`, no synced tree to diff
    /// against, the index source changed, the periodic compare was due, … (`; `-separated).
    pub full_reason: Option<String>,
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
            && self.host_stopped.is_none()
            && self.not_attempted == 0
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
    /// The failed repairs counted by kind and host, the largest group first.
    pub failures_by_kind: Vec<FailureGroup>,
    /// Set when the repair stopped downloading because one host failed too many downloads in
    /// a row; the versions not tried are in `not_attempted`.
    pub host_stopped: Option<HostStopped>,
    /// Versions to repair that were never tried (the repair stopped early); they stay recorded
    /// as failures, and the next sync downloads them.
    pub not_attempted: u64,
    /// Whether the run was interrupted (Ctrl-C).
    pub interrupted: bool,
    /// Whether the mirror was read-only to this run: every file was checked and what was found
    /// is reported, but nothing could be recorded (the next sync does not know of it) and
    /// nothing was taken out of the published index.
    pub read_only: bool,
    /// Wall-clock duration of the run in milliseconds.
    pub duration_ms: u64,
}

impl VerifyReport {
    /// Whether nothing was found wrong: every recorded file present and intact, nothing else
    /// there. A run that found damage is not clean even when `repair` mended all of it (the
    /// damage happened, and whoever runs it should hear of it: `mirror-cli verify` exits 1); see
    /// [`VerifyReport::is_mended`].
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.corrupt.is_empty()
            && self.failures.is_empty()
            && self.host_stopped.is_none()
            && self.unexpected.is_empty()
            && !self.interrupted
    }

    /// Whether every missing and corrupt version found was downloaded again and verified (true
    /// when there were none), and the run was not interrupted.
    pub fn is_mended(&self) -> bool {
        let broken = (self.missing.len() + self.corrupt.len()) as u64;
        broken == self.repaired && self.failures.is_empty() && !self.interrupted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_from_urls_and_fetch_messages() {
        for (url, host) in [
            ("http://127.0.0.1:8080/crates/a", Some("127.0.0.1:8080")),
            (
                "https://user@registry.example/x?y",
                Some("registry.example"),
            ),
            ("https://[::1]:99/x", Some("[::1]:99")),
            ("no url", None),
            ("http:///x", None),
        ] {
            assert_eq!(url_host(url).as_deref(), host, "{url}");
        }
        for (message, host) in [
            (
                "unexpected status 403 Forbidden (http://127.0.0.1:80/crates/a/a-1.crate)",
                Some("127.0.0.1:80"),
            ),
            (
                "unexpected status 500 (https://cdn.example/a, after 5 attempts)",
                Some("cdn.example"),
            ),
            (
                "a redirect to ftp://x/y, which is not http or https (http://api.example/dl)",
                Some("api.example"),
            ),
            ("writing /srv/mirror/x: no space left on device", None),
        ] {
            assert_eq!(host_in_message(message).as_deref(), host, "{message}");
        }
    }

    #[test]
    fn failures_are_grouped_by_kind_and_host_largest_first() {
        let mut counts = FailureCounts::default();
        for (kind, host) in [
            ("http", Some("b")),
            ("forbidden", Some("a")),
            ("storage", None),
            ("forbidden", Some("a")),
            ("http", Some("a")),
            ("http", Some("b")),
            ("forbidden", Some("a")),
        ] {
            counts.add(kind, host);
        }
        let groups = counts.into_groups();
        let shown: Vec<(&str, Option<&str>, u64)> = groups
            .iter()
            .map(|g| (g.kind.as_str(), g.host.as_deref(), g.count))
            .collect();
        assert_eq!(
            shown,
            [
                ("forbidden", Some("a"), 3),
                ("http", Some("b"), 2),
                ("http", Some("a"), 1),
                ("storage", None, 1),
            ]
        );
    }
}
