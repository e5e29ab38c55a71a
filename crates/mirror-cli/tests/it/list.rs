//! `mirror-cli list`: every version exactly once, with the right checksum and URL, from any source.

use std::collections::BTreeMap;

use mirror_index::DlTemplate;
use mirror_testkit::{RealRegistryOptions, real_registry};

use crate::{run, stderr, stdout};

const DL: &str = "http://127.0.0.1:9/api/v1/crates";

#[derive(serde::Deserialize, Debug, PartialEq, Eq)]
struct Row {
    name: String,
    vers: String,
    cksum: String,
    yanked: bool,
    url: String,
}

fn rows(json: &str) -> Vec<Row> {
    json.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn lists_the_real_registry_from_git_and_from_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let registry =
        real_registry(&tmp.path().join("reg"), &RealRegistryOptions::with_dl(DL)).unwrap();
    let cache = tmp.path().join("cache");
    let git_url = format!("file://{}", registry.git.display());

    let from_git = run(&cache, &["list", "--index", &git_url, "--json"]);
    assert_eq!(from_git.status.code(), Some(0), "{}", stderr(&from_git));
    let from_dir = run(
        &cache,
        &[
            "list",
            "--index",
            registry.sparse.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(from_dir.status.code(), Some(0), "{}", stderr(&from_dir));
    assert_eq!(stdout(&from_git), stdout(&from_dir));

    // Every version of the registry exactly once, with its checksum and the URL its dl gives.
    let listed = rows(&stdout(&from_git));
    let mut by_key = BTreeMap::new();
    for row in &listed {
        assert!(
            by_key
                .insert((row.name.clone(), row.vers.clone()), row)
                .is_none(),
            "{row:?} twice"
        );
    }
    assert_eq!(listed.len(), registry.versions.len());
    let template = DlTemplate::new(DL).unwrap();
    for v in &registry.versions {
        let row = by_key[&(v.name().to_string(), v.vers().to_string())];
        assert_eq!(row.cksum, v.cksum().to_string());
        assert_eq!(row.yanked, v.entry.yanked());
        assert_eq!(row.url, template.expand(v.name(), v.vers(), v.cksum()));
    }

    // A second run fetches into the existing clone instead of cloning again.
    let again = run(&cache, &["list", "--index", &git_url, "--json"]);
    assert_eq!(stdout(&again), stdout(&from_git));

    // --dl overrides config.json; --crate narrows the listing.
    let first = &registry.versions[0];
    let narrowed = run(
        &cache,
        &[
            "list",
            "--index",
            &git_url,
            "--json",
            "--dl",
            "https://cdn.example/{crate}/{version}",
            "--crate",
            first.name().as_str(),
        ],
    );
    assert_eq!(narrowed.status.code(), Some(0), "{}", stderr(&narrowed));
    let narrowed = rows(&stdout(&narrowed));
    assert!(narrowed.iter().all(|r| r.name == first.name().as_str()));
    assert!(narrowed.iter().any(|r| r.url
        == format!(
            "https://cdn.example/{}/{}",
            first.name(),
            first.vers().url_encoded()
        )));
}

fn line(name: &str, vers: &str, yanked: bool) -> String {
    format!(
        r#"{{"name":"{name}","vers":"{vers}","deps":[],"cksum":"{}","features":{{}},"yanked":{yanked}}}"#,
        "ab".repeat(32)
    )
}

fn hostile_index(root: &std::path::Path) {
    let write = |rel: &str, content: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    };
    write("config.json", &format!(r#"{{"dl":"{DL}"}}"#));
    write(
        "1/a",
        &format!(
            "{}\n{}\n",
            line("a", "1.0.0", false),
            line("a", "1.1.0+meta", true)
        ),
    );
    write(
        "3/e/evi",
        &format!(
            "{}\n{}\nnot json\n{}\n",
            line("evi", "0.1.0", false),
            line("../../../etc", "1.0.0", false),
            line("evi", "0.2.0", false)
        ),
    );
    write("se/rd/serde", &line("serde", "1.0.0/../..", false));
}

#[test]
fn hostile_lines_are_reported_and_the_listing_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    hostile_index(&index);
    let out = run(tmp.path(), &["list", "--index", index.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(stdout(&out), @r"
    NAME                             VERSION              YANKED CHECKSUM                                                         URL
    a                                1.0.0                no     abababababababababababababababababababababababababababababababab http://127.0.0.1:9/api/v1/crates/a/1.0.0/download
    a                                1.1.0+meta           yes    abababababababababababababababababababababababababababababababab http://127.0.0.1:9/api/v1/crates/a/1.1.0%2Bmeta/download
    evi                              0.1.0                no     abababababababababababababababababababababababababababababababab http://127.0.0.1:9/api/v1/crates/evi/0.1.0/download
    evi                              0.2.0                no     abababababababababababababababababababababababababababababababab http://127.0.0.1:9/api/v1/crates/evi/0.2.0/download
    ");
    insta::assert_snapshot!(stderr(&out), @r#"
    warning: skipped 3/e/evi:2: invalid crate name "../../../etc": name contains a dot
    warning: skipped 3/e/evi:3: invalid JSON: expected a JSON object at column 1
    warning: skipped se/rd/serde:1: invalid version "1.0.0/../..": unexpected character '/' after patch version number
    4 versions of 2 crates (1 yanked) from 3 index files; 3 bad lines skipped
    "#);
}

#[test]
fn sources_that_cannot_be_read_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let cases = [
        vec!["list", "--index", missing.to_str().unwrap()],
        vec!["list", "--index", "file:///nonexistent/index.git"],
        vec!["list", "--index", "ftp://example.invalid/index"],
        vec!["list", "--index", "sparse+http://127.0.0.1:9/index/"],
        vec![
            "list",
            "--index",
            tmp.path().to_str().unwrap(),
            "--crate",
            "../x",
        ],
    ];
    for args in cases {
        let out = run(tmp.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
        assert!(!stderr(&out).trim().is_empty(), "{args:?} gave no message");
    }
}

#[test]
fn a_directory_without_config_needs_dl() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    hostile_index(&index);
    std::fs::remove_file(index.join("config.json")).unwrap();
    let out = run(
        tmp.path(),
        &["list", "--index", index.to_str().unwrap(), "--crate", "a"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pass --dl"), "{}", stderr(&out));
    let out = run(
        tmp.path(),
        &[
            "list",
            "--index",
            index.to_str().unwrap(),
            "--crate",
            "a",
            "--dl",
            "http://127.0.0.1:9/{crate}-{version}.crate",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        rows(&stdout(&out))[1].url,
        "http://127.0.0.1:9/a-1.1.0%2Bmeta.crate"
    );
}

#[test]
fn lists_named_crates_over_the_sparse_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    hostile_index(&index);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(mirror_testkit::server::TestServer::start(index.clone()));
    let src = format!("sparse+{}", server.index_url());

    let out = run(
        tmp.path(),
        &[
            "list", "--index", &src, "--json", "--crate", "A", "--crate", "evi",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad lines in evi: {}",
        stderr(&out)
    );
    let listed: Vec<String> = rows(&stdout(&out))
        .iter()
        .map(|r| format!("{} {}", r.name, r.vers))
        .collect();
    assert_eq!(
        listed,
        ["a 1.0.0", "a 1.1.0+meta", "evi 0.1.0", "evi 0.2.0"]
    );
    assert!(stderr(&out).contains("3/e/evi:2"), "{}", stderr(&out));

    let out = run(
        tmp.path(),
        &[
            "list", "--index", &src, "--json", "--crate", "a", "--crate", "nope",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("crate nope is not in the index"),
        "{}",
        stderr(&out)
    );

    let out = run(tmp.path(), &["list", "--index", &src]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--crate"), "{}", stderr(&out));
    assert!(server.requests().iter().all(|r| {
        r.header("user-agent")
            .is_some_and(|ua| ua.starts_with("mirror-cli/"))
    }));
    drop(server);
}
