//! `Checksum`: a SHA-256 digest as the index's `cksum` field gives it.

use std::fmt;

use crate::Error;

/// A SHA-256 digest: 32 bytes, written as 64 hex digits.
///
/// ```
/// use mirror_core::Checksum;
/// let hex = "a".repeat(64);
/// let sum: Checksum = hex.parse().unwrap();
/// assert_eq!(sum.to_string(), hex);
/// assert!("abc".parse::<Checksum>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    /// Parses 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidChecksum {
            value: hex.chars().take(80).collect(),
        };
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(invalid)?;
            let lo = hex_value(pair[1]).ok_or_else(invalid)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Checksum(out))
    }

    /// Wraps a digest computed elsewhere.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Checksum(bytes)
    }

    /// The 32 digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Nibble values of hex digits; 0xff for anything else. A table, since every index line has 64.
static HEX: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

fn hex_value(b: u8) -> Option<u8> {
    let v = HEX[usize::from(b)];
    (v != 0xff).then_some(v)
}

impl std::str::FromStr for Checksum {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Checksum::from_hex(s)
    }
}

/// Lowercase hex, as crates.io writes it.
impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}
