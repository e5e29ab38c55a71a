//! `PendingCrate`: a crate file being downloaded, invisible until committed.

use std::io::{self, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use mirror_core::Sink;

use crate::Error;
use crate::fsutil::place;

/// A crate file being written: a temp file in `.mirror/tmp` that becomes
/// `crates/…/{name}-{vers}.crate` only through [`PendingCrate::commit`].
///
/// Fill it as a [`Sink`] (reset truncates, write appends). Commit only after the bytes were
/// verified; dropping it uncommitted deletes the temp file.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mirror_core::Sink as _;
/// use mirror_store::Store;
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let (name, vers) = ("demo".parse()?, "0.1.0".parse()?);
/// let mut pending = store.begin(&name, &vers)?;
/// pending.write(b"crate bytes").await?;
/// pending.finish().await?;
/// assert!(!store.crate_path(&name, &vers).exists());
/// let path = pending.commit().await?;
/// assert_eq!(std::fs::read(path)?, b"crate bytes");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PendingCrate {
    file: std::fs::File,
    temp: TempGuard,
    dest: PathBuf,
    root: PathBuf,
}

impl PendingCrate {
    pub(crate) fn new(file: std::fs::File, temp: PathBuf, dest: PathBuf, root: PathBuf) -> Self {
        PendingCrate {
            file,
            temp: TempGuard(Some(temp)),
            dest,
            root,
        }
    }

    /// The temp file's path (in `.mirror/tmp`).
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// The path the file gets on commit.
    pub fn final_path(&self) -> &Path {
        &self.dest
    }

    /// Makes the file durable and moves it to its final path, returning that path.
    ///
    /// Steps, in one call on tokio's blocking pool: fsync the file; create missing parent
    /// directories (syncing the parent of each new one); rename the temp file over the final
    /// path (replacing any file there, which is how a repair replaces a corrupt copy); fsync the
    /// parent directory. Once this returns, the file survives a power cut under its final name.
    /// If it fails, the temp file is deleted and nothing appears under the final name.
    pub async fn commit(self) -> Result<PathBuf, Error> {
        let PendingCrate {
            file,
            mut temp,
            dest,
            root,
        } = self;
        let temp_path = temp.path().to_owned();
        let (from, to) = (temp_path.clone(), dest.clone());
        tokio::task::spawn_blocking(move || {
            file.sync_all().map_err(Error::io("syncing", &from))?;
            // Close before renaming: required on Windows, harmless elsewhere.
            drop(file);
            place(&root, &from, &to)
        })
        .await
        .map_err(|join| Error::io("committing", &temp_path)(io::Error::other(join)))??;
        temp.disarm();
        Ok(dest)
    }
}

/// Writes go straight to the temp file, on the calling task's thread, as each chunk arrives.
///
/// Writing a chunk into the page cache takes microseconds, as it does for curl; only the fsync
/// in [`PendingCrate::commit`], which can take milliseconds on a disk, goes to the blocking pool.
/// Sending every write there too (as `tokio::fs::File` does) cost two thread wake-ups per chunk
/// and copied each chunk from another core's cache, and was most of what a download cost (see
/// `docs/benchmarks.md`). When the kernel throttles writers under heavy writeback, the task
/// waits here, which is the back-pressure a download wants anyway.
impl Sink for PendingCrate {
    async fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk)
    }

    /// Nothing to do: writes are not buffered, and syncing is the job of
    /// [`PendingCrate::commit`].
    async fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Deletes the temp file when dropped, unless disarmed by a successful commit.
#[derive(Debug)]
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Best effort: a leftover is removed by `Store::clean_temp` at the next start.
            let _ = std::fs::remove_file(path);
        }
    }
}
