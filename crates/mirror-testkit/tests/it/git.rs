//! The git helpers: reproducible commits, history, squashes.

use mirror_testkit::git::{self, CommitOptions};

#[test]
fn commits_are_reproducible_and_stack() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("3/a")).unwrap();
    std::fs::create_dir_all(tree.path().join(".github")).unwrap();
    std::fs::write(tree.path().join("config.json"), "{}\n").unwrap();
    std::fs::write(tree.path().join("3/a/abc"), "line\n").unwrap();
    std::fs::write(tree.path().join(".github/ci.yml"), "x\n").unwrap();

    let repos = tempfile::tempdir().unwrap();
    let a = repos.path().join("a.git");
    let b = repos.path().join("b.git");
    let first = git::write_git_index(tree.path(), &a, "one").unwrap();
    assert_eq!(
        git::write_git_index(tree.path(), &b, "one").unwrap(),
        first,
        "same tree, same commit id"
    );
    assert_eq!(git::git(&a, &["config", "core.bare"]).unwrap(), "true");
    assert_eq!(
        git::git(&a, &["symbolic-ref", "HEAD"]).unwrap(),
        "refs/heads/master"
    );
    let files = git::git(&a, &["ls-tree", "-r", "--name-only", "HEAD"]).unwrap();
    assert_eq!(files, ".github/ci.yml\n3/a/abc\nconfig.json");

    // A second commit on top, with a file deleted.
    std::fs::remove_file(tree.path().join("3/a/abc")).unwrap();
    let second = git::write_git_index(tree.path(), &a, "two").unwrap();
    assert_eq!(git::git(&a, &["rev-parse", "HEAD^"]).unwrap(), first);
    assert_eq!(git::head_commit(&a).unwrap(), Some(second.clone()));
    assert_eq!(
        git::git(&a, &["ls-tree", "-r", "--name-only", "HEAD"]).unwrap(),
        ".github/ci.yml\nconfig.json"
    );

    // A squash: a new root commit, same tree.
    let mut squash = CommitOptions::new("squash");
    squash.squash = true;
    let root = git::write_git_index_with(tree.path(), &a, &squash).unwrap();
    assert_eq!(git::git(&a, &["rev-list", "--count", "HEAD"]).unwrap(), "1");
    assert_eq!(
        git::rev_parse(&a, &format!("{root}^{{tree}}")).unwrap(),
        git::rev_parse(&a, &format!("{second}^{{tree}}")).unwrap()
    );
    assert_eq!(git::rev_parse(&a, "refs/heads/nope").unwrap(), None);
}
