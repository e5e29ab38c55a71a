//! Project automation: `cargo xtask ci`, `fixtures`, `bench`, `fuzz`, `soak`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "xtask is a command-line tool"
)]

// Only tests use it: it checks the layering against `cargo metadata`.
#[cfg(test)]
mod architecture;
mod bench;
mod ci;
mod common;
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
