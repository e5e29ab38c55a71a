//! `Source`: the index named by `--index`, opened and ready to read, wherever it lives.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use mirror_fetch::{SparseIndex, SparseOptions};
use mirror_index::{
    CrateName, DirIndex, DlTemplate, GitId, GitIndex, GitTip, IndexConfig, IndexFile, ReadOptions,
    ReadStats, SourceSpec,
};

use crate::{Error, FetchSettings};

/// The folder beside the git clone where a sparse source caches what it fetched.
const SPARSE_CACHE: &str = "sparse-cache";

/// An index source, opened: a local directory, a git repository cloned into a local bare
/// repository, or a sparse HTTP index.
///
/// ```no_run
/// use mirror_index::ReadOptions;
/// use mirror_sync::Source;
///
/// let never = std::sync::atomic::AtomicBool::new(false);
/// let source = Source::open("file:///srv/index.git", "mirror/.mirror/index.git".as_ref(), "my-tool/1.0", &never)?;
/// let dl = source.dl_template(None)?;
/// source.read(&[], &ReadOptions::default(), &mut |file| {
///     for entry in &file.entries {
///         println!("{}", dl.expand(entry.name(), entry.vers(), entry.cksum()));
///     }
/// })?;
/// # Ok::<(), mirror_sync::Error>(())
/// ```
#[derive(Debug)]
pub struct Source {
    spec: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Dir(DirIndex),
    Git {
        // Boxed: a repository handle is a kilobyte, the other variants a few words.
        index: Box<GitIndex>,
        previous: Option<GitTip>,
        tip: GitTip,
    },
    Sparse {
        index: SparseIndex,
        runtime: tokio::runtime::Runtime,
        /// Every crate fetched so far (`None`: not in the index). A sync reads its crates to
        /// plan and again to publish; the second read must not cost another request each.
        fetched: Mutex<HashMap<String, Option<IndexFile>>>,
    },
}

impl Source {
    /// Opens `src` (see [`SourceSpec::parse`]). A git index is cloned into, or fetched into,
    /// the bare repository `git_dir`; `interrupt` stops a long clone or fetch early (with an
    /// error). `user_agent` is sent with sparse index requests.
    ///
    /// A sparse index keeps the files it fetched, with their `ETag` and `Last-Modified`, in a
    /// folder of its own (named after its URL) under `sparse-cache` beside `git_dir`
    /// (`.mirror/sparse-cache` in a mirror), so reading an unchanged crate again costs one
    /// conditional request answered `304 Not Modified`. Within one `Source`, each crate is
    /// fetched at most once: reading it again is served from memory.
    ///
    /// Sparse requests keep the default politeness of downloads (`docs/politeness.md`) and send
    /// `user_agent` exactly; [`Source::open_with`] takes the settings of a run instead.
    pub fn open(
        src: &str,
        git_dir: &Path,
        user_agent: &str,
        interrupt: &AtomicBool,
    ) -> Result<Source, Error> {
        let fetch = FetchSettings {
            user_agent: Some(user_agent.to_owned()),
            ..FetchSettings::default()
        };
        Source::open_with(src, git_dir, &fetch, interrupt)
    }

    /// Opens `src` like [`Source::open`], with every sparse index request made under `fetch`:
    /// the same `--rate`, `--jobs`, attempts, backoff and `User-Agent` (with contact) as the
    /// downloads of a run.
    pub fn open_with(
        src: &str,
        git_dir: &Path,
        fetch: &FetchSettings,
        interrupt: &AtomicBool,
    ) -> Result<Source, Error> {
        let spec = SourceSpec::parse(src)?;
        let kind = match spec {
            SourceSpec::Dir(path) => Kind::Dir(DirIndex::open(path)?),
            SourceSpec::Git(url) => {
                tracing::info!(%url, dir = %git_dir.display(), "updating the git index");
                let index = GitIndex::open_or_clone(&url, git_dir)?;
                let outcome = index.fetch_interruptible(interrupt)?;
                Kind::Git {
                    index: Box::new(index),
                    previous: outcome.previous,
                    tip: outcome.current,
                }
            }
            SourceSpec::Sparse(url) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Runtime { source: e })?;
                let unused =
                    DlTemplate::new("http://unused.invalid/").expect("a constant valid template");
                let mut options = SparseOptions::from_fetch(fetch.options(unused, None));
                // One folder per index URL: validators of one server mean nothing to another.
                options.cache_dir = git_dir
                    .parent()
                    .map(|dir| dir.join(SPARSE_CACHE).join(url_folder(url.as_str())));
                let index = SparseIndex::new(&url, options)?;
                Kind::Sparse {
                    index,
                    runtime,
                    fetched: Mutex::default(),
                }
            }
            other => {
                return Err(Error::Config(format!("unsupported index source {other:?}")));
            }
        };
        Ok(Source {
            spec: src.to_owned(),
            kind,
        })
    }

    /// Opens `src` like [`Source::open`], but never goes to the network for a git index: the
    /// bare repository `git_dir` must hold a clone already (a sync made it), and its tip as of
    /// the last fetch is what is read. For re-publishing what a sync read, offline.
    ///
    /// A directory is opened as by [`Source::open`]; a sparse index is too (it has no local
    /// copy, so reading it still makes requests).
    pub fn open_local(src: &str, git_dir: &Path, user_agent: &str) -> Result<Source, Error> {
        let spec = SourceSpec::parse(src)?;
        let SourceSpec::Git(url) = spec else {
            return Source::open(src, git_dir, user_agent, &AtomicBool::new(false));
        };
        let no_clone = || {
            Error::Config(format!(
                "no local clone of the git index {url} in {}: run a sync first",
                git_dir.display()
            ))
        };
        let empty = std::fs::read_dir(git_dir).map_or(true, |mut dir| dir.next().is_none());
        if empty {
            return Err(no_clone());
        }
        // The directory holds a repository, so this opens it without fetching.
        let index = GitIndex::open_or_clone(&url, git_dir)?;
        let tip = index.head()?.ok_or_else(no_clone)?;
        Ok(Source {
            spec: src.to_owned(),
            kind: Kind::Git {
                index: Box::new(index),
                previous: None,
                tip,
            },
        })
    }

    /// The source as it was given to [`Source::open`].
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// For a git source, the commit and tree read (after the fetch), and the ones before it.
    pub fn git_tips(&self) -> Option<(Option<GitTip>, GitTip)> {
        match &self.kind {
            Kind::Git { previous, tip, .. } => Some((*previous, *tip)),
            _ => None,
        }
    }

    /// For a git source, the local repository.
    pub fn git_index(&self) -> Option<&GitIndex> {
        match &self.kind {
            Kind::Git { index, .. } => Some(index),
            _ => None,
        }
    }

    /// Whether the source can list every crate (a sparse index cannot).
    pub fn can_enumerate(&self) -> bool {
        !matches!(self.kind, Kind::Sparse { .. })
    }

    /// The index's `config.json`, if it has one.
    pub fn config(&self) -> Result<Option<IndexConfig>, Error> {
        Ok(match &self.kind {
            Kind::Dir(dir) => dir.config()?,
            Kind::Git { index, tip, .. } => index.config(&tip.tree)?,
            Kind::Sparse { index, runtime, .. } => Some(runtime.block_on(index.config())?),
        })
    }

    /// The download template: `dl` if given (a `--dl` flag), else the index's `config.json`.
    pub fn dl_template(&self, dl: Option<&str>) -> Result<DlTemplate, Error> {
        if let Some(dl) = dl {
            return Ok(DlTemplate::new(dl)?);
        }
        match self.config()? {
            Some(config) => Ok(config.dl_template()?),
            None => Err(Error::Config(
                "the index has no config.json; pass --dl to say where crates download from"
                    .to_owned(),
            )),
        }
    }

    /// Reads the whole index, or only `crates` when not empty, calling `sink` in index order.
    pub fn read(
        &self,
        crates: &[CrateName],
        options: &ReadOptions,
        sink: &mut dyn FnMut(IndexFile),
    ) -> Result<ReadStats, Error> {
        Ok(match &self.kind {
            Kind::Dir(dir) if crates.is_empty() => dir.read_all(options, sink)?,
            Kind::Dir(dir) => dir.read_crates(crates, options, sink)?,
            Kind::Git { index, tip, .. } if crates.is_empty() => {
                index.read_all(&tip.tree, options, sink)?
            }
            Kind::Git { index, tip, .. } => index.read_crates(&tip.tree, crates, options, sink)?,
            Kind::Sparse { .. } if crates.is_empty() => {
                return Err(Error::Config(
                    "a sparse index cannot be enumerated: name the crates with --crate, or use the git index"
                        .to_owned(),
                ));
            }
            Kind::Sparse {
                index,
                runtime,
                fetched,
            } => runtime.block_on(read_sparse(index, fetched, crates, sink))?,
        })
    }

    /// Reads the index files at `paths` (index paths such as `se/rd/serde`, as a
    /// [`GitIndex::diff_trees`] reports them), calling `sink` in the order given. Paths that hold
    /// no index file, or are not where an index file belongs, are listed in
    /// [`ReadStats::not_found`].
    pub fn read_paths(
        &self,
        paths: &[String],
        options: &ReadOptions,
        sink: &mut dyn FnMut(IndexFile),
    ) -> Result<ReadStats, Error> {
        if let Kind::Git { index, tip, .. } = &self.kind {
            return Ok(index.read_paths(&tip.tree, paths, options, sink)?);
        }
        // The other sources read by crate name; an index path names one crate (or none).
        let mut names = Vec::with_capacity(paths.len());
        let mut invalid = Vec::new();
        for path in paths {
            match crate_of_index_path(path) {
                Some(name) => names.push(name),
                None => invalid.push(path.clone()),
            }
        }
        let mut stats = if names.is_empty() {
            ReadStats::default()
        } else {
            self.read(&names, options, sink)?
        };
        stats.not_found.extend(invalid);
        Ok(stats)
    }

    /// The tree read, for a git source.
    pub fn tree(&self) -> Option<GitId> {
        self.git_tips().map(|(_, tip)| tip.tree)
    }
}

/// Fetches the named crates a few at a time (those not fetched before by this source) and hands
/// them to `sink` in the order given.
async fn read_sparse(
    index: &SparseIndex,
    fetched: &Mutex<HashMap<String, Option<IndexFile>>>,
    crates: &[CrateName],
    sink: &mut dyn FnMut(IndexFile),
) -> Result<ReadStats, Error> {
    // No more fetches started than the fetcher lets run: the rest would only wait in it.
    let limit = Arc::new(tokio::sync::Semaphore::new(index.max_in_flight()));
    let mut tasks = Vec::with_capacity(crates.len());
    for name in crates {
        // By index path: `Inflector` and `inflector` are one file.
        let known = fetched
            .lock()
            .expect("no panics while the lock is held")
            .get(&mirror_index::index_path(name))
            .cloned();
        if let Some(known) = known {
            tasks.push(Err(known));
            continue;
        }
        let (index, name, limit) = (index.clone(), name.clone(), limit.clone());
        tasks.push(Ok(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            index.fetch(&name).await
        })));
    }
    let mut stats = ReadStats::default();
    for (name, task) in crates.iter().zip(tasks) {
        let file = match task {
            Err(known) => known,
            Ok(task) => {
                let file = task
                    .await
                    .map_err(|e| Error::Task(e.to_string()))??
                    .into_file();
                fetched
                    .lock()
                    .expect("no panics while the lock is held")
                    .insert(mirror_index::index_path(name), file.clone());
                file
            }
        };
        match file {
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

/// A folder name for the cache of the sparse index at `url`: 16 hex digits of its SHA-256.
fn url_folder(url: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(url.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The crate whose index file belongs at `path` (`se/rd/serde`), if `path` is exactly where an
/// index file belongs: the lowercase name, under its sharding prefix.
pub(crate) fn crate_of_index_path(path: &str) -> Option<CrateName> {
    let (_, file) = path.rsplit_once('/')?;
    let name = CrateName::new(file).ok()?;
    (mirror_index::index_path(&name) == path).then_some(name)
}
