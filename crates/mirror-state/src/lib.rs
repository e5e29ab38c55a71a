//! The record of a mirror: which versions are verified on disk, which failed (with their class
//! and attempt count), which were removed upstream (tombstones), and the sync markers (last index
//! commit and tree, the learned CDN template, counters).
//!
//! Backed by sled, but no sled type is part of this API, so the engine can be swapped. A
//! [`State`] lives in one directory (a mirror uses `<dest>/.mirror/state`): `LOCK`, the advisory
//! lock naming its holder, `sled/`, the database, and `INTEGRITY`, what the database held when
//! the last run that changed it ended, checked on open so that data the engine dropped while
//! recovering from a damaged file is refused, not trusted ([`Error::Damaged`]). The schema is versioned and migrated on
//! open (see [`SCHEMA_VERSION`]).
//!
//! The state never says a version is verified unless its caller verified it; see the contract on
//! [`State`].
//!
//! ```
//! use mirror_core::{Checksum, CrateName, Verifier, Version};
//! use mirror_state::{State, StateOptions, Status};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let options = StateOptions { holder: "mirror-cli sync".into(), ..StateOptions::default() };
//! let state = State::open(dir.path(), options).unwrap();
//! let (name, vers) = (CrateName::new("serde").unwrap(), Version::new("1.0.228").unwrap());
//! // The SHA-256 of "abc", as the index would give it.
//! let cksum: Checksum =
//!     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".parse().unwrap();
//!
//! let failed = state.mark_failed(&name, &vers, cksum, "not_found", "404 from the CDN").unwrap();
//! assert!(matches!(failed.status, Status::Failed { attempts: 1, .. }));
//!
//! // Only a `Verifier` that hashed matching bytes makes the proof `mark_verified` asks for.
//! let mut verifier = Verifier::new(cksum);
//! verifier.update(b"abc");
//! let proof = verifier.finish().unwrap();
//! state.mark_verified(&name, &vers, &proof).unwrap();
//! assert!(state.get(&name, &vers).unwrap().unwrap().is_verified());
//! state.flush().unwrap();
//! ```

mod error;
mod integrity;
mod lock;
mod record;
mod schema;
mod state;

pub use error::Error;
pub use record::{
    MAX_KIND_LEN, MAX_MESSAGE_LEN, Record, Status, Tombstone, decode_record, encode_record,
};
pub use schema::SCHEMA_VERSION;
pub use state::{Batch, Counts, Records, State, StateOptions, Tombstones};
