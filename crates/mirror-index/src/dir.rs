//! A registry index in a local directory: a git checkout or a sparse-layout tree.

use std::path::{Path, PathBuf};

use crate::read::{read_ordered, report_strays, split_strays};
use crate::{CrateName, Error, IndexConfig, IndexFile, ReadOptions, ReadStats, path};

/// An index laid out as files under a root directory.
///
/// ```no_run
/// use mirror_index::{DirIndex, ReadOptions};
/// let index = DirIndex::open("path/to/index").unwrap();
/// index.read_all(&ReadOptions::default(), &mut |file| {
///     for entry in &file.entries {
///         println!("{} {} {}", entry.name(), entry.vers(), entry.cksum());
///     }
/// }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct DirIndex {
    root: PathBuf,
}

impl DirIndex {
    /// Opens the index rooted at `root`, which must be a directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        let meta = std::fs::metadata(&root).map_err(|e| Error::io("opening index", &root, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                "opening index",
                &root,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        Ok(DirIndex { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The index's `config.json`, or `None` when the directory has none.
    pub fn config(&self) -> Result<Option<IndexConfig>, Error> {
        let path = self.root.join("config.json");
        match std::fs::read(&path) {
            Ok(bytes) => IndexConfig::parse(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    }

    /// Every file below the root that may be an index file, as sorted `/`-separated relative
    /// paths. Dot-folders (`.git`, `.github`), files at the root (`config.json`, a README) and
    /// symlinks are left out.
    pub fn list_paths(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
                let Ok(name) = entry.file_name().into_string() else {
                    tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let kind = entry
                    .file_type()
                    .map_err(|e| Error::io("listing", entry.path(), e))?;
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if kind.is_dir() {
                    stack.push((entry.path(), child));
                } else if kind.is_file() && !rel.is_empty() {
                    out.push(child);
                } else if kind.is_symlink() {
                    tracing::warn!(path = %entry.path().display(), "skipping a symlink in the index");
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Reads every index file, in path order, parsing on all cores. Files whose path is not where
    /// an index file belongs are reported as a problem of that file and not read.
    pub fn read_all(
        &self,
        options: &ReadOptions,
        sink: &mut dyn FnMut(IndexFile),
    ) -> Result<ReadStats, Error> {
        let (items, stray) = split_strays(self.list_paths()?.into_iter().map(|p| (p, ())));
        let mut stats = self.read_items(items, options, sink)?;
        report_strays(stray, &mut stats, sink);
        Ok(stats)
    }

    /// Reads the index files of the named crates, in the order given. Crates without an index file
    /// are listed in [`ReadStats::not_found`].
    pub fn read_crates(
        &self,
        names: &[CrateName],
        options: &ReadOptions,
        sink: &mut dyn FnMut(IndexFile),
    ) -> Result<ReadStats, Error> {
        let items = names.iter().map(|n| (path::index_path(n), ())).collect();
        self.read_items(items, options, sink)
    }

    fn read_items(
        &self,
        items: Vec<(String, ())>,
        options: &ReadOptions,
        sink: &mut dyn FnMut(IndexFile),
    ) -> Result<ReadStats, Error> {
        read_ordered(
            items,
            options,
            || (),
            |_, rel, _| {
                let full = self.root.join(rel);
                match std::fs::read(&full) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io("reading", full, e)),
                }
            },
            sink,
        )
    }
}
