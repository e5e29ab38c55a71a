//! `CrateName`: a crate name that is safe to use as a path component, valid by construction.

use std::fmt;

use crate::Error;

/// Longest crate name accepted. crates.io caps names at 64 characters; anything longer is hostile.
pub const MAX_NAME_LEN: usize = 64;

/// A crate name as published, in its original case.
///
/// Valid names are 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `-` and `_`, starting with a letter,
/// digit or `_`. That rules out everything that could escape a directory: `/`, `\`, `..`, NUL and
/// other control characters, absolute paths, empty names and look-alike unicode.
///
/// ```
/// use mirror_core::CrateName;
/// let name: CrateName = "Serde_JSON".parse().unwrap();
/// assert_eq!(name.as_str(), "Serde_JSON");
/// assert_eq!(name.to_lowercase(), "serde_json");
/// assert!("../etc".parse::<CrateName>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CrateName(Box<str>);

impl CrateName {
    /// Checks `name` and wraps it.
    pub fn new(name: &str) -> Result<Self, Error> {
        check_name(name).map_err(|reason| Error::InvalidName {
            name: name.into(),
            reason,
        })?;
        Ok(CrateName(name.into()))
    }

    /// The name exactly as published.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lowercased name, as used for index paths and name uniqueness.
    pub fn to_lowercase(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// Returns why `name` is not a valid crate name, if it is not.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err("name is empty");
    };
    if bytes.len() > MAX_NAME_LEN {
        return Err("name is longer than 64 characters");
    }
    if let Some(bad) = bytes
        .iter()
        .find(|b| !(b.is_ascii_alphanumeric() || **b == b'-' || **b == b'_'))
    {
        return Err(match bad {
            b'/' | b'\\' => "name contains a path separator",
            b'.' => "name contains a dot",
            0 => "name contains a NUL character",
            b if b.is_ascii_control() => "name contains a control character",
            b if !b.is_ascii() => "name contains a non-ASCII character",
            _ => "name contains a character other than ASCII letters, digits, '-' and '_'",
        });
    }
    if first == b'-' {
        return Err("name starts with '-'");
    }
    Ok(())
}

impl std::str::FromStr for CrateName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        CrateName::new(s)
    }
}

impl fmt::Display for CrateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CrateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for CrateName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
