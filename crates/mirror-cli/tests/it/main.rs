//! End-to-end tests of the `mirror-cli` binary.
#![allow(clippy::unwrap_used, reason = "tests")]

mod args;
mod crash;
mod damage;
mod deploy;
mod history;
mod honesty;
mod hostile;
mod list;
mod read_only;
mod refusal;
mod serve;
mod sync;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `mirror-cli` with `args`, its git cache in `cache`, and no user config leaking in.
pub(crate) fn run(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mirror-cli"))
        .args(args)
        .env("MIRROR_CLI_CACHE_DIR", cache)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", cache)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Every file under `root`, recursively (none when it does not exist).
pub(crate) fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}
