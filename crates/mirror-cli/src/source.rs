//! Opening the index source named by `--index`, wherever it lives.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use mirror_index::{
    CrateName, DirIndex, DlTemplate, GitId, GitIndex, IndexConfig, IndexFile, ReadOptions,
    ReadStats, SourceSpec, SparseIndex, SparseOptions,
};

/// The User-Agent of index requests made by commands that take no `--user-agent`.
pub(crate) const USER_AGENT: &str = concat!("mirror-cli/", env!("CARGO_PKG_VERSION"));

/// Sparse index files fetched at once. Small: listing a handful of named crates needs no more.
const SPARSE_CONCURRENCY: usize = 8;

/// An index, opened and ready to read.
pub(crate) enum Index {
    Dir(DirIndex),
    Git {
        // Boxed: a repository handle is a kilobyte, the other variants a few words.
        index: Box<GitIndex>,
        tree: GitId,
    },
    Sparse {
        index: SparseIndex,
        runtime: tokio::runtime::Runtime,
    },
}

impl Index {
    /// Opens `src`. A git index is cloned (or fetched, when cloned before) into a folder of
    /// `cache_dir`, by default the user's cache directory.
    pub(crate) fn open(src: &str, cache_dir: Option<PathBuf>) -> anyhow::Result<Index> {
        let spec = SourceSpec::parse(src).context("bad --index")?;
        Ok(match spec {
            SourceSpec::Dir(path) => Index::Dir(DirIndex::open(path)?),
            SourceSpec::Git(url) => {
                let cache = match cache_dir {
                    Some(dir) => dir,
                    None => default_cache_dir()?,
                };
                let dir = cache.join("git").join(slug(&url));
                tracing::info!(%url, dir = %dir.display(), "updating the git index");
                // A first clone of a large index takes minutes; say what is going on.
                if std::io::stderr().is_terminal() {
                    eprintln!("updating the git index {url} in {} …", dir.display());
                }
                let index = GitIndex::open_or_clone(&url, &dir)?;
                let tree = index.fetch()?.current.tree;
                Index::Git {
                    index: Box::new(index),
                    tree,
                }
            }
            SourceSpec::Sparse(url) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the async runtime")?;
                let index = SparseIndex::new(&url, SparseOptions::new(USER_AGENT))?;
                Index::Sparse { index, runtime }
            }
            other => bail!("unsupported index source {other:?}"),
        })
    }

    /// The index's `config.json`, if it has one.
    pub(crate) fn config(&self) -> anyhow::Result<Option<IndexConfig>> {
        Ok(match self {
            Index::Dir(dir) => dir.config()?,
            Index::Git { index, tree } => index.config(tree)?,
            Index::Sparse { index, runtime } => Some(runtime.block_on(index.config())?),
        })
    }

    /// The download template: `--dl` if given, else the index's `config.json`.
    pub(crate) fn dl_template(&self, dl: Option<&str>) -> anyhow::Result<DlTemplate> {
        if let Some(dl) = dl {
            return DlTemplate::new(dl).context("bad --dl");
        }
        match self.config()? {
            Some(config) => config
                .dl_template()
                .context("the index's config.json has an unusable dl"),
            None => {
                bail!("the index has no config.json; pass --dl to say where crates download from")
            }
        }
    }

    /// Reads the whole index, or only `crates` when not empty, calling `sink` in index order.
    pub(crate) fn read(
        &self,
        crates: &[CrateName],
        sink: &mut dyn FnMut(IndexFile),
    ) -> anyhow::Result<ReadStats> {
        let options = ReadOptions::default();
        Ok(match self {
            Index::Dir(dir) if crates.is_empty() => dir.read_all(&options, sink)?,
            Index::Dir(dir) => dir.read_crates(crates, &options, sink)?,
            Index::Git { index, tree } if crates.is_empty() => {
                index.read_all(tree, &options, sink)?
            }
            Index::Git { index, tree } => index.read_crates(tree, crates, &options, sink)?,
            Index::Sparse { .. } if crates.is_empty() => bail!(
                "a sparse index cannot be enumerated: name the crates with --crate, or use the git index"
            ),
            Index::Sparse { index, runtime } => {
                runtime.block_on(read_sparse(index, crates, sink))?
            }
        })
    }
}

/// Fetches the named crates a few at a time and hands them to `sink` in the order given.
async fn read_sparse(
    index: &SparseIndex,
    crates: &[CrateName],
    sink: &mut dyn FnMut(IndexFile),
) -> anyhow::Result<ReadStats> {
    let limit = Arc::new(tokio::sync::Semaphore::new(SPARSE_CONCURRENCY));
    let mut tasks = Vec::with_capacity(crates.len());
    for name in crates {
        let (index, name, limit) = (index.clone(), name.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            index.fetch(&name).await
        }));
    }
    let mut stats = ReadStats::default();
    for (name, task) in crates.iter().zip(tasks) {
        let fetched = task.await.context("index fetch task failed")??;
        match fetched.into_file() {
            Some(file) => {
                stats.files += 1;
                stats.entries += file.entries.len();
                stats.bad_lines += file.problems.len();
                sink(file);
            }
            None => stats.not_found.push(mirror_index::index_path(name)),
        }
    }
    Ok(stats)
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
