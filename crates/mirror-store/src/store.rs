//! `Store`: where everything lives under the mirror root, and the operations on whole files.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use mirror_core::{CrateName, Version, index_prefix};

use crate::fsutil::{check_relative, create_dirs_durable, place, sync_dir, temp_name};
use crate::{Error, PendingCrate, Walk};

const CRATES: &str = "crates";
const PRIVATE: &str = ".mirror";
const TMP: &str = "tmp";
const QUARANTINE: &str = "quarantine";
const STATE: &str = "state";
const INDEX_CLONE: &str = "index.git";
const PUBLISHED_INDEX: &str = "index";

/// The mirror's directory (`--dest`) and its layout:
///
/// ```text
/// crates/{lowerprefix}/{name}/{name}-{version}.crate   crate files, name in its published case, `+` literal
/// index/                                               the published sparse index
/// .mirror/state/                                       the state database
/// .mirror/index.git/                                   the clone of the upstream git index
/// .mirror/tmp/                                         downloads in progress (same file system as crates/)
/// .mirror/quarantine/{timestamp}/crates/...            files taken out of the mirror, never deleted
/// ```
///
/// `{lowerprefix}` is the index's sharding prefix of the lowercased name: `1`, `2`, `3/{c}` or
/// `{ab}/{cd}`. Paths built from a [`CrateName`] and a [`Version`] are safe by construction; the store
/// also never follows a symlink when it creates directories, so nothing is written outside the root.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::path::Path;
/// use mirror_store::Store;
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(&dir.path().join("mirror"))?;
/// let path = store.relative_crate_path(&"Serde".parse()?, &"1.0.0+build".parse()?);
/// assert_eq!(path, Path::new("crates/se/rd/Serde/Serde-1.0.0+build.crate"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the mirror at `dest`, creating `dest`, `dest/crates` and `dest/.mirror/tmp` as needed.
    ///
    /// The root is made absolute (symlinks in `dest` itself are resolved once, here); below it no
    /// symlink is ever followed.
    pub fn open(dest: &Path) -> Result<Store, Error> {
        fs::create_dir_all(dest).map_err(Error::io("creating directory", dest))?;
        let root = fs::canonicalize(dest).map_err(Error::io("resolving", dest))?;
        let store = Store { root };
        create_dirs_durable(&store.root, &store.crates_dir())?;
        create_dirs_durable(&store.root, &store.temp_dir())?;
        Ok(store)
    }

    /// The mirror root (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `crates/`: where crate files live.
    pub fn crates_dir(&self) -> PathBuf {
        self.root.join(CRATES)
    }

    /// `.mirror/state`: the state database's directory (not created here).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(PRIVATE).join(STATE)
    }

    /// `.mirror/index.git`: the clone of the upstream git index (not created here).
    pub fn index_dir(&self) -> PathBuf {
        self.root.join(PRIVATE).join(INDEX_CLONE)
    }

    /// `.mirror/tmp`: files being written. Anything here is garbage once no sync runs.
    pub fn temp_dir(&self) -> PathBuf {
        self.root.join(PRIVATE).join(TMP)
    }

    /// `.mirror/quarantine`: files taken out of the mirror by [`Store::quarantine`].
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join(PRIVATE).join(QUARANTINE)
    }

    /// `index/`: the published sparse index (not created here).
    pub fn index_root(&self) -> PathBuf {
        self.root.join(PUBLISHED_INDEX)
    }

    /// Where the `.crate` file of `name` at `vers` belongs, relative to the root:
    /// `crates/{lowerprefix}/{name}/{name}-{vers}.crate`.
    pub fn relative_crate_path(&self, name: &CrateName, vers: &Version) -> PathBuf {
        let mut path = PathBuf::from(CRATES);
        for part in index_prefix(name).to_lowercase().split('/') {
            path.push(part);
        }
        path.push(name.as_str());
        path.push(format!("{name}-{vers}.crate"));
        debug_assert!(
            path.components().all(|c| matches!(c, Component::Normal(_))),
            "crate path {path:?} is not a plain relative path"
        );
        path
    }

    /// Where the `.crate` file of `name` at `vers` belongs (absolute).
    pub fn crate_path(&self, name: &CrateName, vers: &Version) -> PathBuf {
        let path = self.root.join(self.relative_crate_path(name, vers));
        debug_assert!(path.starts_with(self.crates_dir()));
        path
    }

    /// Starts writing the crate file of `name` at `vers`: a new temp file in `.mirror/tmp`, to be
    /// filled through [`mirror_core::Sink`] and moved into place by [`PendingCrate::commit`].
    ///
    /// Until then nothing appears under the final name; dropping the `PendingCrate` deletes the
    /// temp file.
    pub fn begin(&self, name: &CrateName, vers: &Version) -> Result<PendingCrate, Error> {
        let (file, temp) = self.create_temp()?;
        Ok(PendingCrate::new(
            file,
            temp,
            self.crate_path(name, vers),
            self.root.clone(),
        ))
    }

    /// Writes `bytes` to `rel` (relative to the root) atomically: readers see the old file or the
    /// new one, never a mix, and after a crash the new file is either complete or absent.
    ///
    /// Meant for small files (published index files). Returns the absolute path written.
    pub fn write_atomic(&self, rel: &Path, bytes: &[u8]) -> Result<PathBuf, Error> {
        check_relative(rel)?;
        let dest = self.root.join(rel);
        let (mut file, temp) = self.create_temp()?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(Error::io("writing", &temp));
        drop(file);
        let placed = written.and_then(|()| place(&self.root, &temp, &dest));
        if placed.is_err() {
            // Best effort: a leftover is removed by `clean_temp` at the next start.
            let _ = fs::remove_file(&temp);
        }
        placed.map(|()| dest)
    }

    /// Deletes everything in `.mirror/tmp` and returns how many entries were removed.
    ///
    /// Call it once at the start of a sync, before any [`Store::begin`]: it would also delete the
    /// temp files of writes in progress. Only one sync runs on a mirror at a time (the state lock
    /// guarantees it), so at that point everything here is a leftover of an interrupted run.
    pub fn clean_temp(&self) -> Result<usize, Error> {
        let dir = self.temp_dir();
        let entries = fs::read_dir(&dir).map_err(Error::io("listing", &dir))?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(Error::io("listing", &dir))?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(Error::io("inspecting", &path))?;
            // `file_type` does not follow symlinks, and `remove_dir_all` never follows them either.
            let result = if file_type.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing", &path)(e)),
            }
        }
        Ok(removed)
    }

    /// Moves the crate file of `name` at `vers` into `.mirror/quarantine/{timestamp}/`, keeping its
    /// relative path, with `reason` written next to it (`….crate.reason`). Returns the new path.
    ///
    /// Files are never silently deleted: a corrupt or unexpected file may be evidence.
    pub fn quarantine(
        &self,
        name: &CrateName,
        vers: &Version,
        reason: &str,
    ) -> Result<PathBuf, Error> {
        self.quarantine_path(&self.crate_path(name, vers), reason)
    }

    /// Like [`Store::quarantine`], for any file or symlink under `crates/` (for example an
    /// unexpected one found by [`Store::walk`]). `path` may be absolute or relative to the root.
    pub fn quarantine_path(&self, path: &Path, reason: &str) -> Result<PathBuf, Error> {
        let rel = if path.is_absolute() {
            path.strip_prefix(&self.root)
                .map_err(|_| Error::InvalidPath {
                    path: path.to_owned(),
                    reason: "not under the mirror root",
                })?
        } else {
            path
        };
        check_relative(rel)?;
        if !rel.starts_with(CRATES) || rel == Path::new(CRATES) {
            return Err(Error::InvalidPath {
                path: path.to_owned(),
                reason: "only files under crates/ can be quarantined",
            });
        }
        let from = self.root.join(rel);
        let meta = fs::symlink_metadata(&from).map_err(Error::io("inspecting", &from))?;
        if meta.is_dir() {
            return Err(Error::InvalidPath {
                path: from,
                reason: "is a directory",
            });
        }
        // The source's parent must be a real directory too, or the rename could act elsewhere.
        if let Some(parent) = from.parent() {
            create_dirs_durable(&self.root, parent)?;
        }

        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let stamp = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
        let to = self.quarantine_dir().join(stamp).join(rel);
        if fs::symlink_metadata(&to).is_ok() {
            return Err(Error::io("quarantining to", &to)(
                io::ErrorKind::AlreadyExists.into(),
            ));
        }
        place(&self.root, &from, &to)?;
        if let Some(parent) = from.parent() {
            sync_dir(parent)?;
        }

        let mut note = to.clone().into_os_string();
        note.push(".reason");
        let note = PathBuf::from(note);
        let mut text = reason.to_owned();
        text.push('\n');
        fs::write(&note, text).map_err(Error::io("writing", &note))?;
        Ok(to)
    }

    /// Every entry under `crates/`, classified; see [`Walk`].
    pub fn walk(&self) -> Walk {
        Walk::new(self.crates_dir())
    }

    /// A new, empty file in `.mirror/tmp`.
    fn create_temp(&self) -> Result<(fs::File, PathBuf), Error> {
        let dir = self.temp_dir();
        // The directory may have been removed since `open`; recreating it is cheap and safe.
        create_dirs_durable(&self.root, &dir)?;
        let mut attempts = 0;
        loop {
            let path = dir.join(temp_name());
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => return Ok((file, path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
                Err(e) => return Err(Error::io("creating", &path)(e)),
            }
        }
    }
}
