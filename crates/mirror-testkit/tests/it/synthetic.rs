//! The synthetic index, at a small size.

use std::collections::HashSet;

use mirror_index::{DirIndex, IndexFile, ReadOptions};
use mirror_testkit::{SyntheticOptions, git, synthetic_index};

#[test]
fn small_synthetic_index_is_valid_and_reproducible() {
    let out = tempfile::tempdir().unwrap();
    let options = SyntheticOptions::new(7, 1500);
    let index = synthetic_index(out.path(), &options).unwrap();
    assert_eq!(index.crates, 1500);
    println!(
        "{} lines, {} bytes, mean {} B/line",
        index.lines,
        index.bytes,
        index.bytes / index.lines
    );

    let mut lines = 0;
    let mut names = HashSet::new();
    let mut sizes = Vec::new();
    let (mut plus, mut yanked, mut v2, mut pubtime, mut msrv, mut short) = (0, 0, 0, 0, 0, 0);
    let dir = DirIndex::open(&index.dir).unwrap();
    assert!(dir.config().unwrap().is_some());
    dir.read_all(&ReadOptions::default(), &mut |file: IndexFile| {
        assert!(file.problems.is_empty(), "{:?}", file.problems);
        let name = file.entries[0].name().to_lowercase().replace('-', "_");
        assert!(names.insert(name.clone()), "{name} twice");
        short += usize::from(name.len() <= 3);
        for e in &file.entries {
            lines += 1;
            sizes.push(e.raw().len());
            let record = e.record().unwrap();
            plus += usize::from(e.vers().as_str().contains('+'));
            yanked += usize::from(e.yanked());
            v2 += usize::from(record.v == Some(2) && record.features2.is_some());
            pubtime += usize::from(record.pubtime.is_some());
            msrv += usize::from(record.rust_version.is_some());
        }
    })
    .unwrap();
    assert_eq!(lines as u64, index.lines);
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2];
    let mean = sizes.iter().sum::<usize>() / sizes.len();
    println!(
        "median {median} B, mean {mean} B, plus {plus}, yanked {yanked}, v2 {v2}, pubtime {pubtime}, msrv {msrv}, short {short}"
    );
    assert!((500..=1500).contains(&median), "median line {median} B");
    assert!((600..=1000).contains(&mean), "mean line {mean} B");
    for (what, n) in [
        ("+", plus),
        ("yanked", yanked),
        ("v2", v2),
        ("pubtime", pubtime),
        ("rust_version", msrv),
        ("short names", short),
    ] {
        assert!(n > 0, "no line with {what}");
    }

    // The git repository holds the same tree, and the same seed gives the same commit.
    let repo = index.git.as_ref().unwrap();
    let listed = git::git(repo, &["ls-tree", "-r", "--name-only", "HEAD"]).unwrap();
    assert_eq!(listed.lines().count(), 1501);
    let again = tempfile::tempdir().unwrap();
    let second = synthetic_index(again.path(), &options).unwrap();
    assert_eq!(second.commit, index.commit);
    assert_eq!(second.digest, index.digest);
    let mut other = SyntheticOptions::new(8, 1500);
    other.git = false;
    let other = synthetic_index(again.path(), &other).unwrap();
    assert_eq!(other.commit, None);
    assert_ne!(other.digest, index.digest);
}
