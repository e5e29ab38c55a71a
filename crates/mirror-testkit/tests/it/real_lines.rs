//! Snapshot of every real index line in the real-crates registry, through the full schema: real
//! bytes carry real quirks (`+` versions, `features2` with `v: 2`, `pubtime`, `rust_version`,
//! renamed and target-specific dependencies) that hand-written fixtures miss.
//!
//! Every real line is parsed and checked; the snapshot holds the lines of a fixed set of crates
//! that building this workspace on Linux always downloads, at their `Cargo.lock` versions. What
//! else sits in the cargo cache depends on the machine (`cargo metadata` downloads every
//! platform's crates; a plain build only the host's), so it is checked but not snapshotted. A
//! dependency update changes the snapshot, and the diff is worth a look (`cargo insta review`).

use std::collections::HashSet;
use std::fmt::Write;

use mirror_testkit::{RealRegistryOptions, real_registry};

/// Crates every build of this workspace downloads on Linux, between them holding the quirks
/// below: `features2` with `v: 2`, `pubtime`, `rust_version`, `links`, renamed and
/// target-specific dependencies.
const SNAPSHOTTED: &[&str] = &[
    "anyhow",
    "aws-lc-sys",
    "axum",
    "clap",
    "gix",
    "governor",
    "h2",
    "hyper",
    "memchr",
    "rayon",
    "reqwest",
    "semver",
    "serde",
    "serde_json",
    "sha2",
    "sled",
    "tempfile",
    "thiserror",
    "tokio",
    "tracing",
    "url",
];

#[test]
fn real_lines_parse_fully() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = real_registry(
        tmp.path(),
        &RealRegistryOptions::with_dl("http://127.0.0.1:9/dl"),
    )
    .unwrap();
    let locked = locked_packages();
    let mut out = String::new();
    let (mut v2, mut pubtime, mut links, mut renamed, mut targeted) = (0, 0, 0, 0, 0);
    for version in &registry.versions {
        // Every real line in the cache parses fully and agrees with its cheap view.
        let record = version
            .entry
            .record()
            .unwrap_or_else(|e| panic!("{}: {e}", version.name()));
        assert_eq!(record.name, version.name().as_str());
        assert_eq!(record.vers, version.vers().as_str());
        assert_eq!(record.cksum, version.cksum().to_string());
        let key = (version.name().to_string(), version.vers().to_string());
        if !SNAPSHOTTED.contains(&version.name().as_str()) || !locked.contains(&key) {
            continue;
        }
        v2 += usize::from(record.v == Some(2) && record.features2.is_some());
        pubtime += usize::from(record.pubtime.is_some());
        links += usize::from(record.links.is_some());
        renamed += record.deps.iter().filter(|d| d.package.is_some()).count();
        targeted += record.deps.iter().filter(|d| d.target.is_some()).count();
        writeln!(
            out,
            "{} {} deps={} features={} features2={} v={} rust_version={} links={} pubtime={} yanked={}",
            record.name,
            record.vers,
            record.deps.len(),
            record.features.len(),
            record.features2.as_ref().map_or(0, |f| f.len()),
            record.v.unwrap_or(1),
            record.rust_version.as_deref().unwrap_or("-"),
            record.links.as_deref().unwrap_or("-"),
            record.pubtime.is_some(),
            record.yanked,
        )
        .unwrap();
    }
    // The quirks this test exists for are really in the data.
    assert!(
        v2 > 0 && pubtime > 0 && links > 0 && renamed > 0 && targeted > 0,
        "v2={v2} pubtime={pubtime} links={links} renamed={renamed} targeted={targeted}"
    );
    insta::assert_snapshot!(out);
}

/// The (name, version) pairs of the workspace's `Cargo.lock`.
fn locked_packages() -> HashSet<(String, String)> {
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let text = std::fs::read_to_string(lock).unwrap();
    let mut out = HashSet::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_owned());
        } else if let Some(v) = line.strip_prefix("version = ")
            && let Some(n) = name.take()
        {
            out.insert((n, v.trim_matches('"').to_owned()));
        }
    }
    out
}
