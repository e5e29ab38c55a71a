//! What the engine tests share: options pointing a run at a [`MirrorFixture`] with fast, still
//! bounded, politeness, and a file check against the fixture's bytes. (The fixture itself lives
//! in the testkit; these stay here because the testkit cannot name mirror-sync's types.)

use std::path::PathBuf;

use mirror_index::{CrateName, Version};
use mirror_store::Store;
use mirror_sync::{
    FetchSettings, Interrupt, NoProgress, SyncOptions, SyncReport, VerifyOptions, VerifyReport,
};
use mirror_testkit::mirror::{FixtureVersion, MirrorFixture};

pub(crate) fn fetch_settings() -> FetchSettings {
    let mut fetch = FetchSettings::default();
    fetch.rate = Some(1000.0);
    fetch.attempts = Some(2);
    fetch.backoff = Some(std::time::Duration::from_millis(5));
    fetch.contact = Some("tests@example.org".to_owned());
    fetch
}

pub(crate) fn sync_options(f: &MirrorFixture) -> SyncOptions {
    let mut options = SyncOptions::default();
    options.index = Some(f.index_url());
    options.fetch = fetch_settings();
    options
}

pub(crate) fn sync(f: &MirrorFixture) -> SyncReport {
    mirror_sync::sync(f.dest(), &sync_options(f), &NoProgress, &Interrupt::new()).unwrap()
}

pub(crate) fn verify(f: &MirrorFixture, repair: bool) -> VerifyReport {
    let mut options = VerifyOptions::default();
    options.repair = repair;
    options.fetch = fetch_settings();
    mirror_sync::verify(f.dest(), &options, &NoProgress, &Interrupt::new()).unwrap()
}

pub(crate) fn crate_path(f: &MirrorFixture, v: &FixtureVersion) -> PathBuf {
    Store::open(f.dest()).unwrap().crate_path(
        &CrateName::new(&v.name).unwrap(),
        &Version::new(&v.vers).unwrap(),
    )
}

/// Asserts that the mirror holds exactly these versions' files, each with the fixture's bytes.
pub(crate) fn assert_files(f: &MirrorFixture, versions: &[&FixtureVersion]) {
    for v in versions {
        let path = crate_path(f, v);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes == v.bytes, "{} {} has other bytes", v.name, v.vers);
    }
    let mut count = 0;
    let mut stack = vec![f.dest().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                count += 1;
            }
        }
    }
    assert_eq!(count, versions.len(), "files under crates/");
}

/// The names and versions of a list of versions, as `name vers`.
pub(crate) fn refs(list: &[mirror_sync::VersionRef]) -> Vec<String> {
    let mut out: Vec<String> = list
        .iter()
        .map(|v| format!("{} {}", v.name, v.vers))
        .collect();
    out.sort();
    out
}
