//! A registry of real crates: the `.crate` files and index lines that building this workspace left
//! in `$CARGO_HOME/registry`, laid out as a sparse tree, a bare git index and a CDN tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mirror_index::{Checksum, CrateName, IndexEntry, Version, index_path};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::{Error, Result, cache, git};

/// The `dl` written to `config.json` when none is given: where `mirror-cli serve` listens by
/// default.
pub const DEFAULT_DL: &str = "http://127.0.0.1:8080/api/v1/crates";

/// How [`real_registry`] builds its registry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RealRegistryOptions {
    /// The `dl` value of `config.json` (in `sparse/` and in the git index). Tests that serve the
    /// registry on a random port put that port here.
    pub dl: String,
    /// Cargo's home, where `registry/` is read from. `None`: `$CARGO_HOME`, else `$HOME/.cargo`.
    pub cargo_home: Option<PathBuf>,
}

impl Default for RealRegistryOptions {
    fn default() -> Self {
        RealRegistryOptions {
            dl: DEFAULT_DL.into(),
            cargo_home: None,
        }
    }
}

impl RealRegistryOptions {
    /// Options with the given `dl` and the default cargo home.
    pub fn with_dl(dl: impl Into<String>) -> Self {
        RealRegistryOptions {
            dl: dl.into(),
            ..Self::default()
        }
    }
}

/// A registry built by [`real_registry`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RealRegistry {
    /// The output directory given to [`real_registry`].
    pub root: PathBuf,
    /// The sparse-layout tree: `config.json` and one index file per crate.
    pub sparse: PathBuf,
    /// The CDN tree: `crates/{name}/{name}-{version}.crate`.
    pub cdn: PathBuf,
    /// The bare git repository whose one commit holds the same tree as `sparse`.
    pub git: PathBuf,
    /// The commit id of `git`'s `HEAD`.
    pub commit: String,
    /// `manifest.json`: every version with its checksum and crate file.
    pub manifest: PathBuf,
    /// Every version, crates in index-path order, each crate's versions in upstream order.
    pub versions: Vec<RealVersion>,
    /// Lines and files left out, each with the reason (bad checksum, unparsable line, ...).
    pub skipped: Vec<String>,
}

/// One version of a real registry.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RealVersion {
    /// The index line, its raw bytes kept.
    pub entry: IndexEntry,
    /// The `.crate` file under the CDN tree.
    pub crate_file: PathBuf,
    /// Size of the `.crate` file in bytes.
    pub size: u64,
}

impl RealVersion {
    /// The crate name, in its published case.
    pub fn name(&self) -> &CrateName {
        self.entry.name()
    }

    /// The version.
    pub fn vers(&self) -> &Version {
        self.entry.vers()
    }

    /// The SHA-256 of the `.crate` file, as the index line gives it (and as verified).
    pub fn cksum(&self) -> &Checksum {
        self.entry.cksum()
    }
}

/// Cargo's home directory: `$CARGO_HOME`, else `$HOME/.cargo`.
pub fn cargo_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cargo")
}

/// A version found in cargo's caches, before the output is written.
struct Found {
    entry: IndexEntry,
    source: PathBuf,
    size: u64,
}

/// Builds a registry under `out` from every crate cargo has downloaded into
/// `$CARGO_HOME/registry`, whatever registries those came from.
///
/// Output: `out/sparse/` (a sparse-layout index: `config.json` plus one file per crate, lines byte
/// for byte as upstream and in upstream order), `out/cdn/crates/{name}/{name}-{version}.crate`,
/// `out/index.git` (a bare repository, one commit, same tree as `sparse/`, reproducible commit id)
/// and `out/manifest.json` (`[{"name","vers","cksum","path"}]`, `path` relative to `out`). Earlier
/// output in those four places is replaced; nothing else under `out` is touched.
///
/// Only versions whose `.crate` file cargo has are included, and only after its SHA-256 matched
/// the line's `cksum`; anything left out is listed in [`RealRegistry::skipped`]. The same crate
/// in two registry directories is merged, the directory that sorts first winning a version both
/// have.
pub fn real_registry(out: &Path, options: &RealRegistryOptions) -> Result<RealRegistry> {
    let registry = options
        .cargo_home
        .clone()
        .unwrap_or_else(cargo_home)
        .join("registry");
    let mut skipped = Vec::new();
    let mut crates: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for dir in registry_dirs(&registry)? {
        let found = scan_dir(&registry, &dir, &mut skipped)?;
        merge(&mut crates, found, &mut skipped);
    }
    if crates.is_empty() {
        return Err(Error::Empty(format!(
            "no crate files with index lines under {}: build the workspace first",
            registry.display()
        )));
    }
    for reason in &skipped {
        tracing::warn!("{reason}");
    }
    write_output(out, options, crates, skipped)
}

/// The names of the registry directories that have both an index cache and crate files, sorted.
fn registry_dirs(registry: &Path) -> Result<Vec<String>> {
    let index = registry.join("index");
    let listing = std::fs::read_dir(&index).map_err(|e| Error::io("listing", &index, e))?;
    let mut dirs = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| Error::io("listing", &index, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if entry.path().join(".cache").is_dir() && registry.join("cache").join(&name).is_dir() {
            dirs.push(name);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Every cache file of one registry directory, as index paths (`se/rd/serde`), sorted.
fn cache_files(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let listing = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("listing", entry.path(), e))?;
            if kind.is_dir() {
                stack.push((entry.path(), child));
            } else if kind.is_file() {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One cache file's usable versions and the reasons for what was left out.
type ScannedFile = (String, Vec<Found>, Vec<String>);

/// Reads every cache file of registry directory `dir` and keeps the versions whose `.crate` file
/// is present and matches its checksum. Returns them by index path, in upstream order.
fn scan_dir(
    registry: &Path,
    dir: &str,
    skipped: &mut Vec<String>,
) -> Result<Vec<(String, Vec<Found>)>> {
    let cache_root = registry.join("index").join(dir).join(".cache");
    let crate_dir = registry.join("cache").join(dir);
    let files = cache_files(&cache_root)?;
    // Hashing a few hundred `.crate` files dominates; spread it over the cores.
    let results: Vec<Result<ScannedFile>> = files
        .par_iter()
        .map(|rel| {
            let path = cache_root.join(rel);
            let data = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
            let mut found = Vec::new();
            let mut problems = Vec::new();
            let parsed = match cache::parse(&data) {
                Ok(parsed) => parsed,
                Err(reason) => {
                    problems.push(format!("{}: {reason}", path.display()));
                    return Ok((rel.clone(), found, problems));
                }
            };
            for (vers, line) in parsed.lines {
                let entry = match IndexEntry::parse(line) {
                    Ok(entry) => entry,
                    Err(e) => {
                        problems.push(format!(
                            "{} version {}: {e}",
                            path.display(),
                            String::from_utf8_lossy(vers)
                        ));
                        continue;
                    }
                };
                if index_path(entry.name()) != *rel {
                    problems.push(format!(
                        "{}: line for {} {} does not belong in this file",
                        path.display(),
                        entry.name(),
                        entry.vers()
                    ));
                    continue;
                }
                let file = crate_dir.join(format!("{}-{}.crate", entry.name(), entry.vers()));
                let bytes = match std::fs::read(&file) {
                    Ok(bytes) => bytes,
                    // Cargo downloads only what a build needs; most lines have no file.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("reading", &file, e)),
                };
                let actual = Checksum::from_bytes(Sha256::digest(&bytes).into());
                if actual != *entry.cksum() {
                    problems.push(format!(
                        "{}: sha256 is {actual}, the index says {}; left out",
                        file.display(),
                        entry.cksum()
                    ));
                    continue;
                }
                found.push(Found {
                    entry,
                    source: file,
                    size: bytes.len() as u64,
                });
            }
            Ok((rel.clone(), found, problems))
        })
        .collect();
    let mut out = Vec::new();
    for result in results {
        let (rel, found, problems) = result?;
        skipped.extend(problems);
        if !found.is_empty() {
            out.push((rel, found));
        }
    }
    Ok(out)
}

/// Adds one registry directory's versions to `crates`: versions already there are kept (a
/// different checksum for the same version is reported), new ones are appended in their order.
fn merge(
    crates: &mut BTreeMap<String, Vec<Found>>,
    found: Vec<(String, Vec<Found>)>,
    skipped: &mut Vec<String>,
) {
    for (rel, versions) in found {
        let have = crates.entry(rel).or_default();
        for version in versions {
            let same = have.iter().find(|f| f.entry.vers() == version.entry.vers());
            match same {
                None => have.push(version),
                Some(first) if first.entry.cksum() != version.entry.cksum() => {
                    skipped.push(format!(
                        "{} {}: checksum {} in {} differs from {} in an earlier registry; the first is kept",
                        version.entry.name(),
                        version.entry.vers(),
                        version.entry.cksum(),
                        version.source.display(),
                        first.entry.cksum()
                    ));
                }
                Some(_) => {}
            }
        }
    }
}

/// Writes `sparse/`, `cdn/`, `manifest.json` and `index.git` under `out`.
fn write_output(
    out: &Path,
    options: &RealRegistryOptions,
    crates: BTreeMap<String, Vec<Found>>,
    skipped: Vec<String>,
) -> Result<RealRegistry> {
    let sparse = out.join("sparse");
    let cdn = out.join("cdn");
    let git_dir = out.join("index.git");
    let manifest = out.join("manifest.json");
    for dir in [&sparse, &cdn, &git_dir] {
        remove_dir(dir)?;
    }
    create_dir(&sparse)?;
    write_file(&sparse.join("config.json"), &config_json(&options.dl))?;

    let mut versions = Vec::new();
    let mut copies = Vec::new();
    let mut manifest_lines = Vec::new();
    for (rel, found) in crates {
        let mut file = Vec::new();
        for f in found {
            file.extend_from_slice(f.entry.raw());
            file.push(b'\n');
            let name = f.entry.name().as_str();
            let rel_crate = format!("cdn/crates/{name}/{name}-{}.crate", f.entry.vers());
            manifest_lines.push(format!(
                "{{\"name\":{},\"vers\":{},\"cksum\":\"{}\",\"path\":{}}}",
                json_string(name),
                json_string(f.entry.vers().as_str()),
                f.entry.cksum(),
                json_string(&rel_crate),
            ));
            let crate_file = out.join(&rel_crate);
            copies.push((f.source, crate_file.clone()));
            versions.push(RealVersion {
                entry: f.entry,
                crate_file,
                size: f.size,
            });
        }
        let path = sparse.join(&rel);
        create_dir(path.parent().expect("index paths have a directory"))?;
        write_file(&path, &file)?;
    }
    // Copies, not hard links: a test that damages a file in the CDN tree must not damage cargo's
    // own cache behind it.
    copies.par_iter().try_for_each(|(from, to)| -> Result<()> {
        create_dir(to.parent().expect("crate files sit in a directory"))?;
        std::fs::copy(from, to).map_err(|e| Error::io("copying", from, e))?;
        Ok(())
    })?;
    write_file(
        &manifest,
        format!("[\n{}\n]\n", manifest_lines.join(",\n")).as_bytes(),
    )?;
    let commit = git::write_git_index(&sparse, &git_dir, "Real crates from the local cargo cache")?;
    Ok(RealRegistry {
        root: out.to_owned(),
        sparse,
        cdn,
        git: git_dir,
        commit,
        manifest,
        versions,
        skipped,
    })
}

/// The `config.json` of a test registry with download URL `dl` and no API. Written by hand, not
/// through a `serde_json` map, whose key order depends on a cargo feature some other crate may
/// switch on: the bytes must not change between builds.
pub(crate) fn config_json(dl: &str) -> Vec<u8> {
    format!("{{\"dl\":{},\"api\":null}}\n", json_string(dl)).into_bytes()
}

/// `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

pub(crate) fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", dir, e)),
    }
}

pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))
}

pub(crate) fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).map_err(|e| Error::io("writing", path, e))
}
