//! What the benchmarks share: the synthetic `.crate` files (`bench verify`'s mirror and `bench
//! fetch`'s CDN tree), the release build of `mirror-cli`, the sections of docs/benchmarks.md, and
//! measuring this machine and this process (memory, CPU time, `perf`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use mirror_index::{Checksum, CrateName, Version};
use sha2::{Digest as _, Sha256};

use crate::common::{Rng, target_dir};

/// One synthetic `.crate` file (of `bench verify`'s mirror and `bench fetch`'s CDN tree).
pub(super) struct CrateFile {
    pub(super) name: CrateName,
    pub(super) vers: Version,
    pub(super) size: u64,
    pub(super) cksum: Checksum,
}

/// Builds `mirror-cli` in release and returns the path of a private copy of it
/// (`target/bench/bin/`): worktrees that share one target directory would otherwise swap the
/// binary under a running benchmark when they build.
pub(super) fn release_cli(root: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("==> cargo build --release -p mirror-cli");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "mirror-cli"])
        .current_dir(root)
        .status()
        .context("running cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release -p mirror-cli failed ({status})");
    }
    let target = target_dir(root);
    let built = target.join("release").join("mirror-cli");
    let bin = target.join("bench").join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    // Copies of benchmarks that are no longer running are garbage.
    for entry in std::fs::read_dir(&bin)?.flatten() {
        let name = entry.file_name();
        if let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("mirror-cli-"))
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let copy = bin.join(format!("mirror-cli-{}", std::process::id()));
    std::fs::copy(&built, &copy)
        .with_context(|| format!("copying {} to {}", built.display(), copy.display()))?;
    Ok(copy)
}

// ---------------------------------------------------------------------------------------------
// The synthetic files.

/// The size of file `i` of `count`, `large` of which are 2–8 MB, spread evenly.
fn size_of(i: usize, count: usize, large: usize, rng: &mut Rng) -> u64 {
    if let Some(stride) = count.checked_div(large)
        && i % stride == stride / 2
        && i / stride < large
    {
        return rng.log_uniform(2e6, 8e6);
    }
    let class = rng.unit();
    if class < 0.75 {
        rng.log_uniform(2e3, 40e3)
    } else if class < 0.97 {
        rng.log_uniform(40e3, 400e3)
    } else {
        rng.log_uniform(400e3, 2e6)
    }
}

/// The names, versions and sizes of the mirror's files, from the seed: crates of 1–29 versions
/// with random lowercase names (so they spread over the `{ab}/{cd}` directories as real names
/// do), numbered to keep them unique.
pub(super) fn plan(
    count: usize,
    large: usize,
    seed: u64,
) -> anyhow::Result<Vec<(CrateName, Version, u64)>> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(count);
    let mut krate = 0usize;
    while out.len() < count {
        let len = 3 + (rng.next_u64() % 8) as usize;
        let letters: String = (0..len)
            .map(|_| char::from(b'a' + (rng.next_u64() % 26) as u8))
            .collect();
        let name = CrateName::new(&format!("{letters}-{krate}"))?;
        krate += 1;
        let versions = rng.log_uniform(1.0, 30.0).max(1);
        for v in 0..versions {
            if out.len() == count {
                break;
            }
            let vers = Version::new(&format!("{}.{}.{}", v / 100, v / 10 % 10, v % 10))?;
            let size = size_of(out.len(), count, large, &mut rng);
            out.push((name.clone(), vers, size));
        }
    }
    Ok(out)
}

/// The random bytes of file `i`, like the gzip stream of a real `.crate`.
fn content(seed: u64, i: usize, size: u64, body: &mut Vec<u8>) {
    let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0xa076_1d64_78bd_642f));
    body.clear();
    body.reserve(size as usize);
    while (body.len() as u64) < size {
        body.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    body.truncate(size as usize);
}

/// Writes file `i` of `plan` (its random bytes from `seed`, see [`content`]) at
/// `path_of(name, vers)`, creating directories, on every core. Returns their SHA-256s in order.
pub(super) fn write_files(
    plan: &[(CrateName, Version, u64)],
    seed: u64,
    path_of: &(dyn Fn(&CrateName, &Version) -> PathBuf + Sync),
) -> anyhow::Result<Vec<Checksum>> {
    let sums: Vec<Mutex<Option<Checksum>>> = (0..plan.len()).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let error = Mutex::new(None);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut body = Vec::new();
                let result = (|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((name, vers, size)) = plan.get(i) else {
                            return Ok(());
                        };
                        content(seed, i, *size, &mut body);
                        let path = path_of(name, vers);
                        let dir = path.parent().expect("a crate file has a directory");
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                        std::fs::write(&path, &body)
                            .with_context(|| format!("writing {}", path.display()))?;
                        *sums[i].lock().expect("no panics while holding it") =
                            Some(Checksum::from_bytes(Sha256::digest(&body).into()));
                    }
                })();
                if let Err(e) = result {
                    *error.lock().expect("no panics while holding it") = Some(e);
                    // Stop the others early.
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                }
            });
        }
    });
    if let Some(e) = error.into_inner().expect("no panics while holding it") {
        return Err(e);
    }
    Ok(sums
        .into_iter()
        .map(|sum| {
            sum.into_inner()
                .expect("no panics while holding it")
                .expect("every file was written")
        })
        .collect())
}

/// Reads a `manifest.tsv` of synthetic files: name, version, size and SHA-256 per line.
pub(super) fn parse_manifest(text: &str) -> anyhow::Result<Vec<CrateFile>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, vers, size, cksum] = fields[..] else {
                bail!("bad manifest line {line:?}");
            };
            Ok(CrateFile {
                name: name.parse()?,
                vers: vers.parse()?,
                size: size.parse()?,
                cksum: cksum.parse()?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// docs/benchmarks.md.

/// The top of docs/benchmarks.md, written when the file does not exist yet.
const DOCS_HEADER: &str = "# Benchmarks

Generated by `cargo xtask bench index`, `bench fetch`, `bench verify` and `bench sync`. Each
rewrites only its own section, between its `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`
markers (`--no-docs` only prints). Numbers are ratios against a baseline measured in the same run, on the same machine,
with the same thread count, so they compare across machines better than the absolute times do.
";

/// Replaces the section `name` of docs/benchmarks.md (markers included) with `body` wrapped in
/// its markers, or appends it when the file has no such section yet.
pub(super) fn write_section(name: &str, body: &str) -> anyhow::Result<()> {
    let doc = crate::common::workspace_root()
        .join("docs")
        .join("benchmarks.md");
    std::fs::create_dir_all(doc.parent().expect("docs/ has a parent"))?;
    let old = match std::fs::read_to_string(&doc) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DOCS_HEADER.to_owned(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", doc.display())),
    };
    std::fs::write(&doc, replace_section(&old, name, body))
        .with_context(|| format!("writing {}", doc.display()))?;
    eprintln!("wrote the {name} section of {}", doc.display());
    Ok(())
}

/// `doc` with the section `name` replaced by `body` (or appended), see [`write_section`].
fn replace_section(doc: &str, name: &str, body: &str) -> String {
    let open = format!("<!-- bench:{name} -->");
    let close = format!("<!-- /bench:{name} -->");
    let block = format!("{open}\n{}\n{close}", body.trim_end());
    if let Some(start) = doc.find(&open)
        && let Some(end) = doc[start..].find(&close).map(|e| start + e + close.len())
    {
        return format!("{}{block}{}", &doc[..start], &doc[end..]);
    }
    format!("{}\n\n{block}\n", doc.trim_end())
}

/// Today's date (UTC), as `YYYY-MM-DD`.
pub(super) fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// This machine, without host names or paths: `N cores (CPU model), M GB RAM; load average L`.
pub(super) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |kb| kb as f64 / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    format!("{cores} cores ({cpu}), {mem_gb:.0} GB RAM; load average {load}")
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/// Samples resident-minus-shared memory every 5 ms on a thread of its own.
pub(super) struct AnonSampler {
    stop: std::sync::Arc<AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
}

impl AnonSampler {
    pub(super) fn start() -> Self {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(anon_kb());
                std::thread::sleep(Duration::from_millis(5));
            }
            peak.max(anon_kb())
        });
        AnonSampler { stop, handle }
    }

    pub(super) fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

/// Resident minus shared (file-backed) pages, from /proc/self/statm, in KB.
fn anon_kb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut fields = statm
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let (resident, shared) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
    resident.saturating_sub(shared) * 4
}

/// The peak resident set of this process (VmHWM), in KB.
pub(super) fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) of this process, and of its waited-for children.
pub(super) fn self_cpu(ticks: f64) -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), from the state (field 3) on.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0) / ticks;
    (field(14) + field(15), field(16) + field(17))
}

/// Clock ticks per second, for /proc times.
pub(super) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Writes dirty pages back, so that one run's writes do not slow the next.
pub(super) fn sync() {
    let _ = Command::new("sync").status();
}

/// The first line of `tool args`, or `None` when it cannot run (after installing `package` with
/// apt-get, with `apt`).
pub(super) fn tool_version(
    apt: bool,
    tool: &str,
    args: &[&str],
    package: &str,
) -> anyhow::Result<Option<String>> {
    let version = || {
        Command::new(tool)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                // nginx prints its version on stderr.
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
    };
    if let Some(v) = version() {
        return Ok(Some(v));
    }
    if apt {
        eprintln!("==> apt-get install -y {package}");
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let status = Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("apt-get install -y {package} failed ({status})");
        }
    }
    Ok(version())
}

/// Prints where a `perf record` spent its time: by binary or library, then by function.
pub(super) fn print_perf_report(data: &Path) -> anyhow::Result<()> {
    for sort in ["dso", "dso,symbol"] {
        let output = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "-g",
                "none",
                "--percent-limit",
                "0.5",
            ])
            .args(["--sort", sort, "-i"])
            .arg(data)
            .stderr(Stdio::null())
            .output()
            .context("running perf report")?;
        let text = String::from_utf8_lossy(&output.stdout);
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "perf report --sort {sort}:")?;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            // perf pads its columns to the terminal's width, and ends with empty ones.
            writeln!(stdout, "{}", line.trim_end().trim_end_matches([' ', '-']))?;
        }
        writeln!(stdout)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::replace_section;

    #[test]
    fn sections_are_replaced_in_place_or_appended() {
        let doc = "# B\n\n<!-- bench:index -->\nold index\n<!-- /bench:index -->\n\ntail\n";
        let fetch = replace_section(doc, "fetch", "fetch 1\n");
        assert_eq!(
            fetch,
            "# B\n\n<!-- bench:index -->\nold index\n<!-- /bench:index -->\n\ntail\n\n<!-- bench:fetch -->\nfetch 1\n<!-- /bench:fetch -->\n"
        );
        let index = replace_section(&fetch, "index", "new index");
        assert_eq!(
            index,
            "# B\n\n<!-- bench:index -->\nnew index\n<!-- /bench:index -->\n\ntail\n\n<!-- bench:fetch -->\nfetch 1\n<!-- /bench:fetch -->\n"
        );
        assert_eq!(
            replace_section(&index, "fetch", "fetch 2"),
            index.replace("fetch 1", "fetch 2")
        );
    }
}
