//! A small upstream registry for engine tests: a handful of versions with real bytes and
//! checksums, a git index of them (read over `file://`), a loopback [`TestServer`] serving their
//! crate files, and the redaction that makes a report's JSON the same from run to run.
//!
//! ```no_run
//! use mirror_testkit::mirror::MirrorFixture;
//! let mut upstream = MirrorFixture::new();
//! let index = upstream.index_url(); // file:///…/index.git
//! upstream.add_version("alpha", "1.2.0");
//! upstream.yank("beta", "0.1.0");
//! upstream.commit("alpha 1.2.0, beta 0.1.0 yanked");
//! ```

use std::path::{Path, PathBuf};

use mirror_index::{Checksum, CrateName, index_path};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::git::write_git_index;
use crate::server::{RegistryOptions, TestServer};

/// The versions a new [`MirrorFixture`] publishes, in upstream order: index paths of every
/// shape (`1/`, `3/x/`, `ab/cd/`), a crate with two versions, and one yanked from the start.
pub const FIXTURE_VERSIONS: &[(&str, &str, bool)] = &[
    ("alpha", "1.0.0", false),
    ("alpha", "1.1.0", false),
    ("beta", "0.1.0", false),
    ("beta", "0.2.0", true),
    ("c", "0.1.0", false),
    ("gamma-utils", "2.0.0", false),
];

/// Report fields whose lists the snapshots sort (their order is not part of the contract).
const SORTED_LISTS: &[&str] = &[
    "failures",
    "missing",
    "corrupt",
    "unexpected",
    "drift",
    "removed",
    "checksum_changes",
    "not_in_index",
];

/// One version of the fixture registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureVersion {
    /// The crate name.
    pub name: String,
    /// The version.
    pub vers: String,
    /// Whether the index says it is yanked.
    pub yanked: bool,
    /// The bytes of its crate file.
    pub bytes: Vec<u8>,
    /// The SHA-256 of `bytes`, as the index gives it.
    pub cksum: Checksum,
}

impl FixtureVersion {
    fn new(name: &str, vers: &str, yanked: bool) -> Self {
        // Distinct bytes and sizes per version, the same on every run.
        let line = format!("fixture crate {name} {vers}\n");
        let bytes = line.repeat(8 + name.len() + vers.len()).into_bytes();
        let cksum = Checksum::from_bytes(Sha256::digest(&bytes).into());
        FixtureVersion {
            name: name.to_owned(),
            vers: vers.to_owned(),
            yanked,
            bytes,
            cksum,
        }
    }

    /// Its index line (fields in crates.io's order).
    pub fn line(&self) -> String {
        format!(
            r#"{{"name":"{}","vers":"{}","deps":[],"cksum":"{}","features":{{}},"yanked":{}}}"#,
            self.name, self.vers, self.cksum, self.yanked
        )
    }

    /// The path the server answers its crate file at, `/crates/{name}/{name}-{vers}.crate`.
    pub fn cdn_path(&self) -> String {
        format!("/crates/{0}/{0}-{1}.crate", self.name, self.vers)
    }
}

/// An upstream registry on a loopback server, and a mirror directory (not created) next to it.
#[derive(Debug)]
pub struct MirrorFixture {
    // Dropped before the runtime that runs it.
    server: TestServer,
    _rt: tokio::runtime::Runtime,
    /// The index tree (also served as a sparse index at `/index/`).
    tree: PathBuf,
    /// The bare git repository holding the index's commits.
    git: PathBuf,
    /// The CDN tree: `crates/{name}/{name}-{vers}.crate`.
    cdn: PathBuf,
    dest: PathBuf,
    versions: Vec<FixtureVersion>,
    commits: Vec<String>,
    // Last: everything above lives in it.
    tmp: tempfile::TempDir,
}

impl MirrorFixture {
    /// The registry of [`FIXTURE_VERSIONS`], committed once, with its server running.
    ///
    /// # Panics
    ///
    /// When the temp dir, the server or the git index cannot be made (a test setup failure).
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("a temp dir for the fixture");
        let rt = tokio::runtime::Runtime::new().expect("a runtime for the test server");
        let tree = tmp.path().join("upstream/tree");
        let cdn = tmp.path().join("upstream/cdn");
        // The server reads its trees per request, so it can start before they exist and the
        // index's config.json can name its address.
        let server = rt.block_on(TestServer::start_registry(RegistryOptions::new(
            tree.clone(),
            Some(cdn.clone()),
        )));
        let mut fixture = MirrorFixture {
            server,
            _rt: rt,
            git: tmp.path().join("upstream/index.git"),
            dest: tmp.path().join("mirror"),
            tree,
            cdn,
            versions: FIXTURE_VERSIONS
                .iter()
                .map(|(name, vers, yanked)| FixtureVersion::new(name, vers, *yanked))
                .collect(),
            commits: Vec::new(),
            tmp,
        };
        fixture.commit("initial index");
        fixture
    }

    /// The index source for a sync: `file://` and the bare git repository.
    pub fn index_url(&self) -> String {
        format!("file://{}", self.git.display())
    }

    /// The mirror directory (made by the first sync).
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The server answering downloads, for injecting faults and reading its requests.
    pub fn server(&self) -> &TestServer {
        &self.server
    }

    /// The versions upstream has now, in upstream order.
    pub fn versions(&self) -> &[FixtureVersion] {
        &self.versions
    }

    /// One version by name and version.
    ///
    /// # Panics
    ///
    /// When upstream has no such version.
    pub fn version(&self, name: &str, vers: &str) -> &FixtureVersion {
        self.versions
            .iter()
            .find(|v| v.name == name && v.vers == vers)
            .unwrap_or_else(|| panic!("the fixture has no {name} {vers}"))
    }

    /// Publishes a new version upstream (not committed until [`MirrorFixture::commit`]).
    pub fn add_version(&mut self, name: &str, vers: &str) {
        self.versions.push(FixtureVersion::new(name, vers, false));
    }

    /// Yanks a version upstream (not committed until [`MirrorFixture::commit`]).
    ///
    /// # Panics
    ///
    /// When upstream has no such version.
    pub fn yank(&mut self, name: &str, vers: &str) {
        let version = self
            .versions
            .iter_mut()
            .find(|v| v.name == name && v.vers == vers)
            .unwrap_or_else(|| panic!("the fixture has no {name} {vers}"));
        version.yanked = true;
    }

    /// Writes the index tree and the CDN tree for the versions as they are now, and commits the
    /// tree to the git index. Returns the commit id.
    ///
    /// # Panics
    ///
    /// When a file cannot be written or git fails (a test setup failure).
    pub fn commit(&mut self, message: &str) -> String {
        // Straight to the CDN: no redirect to learn from, so which URL a download went to never
        // depends on the order the downloads ran in.
        let config = serde_json::json!({ "dl": self.server.dl_cdn_template() });
        write(
            &self.tree.join("config.json"),
            config.to_string().as_bytes(),
        );
        let mut files: Vec<(String, String)> = Vec::new();
        for v in &self.versions {
            let name = CrateName::new(&v.name).expect("fixture names are valid");
            let path = index_path(&name);
            match files.iter_mut().find(|(p, _)| *p == path) {
                Some((_, text)) => text.push_str(&format!("{}\n", v.line())),
                None => files.push((path, format!("{}\n", v.line()))),
            }
            let file = self
                .cdn
                .join(format!("crates/{0}/{0}-{1}.crate", v.name, v.vers));
            write(&file, &v.bytes);
        }
        for (path, text) in files {
            write(&self.tree.join(path), text.as_bytes());
        }
        let id = write_git_index(&self.tree, &self.git, message).expect("committing the index");
        self.commits.push(id.clone());
        id
    }

    /// A report as JSON with everything that changes from run to run replaced: durations, times,
    /// commit ids, the temp dir and the server's port; lists whose order is not part of the
    /// contract sorted. Apply it to a report before snapshotting it.
    ///
    /// # Panics
    ///
    /// When the report cannot be serialised as JSON.
    pub fn redact(&self, report: &impl serde::Serialize) -> Value {
        let mut value = serde_json::to_value(report).expect("a report serialises to JSON");
        self.redact_value(&mut value);
        value
    }

    fn redact_value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    match key.as_str() {
                        "duration_ms" => *field = Value::from("[ms]"),
                        "last_sync_unix" if !field.is_null() => {
                            *field = Value::from("[unix time]");
                        }
                        _ => self.redact_value(field),
                    }
                    if SORTED_LISTS.contains(&key.as_str())
                        && let Value::Array(items) = field
                    {
                        items.sort_by_key(Value::to_string);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::String(text) => *text = self.redact_text(text),
            _ => {}
        }
    }

    fn redact_text(&self, text: &str) -> String {
        let mut text = text
            .replace(&self.tmp.path().display().to_string(), "[tmp]")
            .replace(&self.server.addr().to_string(), "[server]");
        for (i, id) in self.commits.iter().enumerate() {
            text = text.replace(id.as_str(), &format!("[commit {}]", i + 1));
        }
        text
    }
}

impl Default for MirrorFixture {
    fn default() -> Self {
        Self::new()
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
