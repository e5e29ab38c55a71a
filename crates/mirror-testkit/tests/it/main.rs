//! Integration tests of the testkit: fixture builders, git helpers, the registry server.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests"
)]

mod git;
mod real;
mod real_lines;
mod server;
mod synthetic;
