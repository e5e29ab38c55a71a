//! The file-system half of the published index (`index/` under the root): reading a published
//! file, replacing it whole, and removing it with the shard directories it leaves empty. Paths
//! are index paths (`se/rd/serde`, `config.json`) relative to `index/`. No symlink is followed:
//! a published file behind one reads as absent and is never removed through one.

use std::fs;
use std::io;
use std::path::{Component, Path};

use crate::fsutil::sync_dir;
use crate::{Error, Store};

impl Store {
    /// The published `index/{path}`, if it is a regular file below real directories.
    pub fn read_published(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let index_root = self.index_root();
        let full = index_root.join(path);
        if !parents_are_real_dirs(&index_root, path)? {
            return Ok(None);
        }
        match fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_file() => fs::read(&full)
                .map(Some)
                .map_err(Error::io("reading", &full)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("inspecting", &full)(e)),
        }
    }

    /// Writes `bytes` to `rel` (relative to the root) atomically unless the file there already
    /// holds exactly them. Returns whether it wrote.
    pub fn write_if_changed(&self, rel: &Path, bytes: &[u8]) -> Result<bool, Error> {
        let path = self.root().join(rel);
        let current = match fs::symlink_metadata(&path) {
            // Only a regular file of the right length is worth reading; anything else is
            // replaced.
            Ok(meta) if meta.is_file() && meta.len() == bytes.len() as u64 => {
                Some(fs::read(&path).map_err(Error::io("reading", &path))?)
            }
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("inspecting", &path)(e)),
        };
        if current.as_deref() == Some(bytes) {
            return Ok(false);
        }
        self.write_atomic(rel, bytes)?;
        Ok(true)
    }

    /// Deletes the published `index/{path}` if there is one, durably. Returns whether it did.
    pub fn remove_published(&self, path: &str) -> Result<bool, Error> {
        let index_root = self.index_root();
        // A directory on the way that is a symlink could lead outside the mirror: never follow
        // it.
        if !parents_are_real_dirs(&index_root, path)? {
            return Ok(false);
        }
        let full = index_root.join(path);
        match fs::symlink_metadata(&full) {
            Ok(meta) if !meta.is_dir() => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("inspecting", &full)(e)),
        }
        match fs::remove_file(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("removing", &full)(e)),
        }
        if let Some(parent) = full.parent() {
            sync_dir(parent)?;
        }
        tracing::debug!(path, "removed from the published index");
        Ok(true)
    }

    /// Removes the shard directories of the published `index/{path}` (its parent, then theirs,
    /// up to but never including `index/` itself) that are left empty after the file was
    /// removed, so that a prune or a sweep leaves no empty directories behind. Stops at the
    /// first that is not empty (or not a directory: `remove_dir` never follows a symlink). Call
    /// it only when no write into `index/` is in flight: a writer in the same shard could find
    /// its directory gone.
    pub fn remove_empty_published_dirs(&self, path: &str) -> Result<(), Error> {
        let index_root = self.index_root();
        let mut dir = Path::new(path).parent();
        while let Some(rel) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Ok(());
            }
            let full = index_root.join(rel);
            match fs::remove_dir(&full) {
                Ok(()) => {
                    if let Some(parent) = full.parent() {
                        sync_dir(parent)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Not empty (the common case), or not a directory: leave it and everything
                // above.
                Err(_) => return Ok(()),
            }
            dir = rel.parent();
        }
        Ok(())
    }
}

/// Whether `index_root` and every directory between it and `index_root/{path}` are real
/// directories (not symlinks). `false` when one is missing.
fn parents_are_real_dirs(index_root: &Path, path: &str) -> Result<bool, Error> {
    let mut dir = index_root.to_path_buf();
    let parents = Path::new(path).parent().unwrap_or(Path::new(""));
    for component in std::iter::once(None).chain(parents.components().map(Some)) {
        if let Some(component) = component {
            let Component::Normal(part) = component else {
                return Ok(false);
            };
            dir.push(part);
        }
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("inspecting", &dir)(e)),
        }
    }
    Ok(true)
}
