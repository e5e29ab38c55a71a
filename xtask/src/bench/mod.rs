//! `cargo xtask bench`: benchmarks that report ratios against a baseline measured in the same run,
//! and rewrite their own section of docs/benchmarks.md (between `<!-- bench:NAME -->` and
//! `<!-- /bench:NAME -->`), leaving the other sections as they are.
//!
//! `bench index` (in `index`) reads and parses the synthetic crates.io-scale index from its
//! directory and from git, against just reading the same bytes.
//!
//! `bench fetch` (in `fetch`) downloads synthetic `.crate` files over loopback with
//! `mirror_fetch::Fetcher` and with `curl --parallel`, from the same server.
//!
//! `bench verify` (in `verify`) runs `mirror-cli verify` over a mirror of synthetic `.crate`
//! files, against `sha256sum` over the same files and the `openssl speed` SHA-256 limit.
//!
//! `bench sync` (in `sync`) times `mirror_sync::sync` over the synthetic index: a no-op full
//! compare of every version, all verified, and an incremental sync of 1,000 changed crates.
//!
//! The benchmarks import only `common` (and the crate's `common`, `fixtures`), never each other,
//! so the modules form a tree.

mod common;
mod fetch;
mod index;
mod sync;
mod verify;

/// Arguments of `cargo xtask bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Read and parse the synthetic index from its directory and from git, against reading the
    /// same bytes without parsing.
    Index(index::IndexArgs),
    /// Download synthetic `.crate` files over loopback with `mirror_fetch::Fetcher`, against
    /// `curl --parallel` on the same files from the same server.
    Fetch(fetch::FetchArgs),
    /// Run `mirror-cli verify` over a synthetic mirror, against `sha256sum` over the same files
    /// and the SHA-256 speed of `openssl speed`.
    Verify(verify::VerifyArgs),
    /// Time `mirror_sync::sync` over the synthetic index: a no-op full compare of every version
    /// (all verified) and an incremental sync of a commit changing 1,000 crates.
    Sync(sync::SyncArgs),
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Index(args) => index::run(args),
        What::Fetch(args) => fetch::run(args),
        What::Verify(args) => verify::run(args),
        What::Sync(args) => sync::run(args),
    }
}
