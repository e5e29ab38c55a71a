//! The shared types of mirror-cli, with no network, git or async runtime: crate names, versions
//! and checksums that are valid by construction, index lines with their raw bytes kept (and the
//! fast line scanner), index files and their line errors, index paths, `config.json` and `dl`
//! templates, the [`Sink`] a download is written to, and [`Verified`], which only [`Verifier`]
//! makes after hashing bytes that matched.
//!
//! The index sources (directory, git, sparse HTTP) live above this crate; `mirror-index`
//! re-exports everything here, so `mirror_index::CrateName` and `mirror_core::CrateName` are the
//! same type.
//!
//! ```
//! use mirror_core::IndexFile;
//! let data = b"{\"name\":\"ab\",\"vers\":\"1.0.0\",\"deps\":[],\"cksum\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"features\":{}}\nnot json\n";
//! let file = IndexFile::parse("2/ab", data);
//! assert_eq!(file.entries.len(), 1);
//! assert_eq!(file.problems[0].to_string().split(':').take(2).collect::<Vec<_>>(), ["2/ab", "2"]);
//! ```

mod checksum;
mod config;
mod entry;
mod error;
mod file;
mod name;
mod path;
mod scan;
mod sink;
mod verify;
mod version;

pub use checksum::Checksum;
pub use config::{DlTemplate, IndexConfig};
pub use entry::{Dependency, IndexEntry, IndexRecord, LineErrorKind};
pub use error::Error;
pub use file::{IndexFile, LineError, MAX_LINE_LEN};
pub use name::{CrateName, MAX_NAME_LEN};
pub use path::{index_path, index_prefix, name_of_index_path};
pub use sink::Sink;
pub use verify::{Mismatch, Verified, Verifier};
pub use version::{MAX_VERSION_LEN, Version};
