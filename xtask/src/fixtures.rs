//! `cargo xtask fixtures`: build the test registries (real crates from the local cargo cache, and
//! the crates.io-scale synthetic index), or check that the ones on disk are current; with
//! `--real --serve ADDR`, serve the real one over HTTP to try `mirror-cli sync` against it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use mirror_testkit::server::{RegistryOptions, TestServer};
use mirror_testkit::{
    DEFAULT_CRATES, DEFAULT_DL, DEFAULT_SEED, RealRegistry, RealRegistryOptions, SyntheticOptions,
    git, real_registry, synthetic_index,
};

/// Arguments of `cargo xtask fixtures`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where fixtures go: `real/` and `synthetic/` below it. Relative paths are taken from the
    /// workspace root.
    #[arg(long, default_value = "target/fixtures")]
    out: PathBuf,
    /// Build (or check) the registry of real crates from the local cargo cache.
    #[arg(long)]
    real: bool,
    /// Build (or check) the synthetic crates.io-scale index.
    #[arg(long)]
    synthetic: bool,
    /// Seed of the synthetic index.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Number of crates of the synthetic index.
    #[arg(long, default_value_t = DEFAULT_CRATES)]
    crates: usize,
    /// The `dl` of both registries' `config.json`.
    #[arg(long, default_value = DEFAULT_DL)]
    dl: String,
    /// Regenerate into a temporary directory and fail if what is in `--out` differs.
    #[arg(long)]
    check: bool,
    /// With `--real`: build the real registry into `serve-ADDR/` below `--out`, its `dl` the
    /// download API of a registry server listening on ADDR (such as `127.0.0.1:8888`), and serve
    /// it until Ctrl-C, to try `mirror-cli sync` against real crates without a network.
    #[arg(
        long,
        value_name = "ADDR",
        requires = "real",
        conflicts_with_all = ["check", "synthetic", "dl"]
    )]
    serve: Option<SocketAddr>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let out = crate::common::workspace_root().join(&args.out);
    if let Some(addr) = args.serve {
        return serve_real(&out, addr);
    }
    // Neither flag means both.
    let both = !args.real && !args.synthetic;
    if (args.synthetic || both) && cfg!(debug_assertions) {
        // Generating 2 GB is ten times slower unoptimised: hand over to a release build.
        let exe = release_binary()?;
        let status = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .status()
            .with_context(|| format!("running {}", exe.display()))?;
        if !status.success() {
            std::process::exit(status.code().unwrap_or(1));
        }
        return Ok(());
    }
    let mut stale = Vec::new();
    if args.real || both {
        let options = RealRegistryOptions::with_dl(&args.dl);
        if args.check {
            stale.extend(check_real(&out.join("real"), &options)?);
        } else {
            build_real(&out.join("real"), &options)?;
        }
    }
    if args.synthetic || both {
        let mut options = SyntheticOptions::new(args.seed, args.crates);
        options.dl.clone_from(&args.dl);
        if args.check {
            stale.extend(check_synthetic(&out, &options)?);
        } else {
            build_synthetic(&out, &options)?;
        }
    }
    if !stale.is_empty() {
        for line in &stale {
            eprintln!("stale: {line}");
        }
        bail!(
            "fixtures in {} are stale ({} differences); run `cargo xtask fixtures` to rebuild them",
            out.display(),
            stale.len()
        );
    }
    if args.check {
        eprintln!("fixtures in {} are current", out.display());
    }
    Ok(())
}

/// Builds this binary in release and returns its path.
pub(crate) fn release_binary() -> anyhow::Result<PathBuf> {
    let root = crate::common::workspace_root();
    eprintln!("==> cargo build --release -p xtask");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "xtask"])
        .current_dir(&root)
        .status()
        .context("running cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release -p xtask failed ({status})");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release").join("xtask"))
}

fn build_real(out: &Path, options: &RealRegistryOptions) -> anyhow::Result<RealRegistry> {
    let started = Instant::now();
    let registry = real_registry(out, options)
        .with_context(|| format!("building the real registry in {}", out.display()))?;
    for reason in &registry.skipped {
        eprintln!("warning: {reason}");
    }
    let crates = registry
        .versions
        .iter()
        .map(|v| v.name().to_lowercase())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let bytes: u64 = registry.versions.iter().map(|v| v.size).sum();
    let plus = registry
        .versions
        .iter()
        .filter(|v| v.vers().as_str().contains('+'))
        .count();
    println!(
        "real: {} versions of {crates} crates ({plus} with build metadata, {} skipped), {:.1} MB of .crate files, commit {}, in {:.2?} -> {}",
        registry.versions.len(),
        registry.skipped.len(),
        bytes as f64 / 1e6,
        registry.commit,
        started.elapsed(),
        out.display()
    );
    Ok(registry)
}

/// `--real --serve ADDR`: starts the testkit registry server on `addr`, builds the real registry
/// into `fixtures/serve-ADDR` with its `dl` pointing at that server's download API, and serves
/// until Ctrl-C.
///
/// The server comes first so that a taken address fails before any work, and so the registry's
/// `dl` is the address actually bound (`127.0.0.1:0` picks a port). It reads its trees at request
/// time, so they may be built after it starts. Each address has a directory of its own: the `dl`
/// inside differs, and two servers must not rebuild one tree under each other's feet (the
/// address is taken, so a second server on the same one stops before building).
fn serve_real(fixtures: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(async {
        let dir_name: String = format!("serve-{addr}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let out = fixtures.join(dir_name.trim_end_matches('-'));
        let mut options = RegistryOptions::new(out.join("sparse"), Some(out.join("cdn")));
        options.addr = Some(addr);
        let server = TestServer::try_start_registry(options)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let registry = {
            let (out, options) = (out.clone(), RealRegistryOptions::with_dl(server.dl_api()));
            tokio::task::spawn_blocking(move || build_real(&out, &options)).await??
        };
        let git = std::fs::canonicalize(&registry.git)
            .with_context(|| format!("resolving {}", registry.git.display()))?;
        let some_crate = registry
            .versions
            .first()
            .map_or_else(|| "NAME".to_owned(), |v| v.name().to_string());
        println!(
            "
Serving the real registry at {url} until Ctrl-C:
  git index (file://)  {git}
  download API (dl)    {dl}/{{crate}}/{{version}}/download, redirecting to {cdn}
  sparse index         sparse+{index}

Mirror every version of it (from this checkout, `mirror-cli` is
`cargo run --release -p mirror-cli --`; the default politeness of 20 requests/s
makes this take about {secs} s, and `--rate 500` is fine against this server):

  mirror-cli sync --dest /tmp/m --index file://{git}
  mirror-cli verify --dest /tmp/m

Or only some crates, through the sparse index:

  mirror-cli sync --dest /tmp/m-sparse --index sparse+{index} --crate {some_crate}
",
            url = server.url(),
            git = git.display(),
            dl = server.dl_api(),
            cdn = server.cdn_url(),
            index = server.index_url(),
            secs = registry.versions.len().div_ceil(20),
        );
        std::io::Write::flush(&mut std::io::stdout())?;
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        let requests = server.requests();
        let failed = requests.iter().filter(|r| r.status >= 400).count();
        eprintln!(
            "stopped after {} requests ({failed} answered with an error status)",
            requests.len()
        );
        anyhow::Ok(())
    })
}

fn build_synthetic(out: &Path, options: &SyntheticOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let index = synthetic_index(out, options)
        .with_context(|| format!("building the synthetic index in {}", out.display()))?;
    println!(
        "synthetic: {} crates, {} lines ({} B mean), {:.2} GB, commit {}, in {:.1?} -> {}",
        index.crates,
        index.lines,
        index.bytes / index.lines.max(1),
        index.bytes as f64 / 1e9,
        index.commit.as_deref().unwrap_or("-"),
        started.elapsed(),
        index.root.display()
    );
    Ok(())
}

/// A scratch directory next to `out`, so that it is on the same file system and removed on drop.
fn scratch(out: &Path) -> anyhow::Result<tempfile::TempDir> {
    let parent = out.parent().unwrap_or(out);
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(".fixtures-check")
        .tempdir_in(parent)
        .with_context(|| format!("creating a scratch directory in {}", parent.display()))
}

/// Rebuilds the real registry and compares it with `out`: every file of `sparse/`, `cdn/` and
/// `manifest.json` byte for byte, and the git commit id.
fn check_real(out: &Path, options: &RealRegistryOptions) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    if !out.exists() {
        return Ok(vec![format!("real: {} does not exist", out.display())]);
    }
    let tmp = scratch(out)?;
    let fresh = real_registry(tmp.path(), options).context("rebuilding the real registry")?;
    let mut stale = Vec::new();
    for part in ["sparse", "cdn", "manifest.json"] {
        let have = files_under(&out.join(part))?;
        let want = files_under(&tmp.path().join(part))?;
        for (rel, sum) in &want {
            match have.get(rel) {
                None => stale.push(format!("real: {part}{rel} is missing")),
                Some(s) if s != sum => stale.push(format!("real: {part}{rel} differs")),
                Some(_) => {}
            }
        }
        for rel in have.keys().filter(|r| !want.contains_key(*r)) {
            stale.push(format!("real: {part}{rel} should not be there"));
        }
    }
    let have_commit = git::head_commit(&out.join("index.git")).ok().flatten();
    if have_commit.as_deref() != Some(fresh.commit.as_str()) {
        stale.push(format!(
            "real: index.git is at {}, a fresh build gives {}",
            have_commit.as_deref().unwrap_or("nothing"),
            fresh.commit
        ));
    }
    eprintln!(
        "real: checked {} versions in {:.2?}",
        fresh.versions.len(),
        started.elapsed()
    );
    Ok(stale)
}

/// Every file below `root` (or `root` itself, if it is a file) as `/rel/path` with its content.
/// The real registry is small (tens of MB), so the content itself is compared.
fn files_under(root: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return Ok(out);
    }
    if root.is_file() {
        out.insert(String::new(), std::fs::read(root)?);
        return Ok(out);
    }
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let entry = entry?;
            let child = format!("{rel}/{}", entry.file_name().to_string_lossy());
            if entry.file_type()?.is_dir() {
                stack.push((entry.path(), child));
            } else {
                let data = std::fs::read(entry.path())
                    .with_context(|| format!("reading {}", entry.path().display()))?;
                out.insert(child, data);
            }
        }
    }
    Ok(out)
}

/// Regenerates the synthetic index into a scratch directory and compares the digest manifests
/// (one SHA-256 per file, written at generation time) and the git commit ids. The fixture's own
/// files are checked against its manifest by size only: hashing 2 GB again would double the cost.
fn check_synthetic(out: &Path, options: &SyntheticOptions) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let root = out.join("synthetic");
    let summary_path = root.join("summary.json");
    let Ok(summary) = std::fs::read(&summary_path) else {
        return Ok(vec![format!(
            "synthetic: {} does not exist",
            summary_path.display()
        )]);
    };
    let summary: serde_json::Value = serde_json::from_slice(&summary)
        .with_context(|| format!("parsing {}", summary_path.display()))?;
    let mut stale = Vec::new();

    // The fixture against its own manifest and summary.
    let manifest = std::fs::read_to_string(root.join("manifest.tsv"))
        .with_context(|| format!("reading {}", root.join("manifest.tsv").display()))?;
    for line in manifest.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(_), Some(size), Some(path)) = (fields.next(), fields.next(), fields.next())
        else {
            stale.push(format!("synthetic: manifest line {line:?} is malformed"));
            continue;
        };
        let actual = std::fs::metadata(root.join("dir").join(path)).map(|m| m.len());
        if actual.ok().map(|s| s.to_string()).as_deref() != Some(size) {
            stale.push(format!("synthetic: dir/{path} does not match the manifest"));
            if stale.len() > 20 {
                break;
            }
        }
    }
    let head = git::head_commit(&root.join("index.git")).ok().flatten();
    if head.as_deref() != summary["commit"].as_str() {
        stale.push(format!(
            "synthetic: index.git is at {}, summary.json says {}",
            head.as_deref().unwrap_or("nothing"),
            summary["commit"]
        ));
    }

    // The fixture against a fresh generation.
    let tmp = scratch(out)?;
    let fresh = synthetic_index(tmp.path(), options).context("regenerating the synthetic index")?;
    if summary["manifest_sha256"].as_str() != Some(fresh.digest.as_str()) {
        let want = std::fs::read_to_string(&fresh.manifest)?;
        let want: BTreeMap<&str, &str> = want.lines().filter_map(manifest_entry).collect();
        let have: BTreeMap<&str, &str> = manifest.lines().filter_map(manifest_entry).collect();
        let mut differences = want
            .iter()
            .filter(|(path, sum)| have.get(*path) != Some(*sum))
            .map(|(path, _)| format!("synthetic: dir/{path} differs or is missing"))
            .chain(
                have.keys()
                    .filter(|p| !want.contains_key(*p))
                    .map(|p| format!("synthetic: dir/{p} should not be there")),
            );
        stale.extend(differences.by_ref().take(20));
        let more = differences.count();
        if more > 0 {
            stale.push(format!("synthetic: and {more} more files"));
        }
    }
    if summary["commit"].as_str() != fresh.commit.as_deref() {
        stale.push(format!(
            "synthetic: summary.json says commit {}, a fresh build gives {}",
            summary["commit"],
            fresh.commit.as_deref().unwrap_or("nothing")
        ));
    }
    eprintln!(
        "synthetic: checked {} crates, {} lines in {:.1?}",
        fresh.crates,
        fresh.lines,
        started.elapsed()
    );
    Ok(stale)
}

/// `(path, sha256)` of a `manifest.tsv` line.
fn manifest_entry(line: &str) -> Option<(&str, &str)> {
    let mut fields = line.splitn(3, '\t');
    let sum = fields.next()?;
    fields.next()?;
    Some((fields.next()?, sum))
}
