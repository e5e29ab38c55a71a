//! `Version`: a semver version that is safe to use in a file name, with build metadata kept.

use std::cmp::Ordering;
use std::fmt;

use crate::Error;

/// Longest version string accepted.
pub const MAX_VERSION_LEN: usize = 128;

/// A published version: valid semver (as Cargo parses it), text kept exactly as published.
///
/// Build metadata (`1.0.0+abc`) is part of the text. Semver's grammar admits only ASCII letters,
/// digits, `-`, `.` (never empty between dots) and `+`, so a valid version can never hold `/`, `\`,
/// `..`, NUL or control characters.
///
/// ```
/// use mirror_core::Version;
/// let v: Version = "1.0.0+build.5".parse().unwrap();
/// assert_eq!(v.as_str(), "1.0.0+build.5");
/// assert_eq!(v.url_encoded(), "1.0.0%2Bbuild.5");
/// assert!("1.0".parse::<Version>().is_err());
/// ```
#[derive(Clone)]
pub struct Version {
    raw: Box<str>,
    semver: semver::Version,
}

impl Version {
    /// Parses and wraps `version`.
    pub fn new(version: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidVersion {
            version: version.into(),
            reason,
        };
        if version.len() > MAX_VERSION_LEN {
            return Err(invalid(format!(
                "version is longer than {MAX_VERSION_LEN} characters"
            )));
        }
        let semver = semver::Version::parse(version).map_err(|e| invalid(e.to_string()))?;
        Ok(Version {
            raw: version.into(),
            semver,
        })
    }

    /// The version exactly as published (with a literal `+`).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The version as sent in a URL path: `+` becomes `%2B`.
    pub fn url_encoded(&self) -> String {
        self.raw.replace('+', "%2B")
    }

    /// The parsed semver value, for ordering and matching.
    pub fn semver(&self) -> &semver::Version {
        &self.semver
    }
}

impl std::str::FromStr for Version {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Version::new(s)
    }
}

/// Two versions are equal when their text is equal: `1.0.0+a` and `1.0.0+b` are different files.
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for Version {}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

/// Semver order (build metadata breaks ties, as in the `semver` crate), then the text.
impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.semver
            .cmp(&other.semver)
            .then_with(|| self.raw.cmp(&other.raw))
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.raw, f)
    }
}
