//! `publish` and `retract`: the sparse index under `index/` lists exactly the verified versions,
//! byte for byte, in upstream order; unchanged files are left alone; gone ones are removed.

use std::path::{Path, PathBuf};

use mirror_index::{Checksum, CrateName, Version};
use mirror_state::{State, StateOptions};
use mirror_store::Store;
use mirror_sync::{PublishOptions, PublishReport, Source, publish, retract};

/// An upstream index in a directory (sparse layout) and a mirror next to it.
struct Setup {
    tmp: tempfile::TempDir,
    store: Store,
    state: State,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("mirror")).unwrap();
        let state = State::open(&store.state_dir(), StateOptions::default()).unwrap();
        let setup = Setup { tmp, store, state };
        setup.upstream_write(
            "config.json",
            br#"{"dl":"https://dl.example.org/api/v1/crates","api":"https://api.example.org"}"#,
        );
        setup
    }

    fn upstream(&self) -> PathBuf {
        self.tmp.path().join("upstream")
    }

    fn upstream_write(&self, rel: &str, data: &[u8]) {
        let path = self.upstream().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    fn source(&self) -> Source {
        let never = std::sync::atomic::AtomicBool::new(false);
        Source::open(
            self.upstream().to_str().unwrap(),
            &self.tmp.path().join("unused.git"),
            "tests",
            &never,
        )
        .unwrap()
    }

    fn verify(&self, name: &str, vers: &str, cksum: u8) {
        self.state
            .mark_verified(&n(name), &v(vers), sum(cksum), 10)
            .unwrap();
    }

    fn publish(&self, paths: Option<&[String]>, base_url: Option<&str>) -> PublishReport {
        let mut options = PublishOptions::default();
        options.base_url = base_url.map(str::to_owned);
        publish(&self.store, &self.state, &self.source(), paths, &options).unwrap()
    }

    fn published(&self, rel: &str) -> Option<String> {
        let path = self.store.index_root().join(rel);
        match std::fs::read(&path) {
            Ok(bytes) => Some(String::from_utf8(bytes).unwrap()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }

    fn config(&self) -> serde_json::Value {
        serde_json::from_str(&self.published("config.json").unwrap()).unwrap()
    }
}

fn n(name: &str) -> CrateName {
    CrateName::new(name).unwrap()
}

fn v(vers: &str) -> Version {
    Version::new(vers).unwrap()
}

fn sum(byte: u8) -> Checksum {
    Checksum::from_bytes([byte; 32])
}

/// An index line for `name vers` with the checksum `[cksum; 32]`; `extra` goes before the closing
/// brace, as written (so its spacing and field order are the upstream's).
fn line(name: &str, vers: &str, cksum: u8, extra: &str) -> String {
    format!(
        r#"{{"name":"{name}","vers":"{vers}","deps":[],"cksum":"{}","features":{{}}{extra}}}"#,
        sum(cksum)
    )
}

fn file(lines: &[&str]) -> Vec<u8> {
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out
}

fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

#[test]
fn lists_exactly_the_verified_versions_byte_for_byte_in_upstream_order() {
    let s = Setup::new();
    // Publish order is not semver order; spacing, unknown fields and `+` versions are kept.
    let lines = [
        line("Serde", "1.0.1", 1, r#","yanked":false"#),
        line("Serde", "1.0.0", 2, r#","yanked":true, "future" : [1,2]"#),
        line(
            "Serde",
            "1.0.2+build.7",
            3,
            r#","v":2,"features2":{"x":["dep:y"]}"#,
        ),
        line("Serde", "1.0.3", 4, ""),
        line("Serde", "1.0.4", 5, ""),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    s.upstream_write("se/rd/serde", &file(&refs));
    s.verify("Serde", "1.0.1", 1);
    s.verify("Serde", "1.0.0", 2);
    s.verify("Serde", "1.0.2+build.7", 3);
    // Verified under another checksum: re-published upstream since, so not this line's file.
    s.verify("Serde", "1.0.3", 99);
    // 1.0.4 failed to download.
    s.state
        .mark_failed(&n("Serde"), &v("1.0.4"), sum(5), "http", "503")
        .unwrap();

    let report = s.publish(None, None);
    assert_eq!(
        s.published("se/rd/serde").unwrap(),
        format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2])
    );
    assert_eq!(
        (
            report.files_read,
            report.files,
            report.versions,
            report.left_out
        ),
        (1, 1, 3, 2)
    );
    assert_eq!(
        (report.written, report.unchanged, report.removed),
        (1, 0, 0)
    );
}

#[test]
fn config_points_dl_at_the_mirror_and_drops_the_api() {
    let s = Setup::new();
    s.upstream_write("2/ab", &file(&[&line("ab", "0.1.0", 1, "")]));
    s.verify("ab", "0.1.0", 1);

    let report = s.publish(None, None);
    assert!(report.config_written);
    assert_eq!(report.base_url, mirror_sync::DEFAULT_BASE_URL);
    assert_eq!(
        s.config(),
        serde_json::json!({
            "dl": "http://127.0.0.1:8080/crates/{lowerprefix}/{crate}/{crate}-{version}.crate"
        })
    );

    // A base URL given once is remembered; trailing slashes go.
    let report = s.publish(None, Some("https://mirror.example.org/cargo/"));
    assert!(report.config_written);
    let dl =
        "https://mirror.example.org/cargo/crates/{lowerprefix}/{crate}/{crate}-{version}.crate";
    assert_eq!(s.config()["dl"], dl);
    let report = s.publish(None, None);
    assert!(!report.config_written, "same base url, same file");
    assert_eq!(report.base_url, "https://mirror.example.org/cargo");
    assert_eq!(s.config()["dl"], dl);
}

#[test]
fn refuses_base_urls_that_cannot_make_a_dl() {
    let s = Setup::new();
    for bad in [
        "ftp://mirror.example.org",
        "mirror.example.org",
        "http://",
        "http:///path",
        "https://user:pw@mirror.example.org",
        "https://mirror.example.org/{crate}",
        "https://mirror.example.org/?x=1",
        "https://mirror.example.org/a b",
        "http://mirror.example.org:99999",
        "http://mirror.example.org:0",
        "http://[::1",
    ] {
        let mut options = PublishOptions::default();
        options.base_url = Some(bad.to_owned());
        let err = publish(&s.store, &s.state, &s.source(), None, &options).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid base url"),
            "{bad}: {err}"
        );
    }
    assert!(s.published("config.json").is_none());
}

#[test]
fn publishing_again_touches_nothing_unless_something_changed() {
    let s = Setup::new();
    s.upstream_write("1/a", &file(&[&line("a", "1.0.0", 1, "")]));
    s.upstream_write("3/b/bcd", &file(&[&line("bcd", "1.0.0", 2, "")]));
    s.verify("a", "1.0.0", 1);
    s.verify("bcd", "1.0.0", 2);
    let first = s.publish(None, None);
    assert_eq!((first.written, first.unchanged), (2, 0));
    let index = s.store.index_root();
    let (a, bcd, config) = (
        inode(&index.join("1/a")),
        inode(&index.join("3/b/bcd")),
        inode(&index.join("config.json")),
    );

    let again = s.publish(None, None);
    assert_eq!((again.written, again.unchanged, again.removed), (0, 2, 0));
    assert!(!again.config_written);
    assert_eq!(
        inode(&index.join("1/a")),
        a,
        "an unchanged file keeps its inode"
    );
    assert_eq!(inode(&index.join("config.json")), config);

    // A new verified version changes one file, which is replaced (a new inode: a rename).
    s.upstream_write(
        "3/b/bcd",
        &file(&[&line("bcd", "1.0.0", 2, ""), &line("bcd", "1.1.0", 3, "")]),
    );
    s.verify("bcd", "1.1.0", 3);
    let third = s.publish(None, None);
    assert_eq!((third.written, third.unchanged), (1, 1));
    assert_ne!(inode(&index.join("3/b/bcd")), bcd);
    assert_eq!(inode(&index.join("1/a")), a);
    // No temp file is left behind anywhere.
    assert_eq!(
        std::fs::read_dir(s.store.temp_dir()).unwrap().count(),
        0,
        "temp files left in .mirror/tmp"
    );
}

#[test]
fn yanking_upstream_rewrites_the_line() {
    let s = Setup::new();
    s.upstream_write(
        "1/a",
        &file(&[&line("a", "1.0.0", 1, r#","yanked":false"#)]),
    );
    s.verify("a", "1.0.0", 1);
    s.publish(None, None);
    let yanked = line("a", "1.0.0", 1, r#","yanked":true"#);
    s.upstream_write("1/a", &file(&[&yanked]));
    let report = s.publish(None, None);
    assert_eq!(report.written, 1);
    assert_eq!(s.published("1/a").unwrap(), format!("{yanked}\n"));
}

#[test]
fn removes_files_with_no_verified_line_left_and_crates_gone_upstream() {
    let s = Setup::new();
    s.upstream_write("1/a", &file(&[&line("a", "1.0.0", 1, "")]));
    s.upstream_write("2/bc", &file(&[&line("bc", "1.0.0", 2, "")]));
    s.upstream_write("3/n/nov", &file(&[&line("nov", "1.0.0", 3, "")]));
    s.verify("a", "1.0.0", 1);
    s.verify("bc", "1.0.0", 2);
    let report = s.publish(None, None);
    assert_eq!((report.files, report.left_out), (2, 1));
    assert!(
        s.published("3/n/nov").is_none(),
        "nothing verified, nothing published"
    );
    // Files that are not index files are not the publisher's business.
    std::fs::write(s.store.index_root().join("README"), "hello").unwrap();
    std::fs::create_dir_all(s.store.index_root().join("zz")).unwrap();
    std::fs::write(s.store.index_root().join("zz/notes.txt"), "x").unwrap();

    // `a` was deleted upstream and pruned (its record forgotten: a deleted crate still verified
    // stays offered); `bc` lost its only verified version (verify found it corrupt).
    std::fs::remove_file(s.upstream().join("1/a")).unwrap();
    s.state.remove(&n("a"), &v("1.0.0")).unwrap();
    s.state
        .mark_failed(&n("bc"), &v("1.0.0"), sum(2), "corrupt", "hash mismatch")
        .unwrap();
    let report = s.publish(None, None);
    assert_eq!((report.files, report.removed), (0, 2));
    assert!(s.published("1/a").is_none());
    assert!(s.published("2/bc").is_none());
    assert_eq!(s.published("README").unwrap(), "hello");
    assert_eq!(s.published("zz/notes.txt").unwrap(), "x");
    assert!(s.published("config.json").is_some());
}

#[test]
fn given_paths_touch_only_those_files() {
    let s = Setup::new();
    s.upstream_write("1/a", &file(&[&line("a", "1.0.0", 1, "")]));
    s.upstream_write("1/b", &file(&[&line("b", "1.0.0", 2, "")]));
    s.upstream_write("1/c", &file(&[&line("c", "1.0.0", 3, "")]));
    for (name, cksum) in [("a", 1), ("b", 2), ("c", 3)] {
        s.verify(name, "1.0.0", cksum);
    }
    s.publish(None, None);

    s.upstream_write(
        "1/a",
        &file(&[&line("a", "1.0.0", 1, ""), &line("a", "1.0.1", 4, "")]),
    );
    s.upstream_write(
        "1/b",
        &file(&[&line("b", "1.0.0", 2, ""), &line("b", "1.0.1", 5, "")]),
    );
    s.verify("a", "1.0.1", 4);
    s.verify("b", "1.0.1", 5);
    std::fs::remove_file(s.upstream().join("1/c")).unwrap();
    // `b` changed too, but only `a` and `c` are asked for; a path that is not an index path is
    // ignored.
    let paths = ["1/a".to_owned(), "1/c".to_owned(), "../../etc".to_owned()];
    let report = s.publish(Some(&paths), None);
    assert_eq!(
        (report.files_read, report.written, report.removed),
        (1, 1, 0)
    );
    assert_eq!(s.published("1/a").unwrap().lines().count(), 2);
    assert_eq!(
        s.published("1/b").unwrap().lines().count(),
        1,
        "not asked for"
    );
    // Gone upstream, but the mirror still holds it verified: still offered, with its line as
    // published.
    assert_eq!(
        s.published("1/c").unwrap(),
        String::from_utf8(file(&[&line("c", "1.0.0", 3, "")])).unwrap()
    );
    // Once the record is gone (what `sync --prune` does, after retracting), so is the file.
    s.state.remove(&n("c"), &v("1.0.0")).unwrap();
    let report = s.publish(Some(&paths), None);
    assert_eq!((report.written, report.removed), (0, 1));
    assert!(s.published("1/c").is_none(), "pruned");
}

#[test]
fn never_follows_a_symlink_out_of_the_index() {
    let s = Setup::new();
    let outside = s.tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("cd")).unwrap();
    std::fs::write(outside.join("cd/abcd"), "precious").unwrap();
    std::fs::create_dir_all(s.store.index_root()).unwrap();
    std::os::unix::fs::symlink(&outside, s.store.index_root().join("ab")).unwrap();
    s.upstream_write("1/a", &file(&[&line("a", "1.0.0", 1, "")]));
    s.verify("a", "1.0.0", 1);

    // A full publish sweeps files upstream does not have: not through the link.
    s.publish(None, None);
    // Nor when asked for the path explicitly.
    s.publish(Some(&["ab/cd/abcd".to_owned()]), None);
    retract(&s.store, &[(n("abcd"), v("1.0.0"))]).unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.join("cd/abcd")).unwrap(),
        "precious"
    );
}

#[test]
fn retract_takes_lines_out_without_the_upstream_index() {
    let s = Setup::new();
    let lines = [
        line("abc", "0.1.0", 1, ""),
        line("abc", "0.2.0+x", 2, ""),
        line("abc", "0.3.0", 3, ""),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    s.upstream_write("3/a/abc", &file(&refs));
    s.upstream_write("1/z", &file(&[&line("z", "1.0.0", 9, "")]));
    s.verify("abc", "0.1.0", 1);
    s.verify("abc", "0.2.0+x", 2);
    s.verify("abc", "0.3.0", 3);
    s.verify("z", "1.0.0", 9);
    s.publish(None, None);

    let removed = retract(
        &s.store,
        &[
            (n("abc"), v("0.2.0+x")),
            (n("abc"), v("9.9.9")),
            (n("never-published"), v("1.0.0")),
        ],
    )
    .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        s.published("3/a/abc").unwrap(),
        format!("{}\n{}\n", lines[0], lines[2])
    );
    assert_eq!(retract(&s.store, &[(n("z"), v("1.0.0"))]).unwrap(), 1);
    assert!(s.published("1/z").is_none(), "no line left, no file");
}

#[test]
fn a_git_source_publishes_the_same_tree_and_read_paths_reads_by_path() {
    let s = Setup::new();
    s.upstream_write("1/a", &file(&[&line("a", "1.0.0", 1, "")]));
    s.upstream_write("se/rd/serde", &file(&[&line("serde", "1.0.0", 2, "")]));
    s.upstream_write(".github/workflows/x.yml", b"not an index file\n");
    let bare = s.tmp.path().join("upstream.git");
    mirror_testkit::git::write_git_index(&s.upstream(), &bare, "one").unwrap();
    s.verify("a", "1.0.0", 1);
    s.verify("serde", "1.0.0", 2);

    let url = format!("file://{}", bare.display());
    let clone = s.store.index_dir();
    // No clone yet: an offline open says so instead of going to the network.
    let err = Source::open_local(&url, &clone, "tests").unwrap_err();
    assert!(err.to_string().contains("run a sync first"), "{err}");
    let never = std::sync::atomic::AtomicBool::new(false);
    Source::open(&url, &clone, "tests", &never).unwrap();
    let source = Source::open_local(&url, &clone, "tests").unwrap();
    let report = publish(
        &s.store,
        &s.state,
        &source,
        None,
        &PublishOptions::default(),
    )
    .unwrap();
    assert_eq!((report.files, report.versions), (2, 2));
    assert_eq!(
        s.published("se/rd/serde").unwrap(),
        format!("{}\n", line("serde", "1.0.0", 2, ""))
    );

    let mut read = Vec::new();
    let stats = source
        .read_paths(
            &["se/rd/serde".to_owned(), "2/zz".to_owned()],
            &mirror_index::ReadOptions::default(),
            &mut |file| read.push(file.path),
        )
        .unwrap();
    assert_eq!(read, ["se/rd/serde"]);
    assert_eq!(stats.not_found, ["2/zz"]);
}
