//! Durable file system steps: directory creation that never follows symlinks, directory fsync,
//! unique temp names, and the final rename.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// Makes the entries of `dir` (new files, renames) durable. A no-op where directories cannot be
/// opened (Windows), which has no equivalent.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io("syncing directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `dir` (which must be `root` or lie under it) and any missing parents below `root`.
///
/// Every existing component is checked to be a real directory, never a symlink, so a planted link
/// cannot redirect a write outside the mirror. The parent of each directory created here is
/// synced, so the new directory survives a crash as soon as this returns.
pub(crate) fn create_dirs_durable(root: &Path, dir: &Path) -> Result<(), Error> {
    let rel = dir.strip_prefix(root).map_err(|_| Error::InvalidPath {
        path: dir.to_owned(),
        reason: "not under the mirror root",
    })?;
    let mut current = root.to_path_buf();
    let mut created_in: Vec<PathBuf> = Vec::new();
    for component in rel.components() {
        let Component::Normal(part) = component else {
            return Err(Error::InvalidPath {
                path: dir.to_owned(),
                reason: "only plain components are allowed",
            });
        };
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => return Err(Error::NotADirectory { path: current }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("inspecting", &current)(e)),
        }
        match fs::create_dir(&current) {
            Ok(()) => created_in.push(root_parent(&current)),
            // Another writer created it between our check and now; make sure it is a directory.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta =
                    fs::symlink_metadata(&current).map_err(Error::io("inspecting", &current))?;
                if !meta.is_dir() {
                    return Err(Error::NotADirectory { path: current });
                }
            }
            Err(e) => return Err(Error::io("creating directory", &current)(e)),
        }
    }
    // Deepest first, so each parent is synced after its new child's own entries are.
    for parent in created_in.iter().rev() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn root_parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A file name no other writer (thread or process) will pick: pid, a process-wide counter and
/// random bits. The file is created with `create_new`, so a collision would fail, not clobber.
pub(crate) fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}-{:016x}.part", std::process::id(), fastrand::u64(..))
}

/// Moves the synced file `temp` to `dest` (under `root`): creates the parent directories, renames,
/// and syncs the parent so the new name is durable.
pub(crate) fn place(root: &Path, temp: &Path, dest: &Path) -> Result<(), Error> {
    let parent = dest.parent().ok_or_else(|| Error::InvalidPath {
        path: dest.to_owned(),
        reason: "has no parent directory",
    })?;
    create_dirs_durable(root, parent)?;
    fs::rename(temp, dest).map_err(|source| Error::Rename {
        from: temp.to_owned(),
        to: dest.to_owned(),
        source,
    })?;
    sync_dir(parent)
}

/// Checks that `rel` is a relative path of plain components (no root, no `..`, not empty).
pub(crate) fn check_relative(rel: &Path) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidPath {
        path: rel.to_owned(),
        reason,
    };
    if rel.as_os_str().is_empty() {
        return Err(invalid("path is empty"));
    }
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(invalid("path must be relative, without `.` or `..`"));
    }
    Ok(())
}
