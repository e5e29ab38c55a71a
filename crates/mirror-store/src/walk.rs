//! `Walk`: every entry under `crates/`, classified as a crate file in its place or unexpected.

use std::fs::{self, FileType};
use std::path::{Component, Path, PathBuf};

use mirror_core::{CrateName, Version, index_prefix};

use crate::Error;

/// One file found by [`Walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WalkEntry {
    /// A regular file exactly where the crate file of `name` at `vers` belongs.
    Crate {
        /// The crate name, in the case of its directory and file name.
        name: CrateName,
        /// The version from the file name.
        vers: Version,
        /// The absolute path.
        path: PathBuf,
        /// The file's length in bytes.
        size: u64,
    },
    /// Anything else that is not a directory: a stray or temp file, a crate file in the wrong
    /// directory, a symlink (never followed), a socket or fifo.
    Unexpected {
        /// The absolute path.
        path: PathBuf,
    },
}

/// A streaming, depth-first walk over `crates/`, returned by [`crate::Store::walk`].
///
/// A file is a [`WalkEntry::Crate`] when its path relative to `crates/` is exactly
/// `{lowerprefix}/{name}/{name}-{version}.crate` for a valid name and version (the name is taken
/// from the directory, since names may contain `-`) and it is a regular file; everything else
/// that is not a directory is [`WalkEntry::Unexpected`]. Real directories are descended into
/// (empty ones are not reported); symlinks are reported, never followed.
///
/// Only one directory listing is held at a time, plus the directories still to visit, so memory
/// stays small however many crates there are. Entries come in byte order of their names. An
/// unreadable directory yields an error and the walk goes on with the rest.
#[derive(Debug)]
pub struct Walk {
    crates_dir: PathBuf,
    /// Entries still to look at, last one next.
    stack: Vec<(PathBuf, FileType)>,
    /// A directory whose listing is still to be read.
    pending_dir: Option<PathBuf>,
}

impl Walk {
    pub(crate) fn new(crates_dir: PathBuf) -> Self {
        Walk {
            pending_dir: Some(crates_dir.clone()),
            crates_dir,
            stack: Vec::new(),
        }
    }

    fn list(&mut self, dir: &Path) -> Result<(), Error> {
        let entries = fs::read_dir(dir).map_err(Error::io("listing", dir))?;
        let mut listed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("listing", dir))?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(Error::io("inspecting", &path))?;
            listed.push((path, file_type));
        }
        // Reverse order, so popping yields names in ascending order.
        listed.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        self.stack.extend(listed);
        Ok(())
    }

    fn classify(&self, path: PathBuf, file_type: FileType) -> Result<WalkEntry, Error> {
        if file_type.is_file()
            && let Some((name, vers)) = crate_at(&self.crates_dir, &path)
        {
            // `symlink_metadata`: the entry was a regular file; never follow a link swapped in since.
            let meta = fs::symlink_metadata(&path).map_err(Error::io("inspecting", &path))?;
            if meta.is_file() {
                return Ok(WalkEntry::Crate {
                    name,
                    vers,
                    path,
                    size: meta.len(),
                });
            }
        }
        Ok(WalkEntry::Unexpected { path })
    }
}

impl Iterator for Walk {
    type Item = Result<WalkEntry, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(dir) = self.pending_dir.take()
                && let Err(e) = self.list(&dir)
            {
                return Some(Err(e));
            }
            let (path, file_type) = self.stack.pop()?;
            if file_type.is_dir() {
                self.pending_dir = Some(path);
                continue;
            }
            return Some(self.classify(path, file_type));
        }
    }
}

/// The name and version whose crate file belongs at `path`, if any.
fn crate_at(crates_dir: &Path, path: &Path) -> Option<(CrateName, Version)> {
    let rel = path.strip_prefix(crates_dir).ok()?;
    let parts = rel
        .components()
        .map(|c| match c {
            Component::Normal(part) => part.to_str(),
            _ => None,
        })
        .collect::<Option<Vec<&str>>>()?;
    let [prefix @ .., dir, file] = parts.as_slice() else {
        return None;
    };
    let name = CrateName::new(dir).ok()?;
    let vers = file
        .strip_prefix(dir)?
        .strip_prefix('-')?
        .strip_suffix(".crate")?;
    let vers = Version::new(vers).ok()?;
    let expected_prefix = index_prefix(&name).to_lowercase();
    let prefix_matches = expected_prefix.split('/').eq(prefix.iter().copied());
    prefix_matches.then_some((name, vers))
}
