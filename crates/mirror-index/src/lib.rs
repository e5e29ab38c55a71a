//! Read a Cargo registry index from a local directory or a git repository (through gix), with the
//! ordered parallel reader they share. The types they produce (crate names, versions, checksums,
//! index lines with their raw bytes kept, index paths, `config.json` and `dl` templates) live in
//! `mirror-core` and are re-exported here, so `mirror_index::CrateName` is `mirror_core::CrateName`.
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
mod dir;
mod git;
mod read;
mod source;

pub use base_url::BaseUrl;
/// The index paths of `mirror-core`, under the module name the sources use.
mod path {
    pub(crate) use mirror_core::{index_path, name_of_index_path};
}

pub use dir::DirIndex;
pub use git::{ChangeKind, FetchOutcome, GitId, GitIndex, GitTip, TreeChange};
pub use mirror_core::{
    Checksum, CrateName, Dependency, DlTemplate, Error, IndexConfig, IndexEntry, IndexFile,
    IndexRecord, LineError, LineErrorKind, MAX_LINE_LEN, MAX_NAME_LEN, MAX_VERSION_LEN, Version,
    index_path, index_prefix,
};
pub use read::{ReadOptions, ReadStats};
pub use source::SourceSpec;
