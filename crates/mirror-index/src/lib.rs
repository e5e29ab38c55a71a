//! Read a Cargo registry index: crate names, versions and checksums that are valid by
//! construction, index lines with their raw bytes kept, index paths, `config.json` and `dl`
//! templates, and three sources — a local directory, a git repository (through gix) and the sparse
//! HTTP protocol.
//!
//! Bad lines never stop a read: each is reported as a [`LineError`] naming its file and line, and
//! skipped, as Cargo does.
//!
//! ```
//! use mirror_index::IndexFile;
//! let data = b"{\"name\":\"ab\",\"vers\":\"1.0.0\",\"deps\":[],\"cksum\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"features\":{}}\nnot json\n";
//! let file = IndexFile::parse("2/ab", data);
//! assert_eq!(file.entries.len(), 1);
//! assert_eq!(file.problems[0].to_string().split(':').take(2).collect::<Vec<_>>(), ["2/ab", "2"]);
//! ```

mod base_url;
mod checksum;
mod config;
mod dir;
mod entry;
mod error;
mod file;
mod git;
mod name;
mod path;
mod read;
mod scan;
mod source;
mod sparse;
mod version;

pub use base_url::BaseUrl;
pub use checksum::Checksum;
pub use config::{DlTemplate, IndexConfig};
pub use dir::DirIndex;
pub use entry::{Dependency, IndexEntry, IndexRecord, LineErrorKind};
pub use error::Error;
pub use file::{IndexFile, LineError, MAX_LINE_LEN};
pub use git::{ChangeKind, FetchOutcome, GitId, GitIndex, GitTip, TreeChange};
pub use name::{CrateName, MAX_NAME_LEN};
pub use path::{index_path, index_prefix};
pub use read::{ReadOptions, ReadStats};
pub use source::SourceSpec;
pub use sparse::{SparseFile, SparseIndex, SparseOptions};
pub use version::{MAX_VERSION_LEN, Version};
