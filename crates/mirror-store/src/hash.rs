//! `hash_file` and `verify_file`: SHA-256 of a file on disk, for verify and adoption.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read as _};
use std::path::Path;

use mirror_core::{Checksum, Mismatch, Verified, Verifier};
use sha2::{Digest as _, Sha256};

/// Read size. Large enough that syscalls vanish next to hashing; one buffer per thread is reused,
/// so hashing millions of small files allocates nothing per file.
const BUF_LEN: usize = 256 * 1024;

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads the file at `path` and returns its length and SHA-256.
///
/// sha2 picks the SHA-NI implementation at run time where the CPU has it. The function is
/// thread-safe and meant to be run on every core (for example from a rayon pool).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("abc");
/// std::fs::write(&path, b"abc")?;
/// let (len, sum) = mirror_store::hash_file(&path)?;
/// assert_eq!(len, 3);
/// assert_eq!(sum.to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
/// # Ok(()) }
/// ```
pub fn hash_file(path: &Path) -> io::Result<(u64, Checksum)> {
    let mut hasher = Sha256::new();
    let len = read_chunks(path, |chunk| hasher.update(chunk))?;
    Ok((len, Checksum::from_bytes(hasher.finalize().into())))
}

/// Reads the file at `path` through a [`Verifier`] for `expected`: the outer result is the read,
/// the inner one the comparison. A [`Verified`] from here proves the file's bytes matched.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("abc");
/// std::fs::write(&path, b"abc")?;
/// let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".parse()?;
/// let verified = mirror_store::verify_file(&path, abc)?.expect("the digest of abc");
/// assert_eq!((verified.len, verified.sha256), (3, abc));
/// std::fs::write(&path, b"abd")?;
/// assert!(mirror_store::verify_file(&path, abc)?.is_err());
/// # Ok(()) }
/// ```
pub fn verify_file(path: &Path, expected: Checksum) -> io::Result<Result<Verified, Mismatch>> {
    let mut verifier = Verifier::new(expected);
    read_chunks(path, |chunk| verifier.update(chunk))?;
    Ok(verifier.finish())
}

/// Feeds the file at `path` to `take` in chunks of the thread's buffer; returns its length.
fn read_chunks(path: &Path, mut take: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut file = File::open(path)?;
    BUF.with_borrow_mut(|buf| {
        if buf.len() != BUF_LEN {
            buf.resize(BUF_LEN, 0);
        }
        let mut len = 0u64;
        loop {
            match file.read(buf) {
                Ok(0) => break,
                Ok(n) => {
                    take(&buf[..n]);
                    len += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(len)
    })
}
