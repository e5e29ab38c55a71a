//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong opening, reading or writing the state.
///
/// Bad data on disk is never a panic: a record, tombstone or meta value that cannot be decoded is
/// reported as [`Error::CorruptRecord`] or [`Error::CorruptMeta`] naming its key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`creating`, `locking`, ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another [`crate::State`] in this process) has the state open.
    #[error("state lock {path} is held by {holder}; is another sync running on this mirror?")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as the holder wrote it (`pid 1234 (mirror-cli sync)`), or
        /// `an unknown process` when the file says nothing readable.
        holder: String,
    },
    /// The database engine failed (I/O below it, or its own corruption checks).
    #[error("state database {path}: {source}")]
    Database {
        /// The database directory.
        path: PathBuf,
        /// The engine's error. Boxed so that no engine type is part of this API.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The database was written by a newer build with a schema this build does not know.
    #[error(
        "state database {path} has schema version {found}, newer than version {supported} that \
         this build understands; use a newer build"
    )]
    SchemaTooNew {
        /// The database directory.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The newest version this build knows ([`crate::SCHEMA_VERSION`]).
        supported: u32,
    },
    /// A stored record or tombstone (or its key) cannot be decoded.
    #[error("corrupt state record {key}: {reason}")]
    CorruptRecord {
        /// The key, printed as `name vers` with non-printable bytes escaped.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored meta value cannot be decoded (not UTF-8, not a number where one is expected).
    #[error("corrupt state meta value {key:?}: {reason}")]
    CorruptMeta {
        /// The meta key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database does not hold what its integrity record, written when the last run that
    /// changed it ended, says it held (the engine dropped data while recovering from a damaged
    /// file, which it does without an error), or the engine itself found its files corrupt.
    /// The state cannot be trusted; the message names the recovery.
    #[error(
        "state {path} is damaged: {problems}. It cannot be trusted: move it aside and sync again (the sync hashes the \
         files in place, records them again and rebuilds the removals and the base URL from \
         the published index; give --index again if the mirror has no other record of its \
         source): mv {path} {path}.damaged",
        path = path.display()
    )]
    Damaged {
        /// The state directory.
        path: PathBuf,
        /// What does not match the integrity record, or what the engine found.
        problems: String,
    },
    /// A write was asked of a state opened with [`crate::State::open_read_only`].
    #[error("state {path} is open read-only: {action} needs write access to it", path = path.display())]
    ReadOnly {
        /// The state directory.
        path: PathBuf,
        /// What was asked.
        action: &'static str,
    },
    /// [`crate::State::set_meta`] or [`crate::State::remove_meta`] was asked to touch a key
    /// the state manages itself.
    #[error("meta key {key:?} is reserved by the state database")]
    ReservedKey {
        /// The key.
        key: String,
    },
}

impl Error {
    /// Whether this is a failure to write where the process has no write access (a read-only
    /// file system, or files of another user): [`crate::State::open_read_only`] may still
    /// read the state.
    pub fn is_not_writable(&self) -> bool {
        matches!(
            self,
            Error::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                )
        )
    }

    pub(crate) fn db(path: &std::path::Path, source: sled::Error) -> Error {
        // The engine's own checks found a damaged file it could not recover from: the same
        // recovery as for damage the integrity record finds.
        if let sled::Error::Corruption { .. } = source
            && let Some(dir) = path.parent()
        {
            return Error::Damaged {
                path: dir.to_path_buf(),
                problems: "the database engine found corrupt data in its files".to_owned(),
            };
        }
        Error::Database {
            path: path.to_path_buf(),
            source: Box::new(source),
        }
    }
}
