//! The mirror engine: plan a registry index against what the mirror holds, download what is
//! missing (politely, verified), put it in place atomically, record it, and prove it later.
//!
//! Three entry points, each blocking and each taking the mirror directory:
//! - [`sync`]: read the index ([`Source`]), compare every selected version with the state
//!   ([`mirror_state`]) and the store ([`mirror_store`]), hash files found in place without a
//!   record, download the rest through [`mirror_fetch`], and record each version verified only
//!   once its file is in place;
//! - [`verify`]: re-hash every recorded file on all cores, report missing, corrupt and
//!   unexpected files, and with `repair` download the broken ones again;
//! - [`status`]: what the state says, without touching the files.
//!
//! Progress goes to a [`Progress`] the caller implements (the library never prints), and an
//! [`Interrupt`] stops a run cleanly: the next run resumes.
//!
//! ```no_run
//! use mirror_sync::{Interrupt, NoProgress, SyncOptions, sync};
//!
//! let mut options = SyncOptions::default();
//! options.index = Some("file:///srv/registry/index.git".into());
//! options.fetch.contact = Some("mirror-admin@example.org".into());
//! let report = sync("mirror".as_ref(), &options, &NoProgress, &Interrupt::new())?;
//! println!("{} downloaded, {} failed", report.downloaded, report.failed);
//! # Ok::<(), mirror_sync::Error>(())
//! ```
//!
//! # Crash safety
//!
//! A version is recorded verified only after its bytes matched the index checksum and its file
//! was renamed into place and synced. A crash between the two leaves a file without a record,
//! which the next sync hashes and adopts instead of downloading. A record whose file went missing
//! is found by [`verify`], and by a full compare, which checks that the file of every version
//! recorded verified is in place with its recorded size. Temp files live in `.mirror/tmp`, never
//! under `crates/`, and are deleted at the start of every run (after the state's lock is taken,
//! so never another run's).
//!
//! Every state change that makes a later run distrust the record (failure marks, the "compare
//! everything" mark, tombstones, records forgotten by a prune, the index source) is flushed to
//! disk before the first irreversible step it justifies (lines retracted from the published
//! index, a file moved to quarantine), so a run killed right after that step leaves a state that
//! does not claim what the step took away. [`CRASH_AT_ENV`] lets tests kill a run there.

mod crash;
mod download;
mod durable;
mod error;
mod plan;
mod progress;
mod publish;
mod recover;
mod report;
mod source;
mod status;
mod sync;
mod verify;

pub use crash::CRASH_AT_ENV;
pub use download::FetchSettings;
pub use error::Error;
pub use mirror_fetch::ServerPause;
pub use progress::{Interrupt, NoProgress, Progress, Stage};
pub use publish::{DEFAULT_BASE_URL, PublishOptions, PublishReport, publish, republish, retract};
pub use report::{
    ChecksumChange, Failure, FailureGroup, HostStopped, SyncReport, VerifyReport, VersionRef,
};
pub use source::Source;
pub use status::{StatusReport, status};
pub use sync::{SyncOptions, sync};
pub use verify::{VerifyOptions, verify};

/// Keys of the mirror's own meta strings in the state.
mod meta {
    /// The index source of the last sync (`--index`), used when none is given.
    pub(crate) const INDEX_SOURCE: &str = "index_source";
    /// The download template of the last sync, used by `verify --repair`.
    pub(crate) const DL: &str = "dl";
    /// The `dl` the stored CDN template was learned for: a different `dl` must learn anew.
    pub(crate) const CDN_FOR_DL: &str = "cdn_template_for_dl";
    /// When the last sync ended (seconds since the Unix epoch).
    pub(crate) const LAST_SYNC_UNIX: &str = "last_sync_unix";
    /// The sync count at the last full compare.
    pub(crate) const LAST_FULL_SYNC_COUNT: &str = "last_full_sync_count";
    /// The last sync's JSON summary.
    pub(crate) const LAST_SYNC_REPORT: &str = "last_sync_report";
    /// Set (to the reason) when the next sync must compare the whole index: `verify` found
    /// versions broken that an incremental sync, reading only the changed index files, would
    /// never look at again. Cleared by a full compare with no failure.
    pub(crate) const FULL_COMPARE_NEEDED: &str = "full_compare_needed";
    /// Set while the published index may lag the state (a run recorded versions verified or
    /// retracted lines and has not published yet); the next publish then rewrites every file,
    /// since the run that set it may have been killed before it could say which.
    pub(crate) const PUBLISH_PENDING: &str = "publish_pending";
    /// Set when the sync marker was last moved by a run with `--skip-yanked`: a later run
    /// without it must compare everything, or it would never fetch the yanked versions skipped.
    pub(crate) const MARKER_SKIPPED_YANKED: &str = "marker_skipped_yanked";
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
