//! Test registries for mirror-cli: a registry of real crates taken from the local cargo cache, a
//! crates.io-scale synthetic index, and git helpers that build reproducible bare index
//! repositories.
//!
//! Everything here is deterministic: the same inputs give byte-identical trees and the same git
//! commit ids, so `cargo xtask fixtures --check` can tell when a fixture is stale.
//!
//! ```no_run
//! use mirror_testkit::{RealRegistryOptions, real_registry};
//! let dir = tempfile::tempdir().unwrap();
//! let registry = real_registry(dir.path(), &RealRegistryOptions::with_dl("http://127.0.0.1:4000/dl")).unwrap();
//! for v in &registry.versions {
//!     println!("{} {} {}", v.name(), v.vers(), v.crate_file.display());
//! }
//! ```

mod cache;
mod error;
pub mod git;
pub mod mirror;
mod real;
pub mod server;
mod synthetic;

pub use error::{Error, Result};
pub use real::{
    DEFAULT_DL, RealRegistry, RealRegistryOptions, RealVersion, cargo_home, real_registry,
};
pub use synthetic::{
    DEFAULT_CRATES, DEFAULT_SEED, SyntheticIndex, SyntheticOptions, synthetic_index,
};
