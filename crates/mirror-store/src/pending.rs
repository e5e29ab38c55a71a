//! `PendingCrate`: a crate file being downloaded, invisible until committed.

use std::io::{self, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use mirror_fetch::Sink;

use crate::Error;
use crate::fsutil::place;

/// A crate file being written: a temp file in `.mirror/tmp` that becomes
/// `crates/…/{name}-{vers}.crate` only through [`PendingCrate::commit`].
///
/// Fill it as a [`Sink`] (reset truncates, write appends; bytes are buffered in memory up to a
/// bound and written in large pieces). Commit only after the bytes were verified; dropping it
/// uncommitted deletes the temp file.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mirror_fetch::Sink as _;
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
    /// The temp file; `None` only after a blocking write that held it was cancelled.
    file: Option<std::fs::File>,
    /// Bytes not yet written to the file (at most about [`WRITE_AT`]).
    buf: Vec<u8>,
    /// Bytes already in the file.
    written: u64,
    temp: TempGuard,
    dest: PathBuf,
    root: PathBuf,
}

/// Bytes a download collects in memory before they go to its temp file. Every file operation is
/// a trip to tokio's blocking pool and back (two thread wake-ups); writing each chunk of a body
/// as it arrives made those trips, not the bytes, the cost of a download (see
/// `docs/benchmarks.md`). With this buffer most crate files (a few KB to tens of KB) reach the
/// disk in one write, inside the one blocking call of [`PendingCrate::commit`] that also syncs
/// and renames them, and a large one in writes of this size. It bounds the memory of a download
/// in flight.
const WRITE_AT: usize = 256 * 1024;

impl PendingCrate {
    pub(crate) fn new(file: std::fs::File, temp: PathBuf, dest: PathBuf, root: PathBuf) -> Self {
        PendingCrate {
            file: Some(file),
            buf: Vec::new(),
            written: 0,
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
    /// Steps, in one blocking call: write what is still buffered and fsync the file; create
    /// missing parent directories (syncing the parent of each new one); rename the temp file
    /// over the final path (replacing any file there, which is how a repair replaces a corrupt
    /// copy); fsync the parent directory. Once this returns, the file survives a power cut under
    /// its final name. If it fails, the temp file is deleted and nothing appears under the final
    /// name.
    pub async fn commit(self) -> Result<PathBuf, Error> {
        let PendingCrate {
            file,
            buf,
            written: _,
            mut temp,
            dest,
            root,
        } = self;
        let temp_path = temp.path().to_owned();
        let mut file = file.ok_or_else(|| Error::io("writing", &temp_path)(lost_file()))?;
        let (from, to) = (temp_path.clone(), dest.clone());
        tokio::task::spawn_blocking(move || {
            file.write_all(&buf).map_err(Error::io("writing", &from))?;
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

    /// Runs `op` on the file and the buffer in tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(&mut std::fs::File, &mut Vec<u8>) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let mut file = self.file.take().ok_or_else(lost_file)?;
        let mut buf = std::mem::take(&mut self.buf);
        let (file, buf, result) = tokio::task::spawn_blocking(move || {
            let result = op(&mut file, &mut buf);
            (file, buf, result)
        })
        .await
        .map_err(io::Error::other)?;
        self.file = Some(file);
        self.buf = buf;
        result
    }
}

/// The error of an operation on a pending file whose earlier write was cancelled midway.
fn lost_file() -> io::Error {
    io::Error::other("the temp file was lost when an earlier write was cancelled")
}

impl Sink for PendingCrate {
    async fn reset(&mut self) -> io::Result<()> {
        self.buf.clear();
        if self.written > 0 {
            self.blocking(|file, _| {
                file.set_len(0)?;
                file.rewind()?;
                Ok(())
            })
            .await?;
            self.written = 0;
        }
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= WRITE_AT {
            let len = self.buf.len() as u64;
            self.blocking(|file, buf| {
                file.write_all(buf)?;
                buf.clear();
                Ok(())
            })
            .await?;
            self.written += len;
        }
        Ok(())
    }

    /// Nothing to do: what is still buffered is written by [`PendingCrate::commit`], in the same
    /// blocking call that syncs the file.
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
