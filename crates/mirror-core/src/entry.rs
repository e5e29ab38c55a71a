//! One index line: the cheap view (`IndexEntry`) and the full Cargo schema (`IndexRecord`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::{Checksum, CrateName, Version};

/// One version of a crate as its index line describes it, with the line's raw bytes kept.
///
/// Parsing reads only `name`, `vers`, `cksum` and `yanked`; `deps`, `features` and everything else
/// are skipped without being built. Call [`IndexEntry::record`] for the full schema.
///
/// ```
/// use mirror_core::IndexEntry;
/// let line = br#"{"name":"a","vers":"0.1.0","deps":[],"cksum":"0000000000000000000000000000000000000000000000000000000000000000","features":{},"yanked":false,"future":1}"#;
/// let entry = IndexEntry::parse(line).unwrap();
/// assert_eq!(entry.name().as_str(), "a");
/// assert_eq!(entry.raw(), line);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct IndexEntry {
    name: CrateName,
    vers: Version,
    cksum: Checksum,
    yanked: bool,
    raw: Box<[u8]>,
}

/// Why one index line was skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineErrorKind {
    /// The line is not UTF-8.
    #[error("line is not valid UTF-8")]
    Utf8,
    /// The line is not a JSON object of the expected shape (a missing field lands here too).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The `name` field is not a valid, path-safe crate name.
    #[error("invalid crate name {name:?}: {reason}")]
    Name {
        /// The offending name (truncated when long).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `vers` field is not valid semver or is too long.
    #[error("invalid version {version:?}: {reason}")]
    Version {
        /// The offending version (truncated when long).
        version: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `cksum` field is not 64 hex digits.
    #[error("invalid checksum {0:?}: expected 64 hex digits")]
    Checksum(String),
    /// The line names a crate whose index file is elsewhere.
    #[error("crate {name:?} does not belong in this index file")]
    WrongFile {
        /// The name the line gives.
        name: String,
    },
    /// The same version appears on an earlier line of the same file.
    #[error("version {version} appears twice; the first line is kept")]
    DuplicateVersion {
        /// The repeated version.
        version: String,
    },
    /// A file in the index tree whose path is not where any crate's index file belongs.
    #[error("not an index file: its path does not match the index layout")]
    NotAnIndexFile,
    /// The line is longer than [`crate::MAX_LINE_LEN`].
    #[error("line is {0} bytes, more than the limit")]
    TooLong(usize),
}

/// Keeps error messages short when a hostile line carries megabytes in one field.
fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl IndexEntry {
    /// Parses one index line (without its newline). Unknown fields are ignored.
    pub fn parse(line: &[u8]) -> Result<Self, LineErrorKind> {
        if line.len() > crate::MAX_LINE_LEN {
            return Err(LineErrorKind::TooLong(line.len()));
        }
        let text = std::str::from_utf8(line).map_err(|_| LineErrorKind::Utf8)?;
        let light = crate::scan::scan(text).map_err(LineErrorKind::Json)?;
        let name = CrateName::new(&light.name).map_err(|e| match e {
            crate::Error::InvalidName { reason, .. } => LineErrorKind::Name {
                name: clip(&light.name),
                reason,
            },
            other => LineErrorKind::Json(other.to_string()),
        })?;
        let vers = Version::new(&light.vers).map_err(|e| match e {
            crate::Error::InvalidVersion { reason, .. } => LineErrorKind::Version {
                version: clip(&light.vers),
                reason,
            },
            other => LineErrorKind::Json(other.to_string()),
        })?;
        let cksum = Checksum::from_hex(&light.cksum)
            .map_err(|_| LineErrorKind::Checksum(clip(&light.cksum)))?;
        Ok(IndexEntry {
            name,
            vers,
            cksum,
            yanked: light.yanked.unwrap_or(false),
            raw: line.into(),
        })
    }

    /// The crate name, in its published case.
    pub fn name(&self) -> &CrateName {
        &self.name
    }

    /// The version.
    pub fn vers(&self) -> &Version {
        &self.vers
    }

    /// The SHA-256 of the `.crate` file.
    pub fn cksum(&self) -> &Checksum {
        &self.cksum
    }

    /// Whether the version is yanked.
    pub fn yanked(&self) -> bool {
        self.yanked
    }

    /// The line exactly as the index holds it, without the newline.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Parses the whole line into the full Cargo schema.
    pub fn record(&self) -> Result<IndexRecord, LineErrorKind> {
        serde_json::from_slice(&self.raw).map_err(|e| LineErrorKind::Json(e.to_string()))
    }
}

impl fmt::Debug for IndexEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexEntry")
            .field("name", &self.name)
            .field("vers", &self.vers)
            .field("cksum", &self.cksum)
            .field("yanked", &self.yanked)
            .finish_non_exhaustive()
    }
}

/// Every field of an index line as the Cargo book documents it. Unknown fields are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct IndexRecord {
    /// Crate name.
    pub name: String,
    /// Version.
    pub vers: String,
    /// Direct dependencies.
    pub deps: Vec<Dependency>,
    /// SHA-256 of the `.crate` file, hex.
    pub cksum: String,
    /// Features and what each enables.
    pub features: BTreeMap<String, Vec<String>>,
    /// Features using the newer syntax (`dep:`, `?`), present when `v` is 2.
    #[serde(default)]
    pub features2: Option<BTreeMap<String, Vec<String>>>,
    /// Whether the version is yanked.
    #[serde(default)]
    pub yanked: bool,
    /// The native library this package links, if any.
    #[serde(default)]
    pub links: Option<String>,
    /// Index format version of this line (1 when absent).
    #[serde(default)]
    pub v: Option<u32>,
    /// Minimum supported Rust version.
    #[serde(default)]
    pub rust_version: Option<String>,
    /// When the version was published (RFC 3339), on newer lines.
    #[serde(default)]
    pub pubtime: Option<String>,
}

/// One dependency of an index record.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Dependency {
    /// Name of the dependency (the renamed name if `package` is set).
    pub name: String,
    /// Semver requirement.
    pub req: String,
    /// Features enabled on the dependency.
    #[serde(default)]
    pub features: Vec<String>,
    /// Whether it is optional.
    #[serde(default)]
    pub optional: bool,
    /// Whether default features are enabled.
    #[serde(default = "default_true")]
    pub default_features: bool,
    /// Target platform (`cfg(...)` or a triple), if platform-specific.
    #[serde(default)]
    pub target: Option<String>,
    /// `normal`, `dev` or `build`; absent means `normal`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Registry index URL when the dependency is from another registry.
    #[serde(default)]
    pub registry: Option<String>,
    /// Real package name when renamed.
    #[serde(default)]
    pub package: Option<String>,
}

fn default_true() -> bool {
    true
}
