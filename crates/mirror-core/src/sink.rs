//! `Sink`: where the bytes of a download go while they are hashed.

use std::future::Future;
use std::io;

/// Where a download's body is written.
///
/// A download may take several attempts; before each one (the first included) the fetcher calls
/// [`Sink::reset`], so a retry never appends to the partial body of a failed attempt. After a
/// download is verified the sink holds exactly the verified bytes; after a failure it holds
/// something that must be thrown away.
///
/// Implemented for `Vec<u8>` (reset clears it) and, with the `tokio` feature, for
/// `tokio::fs::File` (reset rewinds and truncates it, finish flushes it; syncing to disk is left
/// to the caller).
///
/// ```
/// use std::io;
/// use mirror_core::Sink;
///
/// /// Counts bytes and keeps none.
/// #[derive(Default)]
/// struct Counter(u64);
///
/// impl Sink for Counter {
///     async fn reset(&mut self) -> io::Result<()> {
///         self.0 = 0;
///         Ok(())
///     }
///     async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
///         self.0 += chunk.len() as u64;
///         Ok(())
///     }
/// }
/// ```
pub trait Sink: Send {
    /// Forgets everything written so far.
    fn reset(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Takes the next chunk of the body.
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = io::Result<()>> + Send;

    /// Called once the whole body was written, before the checksum is compared. The default does
    /// nothing.
    fn finish(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}

impl Sink for Vec<u8> {
    async fn reset(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

// Behind the `tokio` feature: the core itself carries no async runtime.
#[cfg(feature = "tokio")]
impl Sink for tokio::fs::File {
    async fn reset(&mut self) -> io::Result<()> {
        tokio::io::AsyncSeekExt::rewind(self).await?;
        self.set_len(0).await
    }

    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        tokio::io::AsyncWriteExt::write_all(self, chunk).await
    }

    async fn finish(&mut self) -> io::Result<()> {
        tokio::io::AsyncWriteExt::flush(self).await
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn reset(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        (**self).reset()
    }

    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
        (**self).write(chunk)
    }

    fn finish(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        (**self).finish()
    }
}
