//! The directory source: what it reads, what it skips, and in which order.

use mirror_index::{CrateName, DirIndex, IndexFile, ReadOptions};

const SUM: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn line(name: &str, vers: &str) -> String {
    format!(r#"{{"name":"{name}","vers":"{vers}","deps":[],"cksum":"{SUM}","features":{{}}}}"#)
}

fn write(root: &std::path::Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn read(index: &DirIndex, threads: usize) -> (Vec<String>, mirror_index::ReadStats) {
    let mut seen = Vec::new();
    let stats = index
        .read_all(
            &ReadOptions::with_threads(threads),
            &mut |file: IndexFile| {
                for e in &file.entries {
                    seen.push(format!("{} {} {}", file.path, e.name(), e.vers()));
                }
                for p in &file.problems {
                    seen.push(format!("problem {p}"));
                }
            },
        )
        .unwrap();
    (seen, stats)
}

#[test]
fn reads_index_files_and_skips_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "config.json",
        r#"{"dl":"http://127.0.0.1:1/api/v1/crates","api":null}"#,
    );
    write(root, "README.md", "not an index file");
    write(root, ".github/workflows/x", "not an index file");
    write(root, ".git/HEAD", "ref: refs/heads/master");
    write(
        root,
        "1/a",
        &format!("{}\n{}\n", line("a", "0.1.0"), line("a", "0.2.0+x")),
    );
    write(root, "2/ab", &line("AB", "1.0.0"));
    write(root, "3/a/abc", &format!("{}\nbad\n", line("abc", "1.0.0")));
    write(root, "se/rd/serde", &line("serde", "1.0.0"));
    write(root, "se/rd/misplaced", &line("misplaced", "1.0.0"));
    let index = DirIndex::open(root).unwrap();
    assert_eq!(
        index.config().unwrap().unwrap().dl,
        "http://127.0.0.1:1/api/v1/crates"
    );
    let (seen, stats) = read(&index, 2);
    insta::assert_snapshot!(seen.join("\n"), @r"
    1/a a 0.1.0
    1/a a 0.2.0+x
    2/ab AB 1.0.0
    3/a/abc abc 1.0.0
    problem 3/a/abc:2: invalid JSON: expected a JSON object at column 1
    se/rd/serde serde 1.0.0
    problem se/rd/misplaced:0: not an index file: its path does not match the index layout
    ");
    assert_eq!((stats.files, stats.entries, stats.bad_lines), (4, 5, 2));
    // The order does not depend on the number of threads.
    assert_eq!(read(&index, 1).0, seen);
}

#[test]
fn reads_named_crates_and_reports_absent_ones() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "se/rd/serde", &line("serde", "1.0.0"));
    let index = DirIndex::open(tmp.path()).unwrap();
    let names: Vec<CrateName> = ["SERDE", "nope"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    let mut files = Vec::new();
    let stats = index
        .read_crates(&names, &ReadOptions::default(), &mut |f| files.push(f.path))
        .unwrap();
    assert_eq!(files, ["se/rd/serde"]);
    assert_eq!(stats.not_found, ["no/pe/nope"]);
    assert_eq!(index.config().unwrap(), None);
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let err = DirIndex::open("/nonexistent/index-dir").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/index-dir"), "{err}");
}
