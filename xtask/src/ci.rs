//! `cargo xtask ci`: the one command CI runs.

use std::process::Command;

use anyhow::{Context, bail};

/// Arguments of `cargo xtask ci`.
#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    ensure_nginx()?;
    let root = crate::common::workspace_root();
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

/// Where the tests look for nginx: the `PATH`, then where Debian puts it (`/usr/sbin` is not on
/// every user's `PATH`).
const NGINX: &[&str] = &["nginx", "/usr/sbin/nginx"];

/// Installs nginx with apt-get when it is missing: mirror-cli's tests serve a published mirror
/// with it as plain static files, and fail (they never skip) without it.
fn ensure_nginx() -> anyhow::Result<()> {
    let works = || {
        NGINX.iter().any(|nginx| {
            Command::new(nginx)
                .arg("-v")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    };
    if works() {
        return Ok(());
    }
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    // apt-get needs root; elsewhere go through sudo, which fails clearly if it cannot.
    let apt = |args: &[&str]| -> anyhow::Result<bool> {
        // `env` carries the variable through sudo, which would drop it.
        let mut command = if root_user {
            Command::new("env")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "env"]);
            sudo
        };
        let status = command
            .args(["DEBIAN_FRONTEND=noninteractive", "apt-get"])
            .args(args)
            .status()
            .context("running apt-get (nginx is needed by the tests)")?;
        Ok(status.success())
    };
    eprintln!("==> apt-get install nginx (the tests serve a published mirror with it)");
    if !apt(&["update", "-qq"])? {
        bail!("apt-get update failed; install nginx by hand (apt-get install -y nginx-light)");
    }
    // nginx-light is the small build on Debian 12; later releases only have nginx.
    let installed = apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "nginx-light",
    ])? || apt(&["install", "-y", "-qq", "--no-install-recommends", "nginx"])?;
    if !installed || !works() {
        bail!(
            "could not install nginx with apt-get; install it by hand (apt-get install -y nginx-light)"
        );
    }
    Ok(())
}
