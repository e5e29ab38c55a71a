//! Integration tests for mirror-sync: one binary, one module per feature. Each test builds its own
//! upstream index and mirror in a temp dir.
#![allow(clippy::unwrap_used, reason = "tests")]

mod engine;
mod engine_status;
mod engine_sync;
mod engine_verify;
mod publish;
mod sparse_polite;
