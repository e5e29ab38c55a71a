//! `Verifier` and `Verified`: the one way to show that bytes matched an index checksum.

use sha2::{Digest as _, Sha256};

use crate::Checksum;

/// Bytes whose every byte was hashed and whose SHA-256 equalled the expected checksum.
///
/// Only [`Verifier::finish`] makes one, and only when the digest matched, so holding a `Verified`
/// proves that some code hashed matching bytes. Code that records a file as verified can ask for
/// one instead of trusting its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// Bytes hashed.
    pub len: u64,
    /// Their SHA-256, equal to the expected checksum.
    pub sha256: Checksum,
    /// Attempts made, the successful one included (1 unless a downloader says otherwise).
    pub attempts: u32,
    /// Where the bytes came from (for a download, the last URL after redirects; else empty).
    pub url: String,
}

impl Verified {
    /// The same proof, with where the bytes came from: the attempts a download took and its URL.
    /// It cannot change what was hashed.
    #[must_use]
    pub fn with_origin(mut self, attempts: u32, url: impl Into<String>) -> Self {
        self.attempts = attempts;
        self.url = url.into();
        self
    }
}

/// The digest of the bytes did not equal the expected checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("checksum mismatch: expected {expected}, got {actual} ({len} bytes)")]
pub struct Mismatch {
    /// The checksum the bytes had to have.
    pub expected: Checksum,
    /// The SHA-256 of the bytes hashed.
    pub actual: Checksum,
    /// Bytes hashed.
    pub len: u64,
}

/// Hashes bytes as they stream by and tells, at the end, whether they match a checksum.
///
/// ```
/// use mirror_core::{Checksum, Verifier};
///
/// let abc: Checksum = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".parse()?;
/// let mut verifier = Verifier::new(abc);
/// verifier.update(b"a");
/// verifier.update(b"bc");
/// let verified = verifier.finish()?;
/// assert_eq!((verified.len, verified.sha256), (3, abc));
///
/// let mut wrong = Verifier::new(abc);
/// wrong.update(b"abd");
/// assert_eq!(wrong.finish().unwrap_err().expected, abc);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Verifier {
    expected: Checksum,
    hasher: Sha256,
    len: u64,
}

impl Verifier {
    /// A verifier for bytes that must hash to `expected`.
    pub fn new(expected: Checksum) -> Self {
        Verifier {
            expected,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Takes the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes taken so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes were taken yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The checksum the bytes must have.
    pub fn expected(&self) -> &Checksum {
        &self.expected
    }

    /// [`Verified`] when the SHA-256 of every byte taken equals the expected checksum.
    pub fn finish(self) -> Result<Verified, Mismatch> {
        let actual = Checksum::from_bytes(self.hasher.finalize().into());
        if actual == self.expected {
            Ok(Verified {
                len: self.len,
                sha256: actual,
                attempts: 1,
                url: String::new(),
            })
        } else {
            Err(Mismatch {
                expected: self.expected,
                actual,
                len: self.len,
            })
        }
    }
}
