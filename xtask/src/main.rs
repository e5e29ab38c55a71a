//! Project automation: `cargo xtask ci`, `fixtures`, `bench`, `fuzz`, `soak`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "xtask is a command-line tool"
)]

mod bench;
mod bench_fetch;
mod bench_sync;
mod bench_verify;
mod ci;
mod fixtures;
mod fuzz;
mod soak;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "mirror-cli project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything CI checks: formatting, clippy, the whole test suite.
    Ci(ci::Args),
    /// Build test registries (real crates, crates.io-scale synthetic), or check they are current.
    Fixtures(fixtures::Args),
    /// Run benchmarks and rewrite docs/benchmarks.md.
    Bench(bench::Args),
    /// Run the cargo-fuzz targets in fuzz/ for a time budget each (not part of CI).
    Fuzz(fuzz::Args),
    /// Long reliability runs: SIGKILLs, faults, an outage, hostile input, a full disk; rewrites
    /// docs/reliability.md (not part of CI).
    Soak(soak::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ci(args) => ci::run(args),
        Command::Fixtures(args) => fixtures::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Soak(args) => soak::run(args),
    }
}

/// The workspace root (xtask lives one level below it).
///
/// `cargo run` (so `cargo xtask`) says where xtask's manifest is at run time, and the release
/// children inherit it; the path compiled in is only the fallback. Checkouts of the workspace
/// that share one target directory share the built binary too, and the compiled-in path is then
/// whichever checkout built it last.
fn workspace_root() -> std::path::PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    );
    manifest_dir
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}
