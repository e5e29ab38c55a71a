//! One index file split into entries, with every skipped line reported by file and line number.

use std::collections::HashSet;
use std::fmt;

use crate::entry::LineErrorKind;
use crate::{IndexEntry, path};

/// Longest index line accepted (4 MiB). Real lines reach a few hundred KB (crates with thousands of
/// features); a line of many MB is hostile.
pub const MAX_LINE_LEN: usize = 4 << 20;

/// A skipped index line: where it is and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct LineError {
    /// Index path of the file (`se/rd/serde`), or the URL for the sparse source.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: LineErrorKind,
}

/// The parsed content of one index file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Index path relative to the root, `/`-separated and lowercase (`se/rd/serde`).
    pub path: String,
    /// Valid entries in file order (publish order).
    pub entries: Vec<IndexEntry>,
    /// Lines that were skipped, in file order.
    pub problems: Vec<LineError>,
}

impl IndexFile {
    /// Splits `data` into lines and parses each. Blank lines are ignored; bad lines are reported in
    /// `problems` and skipped; a version that appears twice (for the same crate) keeps its first line. When `path` is a
    /// proper index path, lines naming a crate that belongs elsewhere are skipped too.
    pub fn parse(path: &str, data: &[u8]) -> IndexFile {
        let expected = path::name_of_index_path(path);
        let mut file = IndexFile {
            path: path.to_owned(),
            ..IndexFile::default()
        };
        let mut seen = HashSet::new();
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
        for (i, end) in ends.enumerate() {
            let line = &data[start..end];
            start = end + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let problem = |kind| LineError {
                file: path.to_owned(),
                line: i + 1,
                kind,
            };
            match IndexEntry::parse(line) {
                Ok(entry) => {
                    if let Some(expected) = expected
                        && !entry.name().as_str().eq_ignore_ascii_case(expected)
                    {
                        file.problems.push(problem(LineErrorKind::WrongFile {
                            name: entry.name().to_string(),
                        }));
                    } else if !seen.insert(key(&entry)) && is_duplicate(&file.entries, &entry) {
                        file.problems.push(problem(LineErrorKind::DuplicateVersion {
                            version: entry.vers().to_string(),
                        }));
                    } else {
                        file.entries.push(entry);
                    }
                }
                Err(kind) => file.problems.push(problem(kind)),
            }
            if start > data.len() {
                break;
            }
        }
        file
    }
}

/// A hash of the crate (case-insensitively) and version, to find duplicates without keeping
/// copies of the strings. FNV-1a: short keys, no need for DoS resistance since a collision only
/// costs a linear confirmation.
fn key(entry: &IndexEntry) -> u64 {
    let name = entry
        .name()
        .as_str()
        .bytes()
        .map(|b| b.to_ascii_lowercase());
    name.chain([0])
        .chain(entry.vers().as_str().bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// Whether `entries` already hold this crate and version: the confirmation of a hash match.
fn is_duplicate(entries: &[IndexEntry], entry: &IndexEntry) -> bool {
    entries.iter().any(|e| {
        e.vers().as_str() == entry.vers().as_str()
            && e.name()
                .as_str()
                .eq_ignore_ascii_case(entry.name().as_str())
    })
}

impl fmt::Display for IndexFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} entries, {} bad lines)",
            self.path,
            self.entries.len(),
            self.problems.len()
        )
    }
}
