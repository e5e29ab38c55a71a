//! `cargo xtask fixtures` (being written).

/// Arguments of `cargo xtask fixtures`.
#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask fixtures is not implemented yet")
}
