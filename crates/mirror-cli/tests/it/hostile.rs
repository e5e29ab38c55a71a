//! A hostile index through `mirror-cli sync`: names and versions made to escape the mirror, lines
//! of many megabytes, invalid UTF-8, duplicates, odd `dl` schemes. Nothing is written outside
//! `--dest`, each bad line is reported, and the good crates still mirror.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mirror_testkit::server::{RegistryOptions, TestServer};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{stderr, stdout};

fn line(name: &str, vers: &str, cksum: &str) -> Vec<u8> {
    format!(
        "{{\"name\":\"{name}\",\"vers\":\"{vers}\",\"deps\":[],\"cksum\":\"{cksum}\",\"features\":{{}},\"yanked\":false}}\n"
    )
    .into_bytes()
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut old = std::fs::read(&path).unwrap_or_default();
    old.extend_from_slice(content);
    std::fs::write(path, old).unwrap();
}

/// Every path under `root`, relative, with file contents hashed.
fn snapshot(root: &Path, skip: &Path) -> BTreeSet<(PathBuf, String)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path == skip {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().to_owned();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
                out.insert((rel, "dir".to_owned()));
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.insert((rel, format!("{:x}", Sha256::digest(bytes))));
            }
        }
    }
    out
}

#[test]
fn a_hostile_index_writes_nothing_outside_dest_and_the_good_crates_still_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let index = tmp.path().join("index");
    let cdn = tmp.path().join("cdn");
    let server = rt.block_on(TestServer::start_registry(RegistryOptions::new(
        index.clone(),
        Some(cdn.clone()),
    )));

    // The good crates, with real files on the CDN.
    let mut good = Vec::new();
    for (name, vers) in [("a", "1.0.0"), ("evi", "0.1.0"), ("evi", "0.2.0+build.7")] {
        let bytes = format!("the crate file of {name} {vers}").into_bytes();
        let cksum = format!("{:x}", Sha256::digest(&bytes));
        let dir = cdn.join("crates").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}-{vers}.crate")), &bytes).unwrap();
        good.push((name, vers, cksum));
    }
    let ck = |i: usize| good[i].2.clone();
    write(
        &index,
        "config.json",
        format!("{{\"dl\":\"{}\"}}", server.dl_cdn_template()).as_bytes(),
    );
    write(&index, "1/a", &line("a", "1.0.0", &ck(0)));
    // The same version again with another checksum: the first line wins, the second is reported.
    write(&index, "1/a", &line("a", "1.0.0", &"0".repeat(64)));
    let evi = "3/e/evi";
    write(&index, evi, &line("evi", "0.1.0", &ck(1)));
    // Names and versions made to escape the mirror, or to look like another crate.
    for (name, vers) in [
        ("../../canary", "1.0.0"),
        ("/etc/passwd", "1.0.0"),
        ("..\\\\..\\\\canary", "1.0.0"),
        ("evi\\u0000", "1.0.0"),
        ("еvi", "1.0.0"), // a Cyrillic е
        (&"e".repeat(65), "1.0.0"),
        ("evi", "1.0.0/../../../canary"),
        ("evi", "../../canary"),
        ("evi", "1.0.0\\u0000"),
    ] {
        write(&index, evi, &line(name, vers, &ck(1)));
    }
    // Not UTF-8, not JSON, several megabytes of one line, a line for another crate's file.
    write(
        &index,
        evi,
        b"{\"name\":\"evi\",\"vers\":\"9.9.9\xff\xfe\"}\n",
    );
    write(&index, evi, b"not json at all\n");
    let mut huge = b"{\"name\":\"evi\",\"vers\":\"8.0.0\",\"pad\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 6 << 20));
    huge.extend_from_slice(b"\"}\n");
    write(&index, evi, &huge);
    write(&index, evi, &line("a", "2.0.0", &ck(0)));
    write(&index, evi, &line("evi", "0.2.0+build.7", &ck(2)));

    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("canary"), b"must stay as it is").unwrap();
    let dest = work.join("mirror");
    let before = snapshot(tmp.path(), &dest);

    let out = crate::run(
        &tmp.path().join("cache"),
        &[
            "sync",
            "--dest",
            dest.to_str().unwrap(),
            "--index",
            index.to_str().unwrap(),
            "--json",
            "--rate",
            "1000",
        ],
    );
    // Bad lines make the run "finished with problems", and the good crates are all there.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(summary["downloaded"], 3, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["index_errors"], 14, "{summary}");
    let text = stderr(&out);
    for needle in ["3/e/evi:2:", "3/e/evi:11:", "3/e/evi:14:", "1/a:2:"] {
        assert!(text.contains(needle), "{needle} not reported in:\n{text}");
    }
    for (name, vers, cksum) in &good {
        let prefix = mirror_index::index_prefix(&name.parse().unwrap());
        let path = dest
            .join("crates")
            .join(prefix.to_lowercase())
            .join(name)
            .join(format!("{name}-{vers}.crate"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&format!("{:x}", Sha256::digest(bytes)), cksum);
    }
    // Nothing outside --dest changed: the canary and every other file are as they were.
    assert_eq!(snapshot(tmp.path(), &dest), before);
    assert_eq!(
        std::fs::read(work.join("canary")).unwrap(),
        b"must stay as it is"
    );
}

#[test]
fn a_dl_with_an_odd_scheme_is_refused_before_any_work() {
    for dl in [
        "file:///etc/{crate}",
        "ftp://127.0.0.1/{crate}/{version}",
        "javascript:alert(1)",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let index = tmp.path().join("index");
        write(
            &index,
            "config.json",
            format!("{{\"dl\":\"{dl}\"}}").as_bytes(),
        );
        write(&index, "1/a", &line("a", "1.0.0", &"0".repeat(64)));
        let dest = tmp.path().join("mirror");
        let out = crate::run(
            &tmp.path().join("cache"),
            &[
                "sync",
                "--dest",
                dest.to_str().unwrap(),
                "--index",
                index.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{dl}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains("dl") || text.contains("template"),
            "{dl}: {text}"
        );
        assert!(
            !dest.join("crates").exists()
                || std::fs::read_dir(dest.join("crates"))
                    .unwrap()
                    .next()
                    .is_none()
        );
    }
}
