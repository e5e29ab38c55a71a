//! `Record`, `Status` and `Tombstone`, their keys, and the compact binary encoding of values.
//!
//! Keys are `{name}\0{vers}` (a tombstone for a whole crate is `{name}\0`). A NUL cannot occur in
//! a valid name or version, so the split is unambiguous, and `{name}\0` is a prefix of exactly the
//! keys of that crate (not of `{name}-foo`).
//!
//! Record value, encoding version 1 (integers little-endian):
//!
//! ```text
//! u8  encoding version (1)
//! [u8; 32] cksum
//! u64 size
//! u8  status tag: 0 verified, 1 failed
//!   verified: u64 at
//!   failed:   u32 attempts, u64 last_attempt, u8 kind length, kind, u16 message length, message
//! ```
//!
//! Trailing bytes, unknown versions or tags, short values, texts longer than the encoder writes
//! ([`MAX_KIND_LEN`], [`MAX_MESSAGE_LEN`]) and non-UTF-8 text are all errors.

use mirror_core::{Checksum, CrateName, Version};

use crate::Error;

/// The longest failure `kind` stored; longer kinds are cut (at a character boundary).
pub const MAX_KIND_LEN: usize = 64;
/// The longest failure `message` stored; longer messages are cut (at a character boundary).
pub const MAX_MESSAGE_LEN: usize = 4096;

const RECORD_V1: u8 = 1;
const TOMBSTONE_V1: u8 = 1;
const TAG_VERIFIED: u8 = 0;
const TAG_FAILED: u8 = 1;

/// What the state knows about one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The checksum the version was verified against, or was expected to have when it failed.
    pub cksum: Checksum,
    /// Size of the verified file in bytes; for a failure, the size of an earlier verified copy
    /// with the same checksum, or 0.
    pub size: u64,
    /// Verified or failed.
    pub status: Status,
}

/// Whether a version is verified on disk, or failed and is to be retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The file's SHA-256 matched [`Record::cksum`] and the file was in place when this was
    /// recorded.
    Verified {
        /// When, in seconds since the Unix epoch. 0 means unknown (migrated from schema 0).
        at: u64,
    },
    /// The last attempt failed.
    Failed {
        /// A short class such as `not_found` or `checksum_mismatch` (at most
        /// [`MAX_KIND_LEN`] bytes).
        kind: String,
        /// A human-readable message (at most [`MAX_MESSAGE_LEN`] bytes).
        message: String,
        /// How many consecutive attempts failed for this checksum.
        attempts: u32,
        /// When the last attempt was, in seconds since the Unix epoch.
        last_attempt: u64,
    },
}

impl Record {
    /// Whether the status is [`Status::Verified`].
    pub fn is_verified(&self) -> bool {
        matches!(self.status, Status::Verified { .. })
    }
}

/// A version, or a whole crate, that the upstream index no longer lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    /// The crate.
    pub name: CrateName,
    /// The version, or `None` when the whole crate was removed.
    pub vers: Option<Version>,
    /// When the removal was noticed, in seconds since the Unix epoch.
    pub at: u64,
}

pub(crate) fn key(name: &CrateName, vers: Option<&Version>) -> Vec<u8> {
    let vers = vers.map_or("", Version::as_str);
    let mut key = Vec::with_capacity(name.as_str().len() + 1 + vers.len());
    key.extend_from_slice(name.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(vers.as_bytes());
    key
}

pub(crate) fn crate_prefix(name: &CrateName) -> Vec<u8> {
    key(name, None)
}

/// Prints a key as `name vers`, escaping anything that is not printable ASCII.
pub(crate) fn display_key(key: &[u8]) -> String {
    match key.iter().position(|&b| b == 0) {
        Some(nul) if nul + 1 == key.len() => key[..nul].escape_ascii().to_string(),
        Some(nul) => format!(
            "{} {}",
            key[..nul].escape_ascii(),
            key[nul + 1..].escape_ascii()
        ),
        None => key.escape_ascii().to_string(),
    }
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> Error {
    Error::CorruptRecord {
        key: display_key(key),
        reason: reason.into(),
    }
}

/// Splits a key into name and version; the version is `None` for a whole-crate key.
pub(crate) fn decode_key(key: &[u8]) -> Result<(CrateName, Option<Version>), Error> {
    let nul = key
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| corrupt(key, "key has no NUL separator"))?;
    let name = std::str::from_utf8(&key[..nul]).map_err(|_| corrupt(key, "name is not UTF-8"))?;
    let name = CrateName::new(name).map_err(|e| corrupt(key, e.to_string()))?;
    let vers = &key[nul + 1..];
    if vers.is_empty() {
        return Ok((name, None));
    }
    let vers = std::str::from_utf8(vers).map_err(|_| corrupt(key, "version is not UTF-8"))?;
    let vers = Version::new(vers).map_err(|e| corrupt(key, e.to_string()))?;
    Ok((name, Some(vers)))
}

/// Encodes a record value (the current encoding version). Over-long `kind` and `message` are
/// cut at a character boundary to [`MAX_KIND_LEN`] and [`MAX_MESSAGE_LEN`] bytes.
pub fn encode_record(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(RECORD_V1);
    out.extend_from_slice(record.cksum.as_bytes());
    out.extend_from_slice(&record.size.to_le_bytes());
    match &record.status {
        Status::Verified { at } => {
            out.push(TAG_VERIFIED);
            out.extend_from_slice(&at.to_le_bytes());
        }
        Status::Failed {
            kind,
            message,
            attempts,
            last_attempt,
        } => {
            out.push(TAG_FAILED);
            out.extend_from_slice(&attempts.to_le_bytes());
            out.extend_from_slice(&last_attempt.to_le_bytes());
            let kind = cut(kind, MAX_KIND_LEN);
            out.push(u8::try_from(kind.len()).expect("cut to MAX_KIND_LEN, which fits in u8"));
            out.extend_from_slice(kind.as_bytes());
            let message = cut(message, MAX_MESSAGE_LEN);
            out.extend_from_slice(
                &u16::try_from(message.len())
                    .expect("cut to MAX_MESSAGE_LEN, which fits in u16")
                    .to_le_bytes(),
            );
            out.extend_from_slice(message.as_bytes());
        }
    }
    out
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Decodes one stored record: its key (`{name}\0{vers}`) and its value.
///
/// Any defect — a key without a version, an invalid name or version, an unknown encoding
/// version or status tag, a short or over-long value, a `kind` or `message` longer than
/// [`MAX_KIND_LEN`] or [`MAX_MESSAGE_LEN`], non-UTF-8 text — is an
/// [`Error::CorruptRecord`] naming the key. This never panics, whatever the bytes.
///
/// ```
/// use mirror_state::{decode_record, encode_record, Record, Status};
/// let record = Record {
///     cksum: mirror_core::Checksum::from_bytes([7; 32]),
///     size: 1234,
///     status: Status::Verified { at: 1_700_000_000 },
/// };
/// let (name, vers, back) = decode_record(b"serde\x001.0.0", &encode_record(&record)).unwrap();
/// assert_eq!((name.as_str(), vers.as_str()), ("serde", "1.0.0"));
/// assert_eq!(back, record);
/// let err = decode_record(b"serde\x001.0.0", b"\x01garbage").unwrap_err();
/// assert!(err.to_string().starts_with("corrupt state record serde 1.0.0: "));
/// ```
pub fn decode_record(key: &[u8], value: &[u8]) -> Result<(CrateName, Version, Record), Error> {
    let (name, vers) = decode_key(key)?;
    let vers = vers.ok_or_else(|| corrupt(key, "record key has no version"))?;
    let record = decode_value(value).map_err(|reason| corrupt(key, reason))?;
    Ok((name, vers, record))
}

/// Decodes a record value alone; the error is a reason for the caller to attach to the key.
pub(crate) fn decode_value(value: &[u8]) -> Result<Record, String> {
    let mut r = Reader(value);
    let version = r.u8()?;
    if version != RECORD_V1 {
        return Err(format!("unknown record encoding version {version}"));
    }
    let cksum = Checksum::from_bytes(r.array()?);
    let size = r.u64()?;
    let status = match r.u8()? {
        TAG_VERIFIED => Status::Verified { at: r.u64()? },
        TAG_FAILED => {
            let attempts = u32::from_le_bytes(r.array()?);
            let last_attempt = r.u64()?;
            // The encoder cuts texts to these limits, so a longer one is not something it wrote;
            // accepting it would decode to a record that encodes to other bytes.
            let kind_len = usize::from(r.u8()?);
            if kind_len > MAX_KIND_LEN {
                return Err(format!(
                    "kind is {kind_len} bytes, more than {MAX_KIND_LEN}"
                ));
            }
            let kind = r.text(kind_len, "kind")?;
            let message_len = usize::from(u16::from_le_bytes(r.array()?));
            if message_len > MAX_MESSAGE_LEN {
                return Err(format!(
                    "message is {message_len} bytes, more than {MAX_MESSAGE_LEN}"
                ));
            }
            let message = r.text(message_len, "message")?;
            Status::Failed {
                kind,
                message,
                attempts,
                last_attempt,
            }
        }
        tag => return Err(format!("unknown status tag {tag}")),
    };
    if !r.0.is_empty() {
        return Err(format!("{} trailing bytes", r.0.len()));
    }
    Ok(Record {
        cksum,
        size,
        status,
    })
}

pub(crate) fn encode_tombstone(at: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(TOMBSTONE_V1);
    out.extend_from_slice(&at.to_le_bytes());
    out
}

pub(crate) fn decode_tombstone(key: &[u8], value: &[u8]) -> Result<Tombstone, Error> {
    let (name, vers) = decode_key(key)?;
    let mut r = Reader(value);
    let at = (|| {
        let version = r.u8()?;
        if version != TOMBSTONE_V1 {
            return Err(format!("unknown tombstone encoding version {version}"));
        }
        let at = r.u64()?;
        if !r.0.is_empty() {
            return Err(format!("{} trailing bytes", r.0.len()));
        }
        Ok(at)
    })()
    .map_err(|reason| corrupt(key, format!("tombstone: {reason}")))?;
    Ok(Tombstone { name, vers, at })
}

/// A cursor over a value that fails (never panics) when the value is too short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "value ends early: needed {n} more bytes, {} left",
                self.0.len()
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("take returned exactly N bytes"))
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn text(&mut self, n: usize, what: &str) -> Result<String, String> {
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}
