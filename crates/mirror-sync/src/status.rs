//! `status`: what a mirror holds, from its state alone (no hashing, no walk).

use std::path::Path;

use mirror_state::{State, StateOptions, Status};
use serde::Serialize;

use crate::report::{FailureCounts, host_in_message};
use crate::{Error, Failure, FailureGroup, meta};

/// How many failures a status lists (all are counted).
const FAILURE_SAMPLES: usize = 50;

/// What a mirror holds and how its last sync went. Serialised, it is the `status --json` summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatusReport {
    /// The mirror directory.
    pub dest: String,
    /// The index source of the last sync.
    pub index_source: Option<String>,
    /// The download template of the last sync.
    pub dl: Option<String>,
    /// The CDN template learned from the registry's redirects, if any.
    pub cdn_template: Option<String>,
    /// The index commit the mirror is complete for (moves only after a sync without failures).
    pub synced_commit: Option<String>,
    /// Versions recorded verified.
    pub verified: u64,
    /// Their bytes.
    pub verified_bytes: u64,
    /// Versions whose last attempt failed (retried by the next sync).
    pub failed: u64,
    /// The first failures, with their class and message.
    pub failures: Vec<Failure>,
    /// Every failure counted by kind and host (read from the URL in its message), the largest
    /// group first.
    pub failures_by_kind: Vec<FailureGroup>,
    /// Versions and crates removed upstream (tombstones).
    pub removed_upstream: u64,
    /// Syncs run on this mirror.
    pub sync_count: u64,
    /// When the last sync ended, in seconds since the Unix epoch.
    pub last_sync_unix: Option<u64>,
    /// The last sync's summary, as `sync --json` printed it.
    pub last_sync: Option<serde_json::Value>,
    /// Why the next sync will compare the whole index although it could diff (such as damage
    /// found by `verify`), if it will.
    pub full_compare_needed: Option<String>,
    /// Whether the published index may lag the state (a run stopped before it published); the
    /// next sync publishes every file.
    pub publish_pending: bool,
}

/// Reads what the mirror at `dest` holds. Takes the state's lock for a moment, so it fails with
/// [`Error::is_locked`] while a sync or verify runs. Works on a mirror this process cannot
/// write (a read-only mount): the state is then read from a temporary copy.
pub fn status(dest: &Path, holder: Option<&str>) -> Result<StatusReport, Error> {
    if !dest.join(".mirror").is_dir() {
        return Err(Error::Config(format!(
            "{} is not a mirror (no .mirror folder); run a sync first",
            dest.display()
        )));
    }
    let store = mirror_store::Store::open(dest)?;
    let options = StateOptions {
        holder: holder.unwrap_or("mirror-sync status").to_owned(),
        ..StateOptions::default()
    };
    // Status only reads: a mirror this process cannot write (a read-only mount, another user's
    // files) is read from a private copy of its state.
    let state = match State::open(&store.state_dir(), options.clone()) {
        Err(e) if e.is_not_writable() => {
            tracing::info!("{e}: reading a copy of the state instead");
            State::open_read_only(&store.state_dir(), options)?
        }
        other => other?,
    };
    let mut report = StatusReport {
        dest: dest.display().to_string(),
        index_source: state.get_meta(meta::INDEX_SOURCE)?,
        dl: state.get_meta(meta::DL)?,
        cdn_template: state.cdn_template()?,
        synced_commit: state.index_commit()?,
        sync_count: state.sync_count()?,
        last_sync_unix: state
            .get_meta(meta::LAST_SYNC_UNIX)?
            .and_then(|s| s.parse().ok()),
        last_sync: state
            .get_meta(meta::LAST_SYNC_REPORT)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        full_compare_needed: state.get_meta(meta::FULL_COMPARE_NEEDED)?,
        publish_pending: state.get_meta(meta::PUBLISH_PENDING)?.is_some(),
        ..StatusReport::default()
    };
    let mut counts = FailureCounts::default();
    for item in state.iter() {
        let (name, vers, record) = match item {
            Ok(item) => item,
            Err(e) => {
                tracing::warn!("skipping an unreadable state record: {e}");
                continue;
            }
        };
        match record.status {
            Status::Verified { .. } => {
                report.verified += 1;
                report.verified_bytes += record.size;
            }
            Status::Failed { kind, message, .. } => {
                report.failed += 1;
                let host = host_in_message(&message);
                counts.add(&kind, host.as_deref());
                if report.failures.len() < FAILURE_SAMPLES {
                    report.failures.push(Failure {
                        name: name.to_string(),
                        vers: vers.to_string(),
                        kind,
                        message,
                        host,
                    });
                }
            }
        }
    }
    report.failures_by_kind = counts.into_groups();
    report.removed_upstream = state.tombstones().filter(Result::is_ok).count() as u64;
    Ok(report)
}
