//! Helpers every xtask command may use: where the workspace and its target directory are, and a
//! seeded random number generator. It imports no other module of xtask.

use std::path::{Path, PathBuf};

/// The workspace root (xtask lives one level below it).
///
/// `cargo run` (so `cargo xtask`) says where xtask's manifest is at run time, and the release
/// children inherit it; the path compiled in is only the fallback. Checkouts of the workspace
/// that share one target directory share the built binary too, and the compiled-in path is then
/// whichever checkout built it last.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest_dir
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// The target directory: `CARGO_TARGET_DIR`, else `target/` under `root`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// SplitMix64: small, fast and the same everywhere, so the tree depends only on the seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-uniform in [lo, hi).
    pub(crate) fn log_uniform(&mut self, lo: f64, hi: f64) -> u64 {
        (lo * (hi / lo).powf(self.unit())) as u64
    }
}
