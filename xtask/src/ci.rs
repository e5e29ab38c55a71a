//! `cargo xtask ci`: the one command CI runs.

use std::process::Command;

use anyhow::{Context, bail};

/// Arguments of `cargo xtask ci`.
#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let steps: [&[&str]; 3] = [
        &["fmt", "--all", "--check"],
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ],
    ];
    for step in steps {
        eprintln!("==> cargo {}", step.join(" "));
        let status = Command::new(&cargo)
            .args(step)
            .current_dir(&root)
            .status()
            .with_context(|| format!("running cargo {}", step.join(" ")))?;
        if !status.success() {
            bail!("cargo {} failed ({status})", step.join(" "));
        }
    }
    // nextest does not run doctests.
    eprintln!("==> cargo test --doc --workspace");
    let status = Command::new(&cargo)
        .args(["test", "--doc", "--workspace", "--locked"])
        .current_dir(&root)
        .status()
        .context("running cargo test --doc")?;
    if !status.success() {
        bail!("cargo test --doc failed ({status})");
    }
    Ok(())
}
