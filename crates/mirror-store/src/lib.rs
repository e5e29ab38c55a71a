//! The mirror's on-disk layout and atomic writes.
//!
//! A [`Store`] is the mirror directory (`--dest`). It knows where everything lives
//! (`crates/{lowerprefix}/{name}/{name}-{version}.crate`, private data under `.mirror/`, the
//! published index under `index/`), writes crate files so they appear under their final name only
//! once complete and durable ([`Store::begin`], [`PendingCrate::commit`], [`Store::write_atomic`]),
//! moves bad files aside instead of deleting them ([`Store::quarantine`]), and lists what is on
//! disk for verify ([`Store::walk`], [`hash_file`]).
//!
//! Invariants: nothing is written outside the root (paths come from validated names and versions,
//! and symlinks below the root are never followed); a file never shows under its final name before
//! it was committed; after a crash, everything in `.mirror/tmp` is garbage ([`Store::clean_temp`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mirror_core::{Checksum, Sink as _, Verifier};
//! use mirror_store::{Store, WalkEntry};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.clean_temp()?;
//!
//! let (name, vers) = ("Serde".parse()?, "1.0.0".parse()?);
//! let mut pending = store.begin(&name, &vers)?;
//! pending.reset().await?;
//! // The bytes are hashed as they are written; only a match makes the proof commit asks for.
//! let cksum: Checksum = "186287b2d987891f027b4bc8baaf621a3e5a4a73ec78e04b0f65dc309b1ccc03".parse()?;
//! let mut verifier = Verifier::new(cksum);
//! verifier.update(b"verified bytes");
//! pending.write(b"verified bytes").await?;
//! pending.finish().await?;
//! let path = pending.commit(&verifier.finish()?).await?;
//! assert!(path.ends_with("crates/se/rd/Serde/Serde-1.0.0.crate"));
//!
//! for entry in store.walk() {
//!     match entry? {
//!         WalkEntry::Crate { name, vers, size, .. } => assert_eq!((name.as_str(), vers.as_str(), size), ("Serde", "1.0.0", 14)),
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! # Ok(()) }
//! ```

mod base_url;
mod error;
mod fsutil;
mod hash;
mod layout;
mod pending;
mod published;
mod store;
mod walk;

pub use base_url::BaseUrl;
pub use error::Error;
pub use hash::{hash_file, verify_file};
pub use layout::{base_url_of_dl, config_json, dl_template, parse_crate_path};
pub use pending::PendingCrate;
pub use store::Store;
pub use walk::{Walk, WalkEntry};
