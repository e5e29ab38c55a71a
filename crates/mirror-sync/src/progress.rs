//! `Progress` (how a run tells its caller what it is doing) and `Interrupt` (how the caller stops
//! it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mirror_fetch::ServerPause;
use mirror_index::{CrateName, Version};

/// What a run is doing now. Sent to [`Progress::stage`] when a stage starts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Cloning or fetching a git index (a first clone of a large index takes minutes).
    UpdatingIndex {
        /// The index source.
        source: String,
    },
    /// Reading and parsing the index and comparing it with the state.
    Planning,
    /// Hashing files that are in place but not recorded (left by an interrupted run).
    Adopting {
        /// Files to hash.
        files: u64,
    },
    /// Downloading.
    Downloading {
        /// Versions to download.
        versions: u64,
        /// Sum of the sizes known in advance (the index carries no sizes; only earlier copies of
        /// the same bytes give one), in bytes.
        known_bytes: u64,
    },
    /// Re-hashing recorded files.
    Verifying {
        /// Files to hash.
        files: u64,
        /// Their recorded sizes, in bytes.
        bytes: u64,
    },
    /// Walking the tree for files the state does not know.
    Walking,
    /// Writing the published index (`index/`).
    Publishing,
    /// Saving the state.
    Finishing,
}

/// Receives progress from a run. Every method has an empty default, so implement only what you
/// show. Called from several threads at once; keep the methods quick.
pub trait Progress: Sync {
    /// A stage started.
    fn stage(&self, _stage: &Stage) {}
    /// `bytes` more bytes were downloaded or hashed.
    fn bytes(&self, _bytes: u64) {}
    /// One version is done (downloaded and verified, or hashed and verified).
    fn done(&self, _name: &CrateName, _vers: &Version) {}
    /// One version failed; the message says why.
    fn failed(&self, _name: &CrateName, _vers: &Version, _kind: &str, _message: &str) {}
    /// A server asked for a pause (`Retry-After`) and downloads wait: called about ten times a
    /// second while it lasts, then once with `None` when it is over.
    fn server_pause(&self, _pause: Option<&ServerPause>) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A flag that stops a run cleanly: no new work starts, downloads in flight are dropped (their
/// temp files deleted), the state is flushed, and the run returns a report marked interrupted.
/// Running again resumes.
///
/// Clones share the flag, so hand one to a signal handler.
#[derive(Clone, Debug)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    flag: AtomicBool,
    tx: tokio::sync::watch::Sender<bool>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt::new()
    }
}

impl Interrupt {
    /// A flag that is not set.
    pub fn new() -> Self {
        Interrupt {
            inner: Arc::new(Inner {
                flag: AtomicBool::new(false),
                tx: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// Sets the flag; every run holding a clone stops soon.
    pub fn trigger(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        self.inner.tx.send_replace(true);
    }

    /// Whether the flag is set.
    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// The flag itself, for APIs that poll an `AtomicBool` (a git fetch).
    pub fn as_atomic(&self) -> &AtomicBool {
        &self.inner.flag
    }

    /// Waits until the flag is set.
    pub async fn triggered(&self) {
        let mut rx = self.inner.tx.subscribe();
        // An error means the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|set| *set).await;
    }
}
