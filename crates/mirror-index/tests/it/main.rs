//! Integration tests of mirror-index.
#![allow(clippy::unwrap_used, reason = "tests")]

mod dir;
mod git;
mod lines;
mod props;
mod types;
