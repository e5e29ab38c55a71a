//! `cargo xtask bench` (being written).

/// Arguments of `cargo xtask bench`.
#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask bench is not implemented yet")
}
