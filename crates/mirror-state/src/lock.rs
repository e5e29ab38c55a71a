//! The advisory lock that keeps a second process off a mirror's state, and names the holder.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::Error;

/// The lock file's name inside the state directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Takes an exclusive advisory lock on `path` and writes `pid N (holder)` into it.
///
/// The lock is `flock(2)`-style (per open file description), so it also conflicts with a second
/// open of the same state inside one process. It is released when the returned file is closed,
/// including when the process dies, so a stale lock file never blocks the next run; its contents
/// only matter while it is locked.
pub(crate) fn acquire(path: &Path, holder: &str) -> Result<File, Error> {
    let io = |action| {
        move |source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("opening lock file"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(Error::Locked {
                path: path.to_path_buf(),
                holder: read_holder(&mut file),
            });
        }
        Err(TryLockError::Error(source)) => return Err(io("locking")(source)),
    }
    let line = format!("pid {} ({holder})\n", std::process::id());
    file.set_len(0).map_err(io("writing lock file"))?;
    file.seek(SeekFrom::Start(0))
        .map_err(io("writing lock file"))?;
    file.write_all(line.as_bytes())
        .map_err(io("writing lock file"))?;
    Ok(file)
}

/// Reads who holds the lock. The holder may be between truncating and writing, so an empty or
/// unreadable file is reported as unknown rather than as an error.
fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    // At most one short line is expected; cap the read so a hostile file cannot balloon memory.
    let _ = file.take(512).read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "an unknown process".to_owned()
    } else {
        text.chars().filter(|c| !c.is_control()).collect()
    }
}

/// Takes a shared advisory lock on `path`, opened for reading only (for a state this process
/// cannot write): it conflicts with a run holding the exclusive lock, so the state does not
/// change while it is read. Nothing is written to the file.
pub(crate) fn acquire_shared(path: &Path) -> Result<File, Error> {
    let mut file = File::open(path).map_err(|source| Error::Io {
        action: "opening lock file",
        path: path.to_path_buf(),
        source,
    })?;
    match file.try_lock_shared() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked {
            path: path.to_path_buf(),
            holder: read_holder(&mut file),
        }),
        Err(TryLockError::Error(source)) => Err(Error::Io {
            action: "locking",
            path: path.to_path_buf(),
            source,
        }),
    }
}
