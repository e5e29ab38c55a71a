//! Test-only crash points: the engine's irreversible steps can be aimed at by a SIGKILL.
//!
//! When the environment variable `MIRROR_SYNC_TEST_CRASH_AT` names a point (see [`point`]), the
//! process kills itself with SIGKILL the first time it reaches that point: no destructor runs,
//! nothing is flushed, exactly as when an operator or the OOM killer strikes at that moment. The
//! tests use it to check that what a run made durable before an irreversible step is enough for
//! the next run to tell the truth; nothing else should set it.
//!
//! The points, each reached right after the first step of its kind in a run:
//! - `verify-retracted`: `verify` took the lines of broken versions out of the published index;
//! - `verify-quarantined`: `verify --repair` moved a corrupt file to quarantine;
//! - `sync-quarantined`: a sync moved a file to quarantine (checksum changed upstream, or a
//!   recorded file found missing or of the wrong size by a full compare);
//! - `prune-quarantined`: `sync --prune` moved a pruned file to quarantine.

use std::sync::OnceLock;

/// The environment variable naming the point to crash at.
pub const CRASH_AT_ENV: &str = "MIRROR_SYNC_TEST_CRASH_AT";

/// Kills the process with SIGKILL if `MIRROR_SYNC_TEST_CRASH_AT` names `name`; otherwise (the
/// normal case) does nothing but compare two strings.
pub(crate) fn point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var(CRASH_AT_ENV).ok());
    if at.as_deref() != Some(name) {
        return;
    }
    tracing::error!("{CRASH_AT_ENV}={name}: killing this process now (a test crash point)");
    let pid = std::process::id().to_string();
    // A real SIGKILL, as a test of crash consistency wants: no unwinding, no flush, no core dump.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status();
    // `kill` missing or refused: abort, which also ends the process without cleaning up.
    std::process::abort();
}
