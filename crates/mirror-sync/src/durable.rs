//! The rule that keeps the record honest through a crash: every state change that makes a later
//! run distrust the record (failure marks, the "compare everything" mark, tombstones, records
//! forgotten by a prune, the index source) is durable before the first irreversible step it
//! justifies (lines retracted from the published index, a file moved to quarantine).
//!
//! The state engine writes to disk in the background about every half second, so without an
//! explicit flush a run killed right after such a step would leave a state that still claims
//! what the step took away (a file "verified" that is in quarantine, a line retracted whose
//! record a later full compare publishes again). [`Irreversible`] is the only way the engine
//! takes these steps, and each of its methods flushes the state first. A flush with nothing
//! new to write returns at once, so callers record the marks of a whole chunk, then take the
//! chunk's steps: one flush per chunk, not per file.

use std::io;
use std::path::PathBuf;

use mirror_index::{CrateName, Version};
use mirror_state::State;
use mirror_store::Store;

use crate::Error;
use crate::publish::{Retracted, retract_counted};

/// The irreversible steps of a run on `store`, each taken after every write to `state` so far
/// is durable.
pub(crate) struct Irreversible<'a> {
    store: &'a Store,
    state: &'a State,
}

impl<'a> Irreversible<'a> {
    pub(crate) fn new(store: &'a Store, state: &'a State) -> Self {
        Irreversible { store, state }
    }

    /// Makes the state durable, then takes `versions` out of the published index.
    pub(crate) fn retract(&self, versions: &[(CrateName, Version)]) -> Result<Retracted, Error> {
        if versions.is_empty() {
            return Ok(Retracted::default());
        }
        self.state.flush()?;
        retract_counted(self.store, versions)
    }

    /// Makes the state durable, then moves the file of `name vers` to quarantine with `reason`.
    /// Returns where it went, or `None` when there was no file.
    pub(crate) fn quarantine(
        &self,
        name: &CrateName,
        vers: &Version,
        reason: &str,
    ) -> Result<Option<PathBuf>, Error> {
        self.state.flush()?;
        match self.store.quarantine(name, vers, reason) {
            Ok(to) => Ok(Some(to)),
            Err(mirror_store::Error::Io { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}
