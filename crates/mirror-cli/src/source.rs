//! Opening the index source named by `--index`, wherever it lives.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use mirror_index::SourceSpec;
use mirror_sync::Source;

/// The User-Agent of index requests made by commands that take no `--user-agent`.
pub(crate) const USER_AGENT: &str = concat!("mirror-cli/", env!("CARGO_PKG_VERSION"));

/// Opens `src` for reading. A git index is cloned (or fetched, when cloned before) into a folder
/// of `cache_dir`, by default the user's cache directory.
pub(crate) fn open(src: &str, cache_dir: Option<PathBuf>) -> anyhow::Result<Source> {
    let spec = SourceSpec::parse(src).context("bad --index")?;
    let git_dir = match &spec {
        SourceSpec::Git(url) => {
            let cache = match cache_dir {
                Some(dir) => dir,
                None => default_cache_dir()?,
            };
            let dir = cache.join("git").join(slug(url));
            // A first clone of a large index takes minutes; say what is going on.
            if std::io::stderr().is_terminal() {
                eprintln!("updating the git index {url} in {} …", dir.display());
            }
            dir
        }
        _ => PathBuf::new(),
    };
    let never = AtomicBool::new(false);
    Ok(Source::open(src, &git_dir, USER_AGENT, &never)?)
}

/// `$XDG_CACHE_HOME/mirror-cli`, else `$HOME/.cache/mirror-cli`.
fn default_cache_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")));
    match base {
        Some(base) => Ok(base.join("mirror-cli")),
        None => bail!("no cache directory: set XDG_CACHE_HOME or HOME, or pass --cache-dir"),
    }
}

/// A folder name for a URL: readable, and unique through a hash of the whole URL.
fn slug(url: &str) -> String {
    let readable: String = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    // FNV-1a: stable across Rust versions, unlike the std hasher.
    let hash = url.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{readable}-{hash:016x}")
}
