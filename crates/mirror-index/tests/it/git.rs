//! The git index source against repositories built with the real `git` CLI, served over `file://`
//! and over a `git daemon` on loopback.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mirror_index::{
    ChangeKind, CrateName, DirIndex, Error, GitId, GitIndex, IndexFile, LineErrorKind, ReadOptions,
    ReadStats,
};
use proptest::prelude::*;

const CKSUM: &str = "abababababababababababababababababababababababababababababababab";

fn line(name: &str, vers: &str) -> String {
    format!(
        r#"{{"name":"{name}","vers":"{vers}","deps":[],"cksum":"{CKSUM}","features":{{}},"yanked":false}}"#
    )
}

/// A temp dir holding a working repository (`work`) that commits and force-pushes to a bare
/// upstream (`index.git`), and a `home` so the machine's git configuration plays no part.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let fixture = Fixture {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(fixture.home()).unwrap();
        fixture.git(fixture.root(), &["init", "-q", "-b", "master", "work"]);
        fixture.git(
            fixture.root(),
            &["init", "-q", "--bare", "-b", "master", "index.git"],
        );
        fixture
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    fn work(&self) -> PathBuf {
        self.root().join("work")
    }

    fn upstream(&self) -> PathBuf {
        self.root().join("index.git")
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.upstream().display())
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home())
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn write(&self, rel: &str, content: &str) {
        let path = self.work().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// Commits everything in `work` and force-pushes it upstream; returns the commit and tree.
    fn commit(&self, message: &str) -> (String, String) {
        let work = self.work();
        self.git(&work, &["add", "-A"]);
        self.git(&work, &["commit", "-q", "--allow-empty", "-m", message]);
        self.push()
    }

    fn push(&self) -> (String, String) {
        let work = self.work();
        let upstream = self.upstream().display().to_string();
        self.git(&work, &["push", "-q", "--force", &upstream, "master"]);
        (
            self.git(&work, &["rev-parse", "HEAD"]),
            self.git(&work, &["rev-parse", "HEAD^{tree}"]),
        )
    }

    /// A small index with 1-, 2-, 3- and 4+-letter and mixed-case names, `.github/`,
    /// `config.json`, a README, a stray file and a bad line.
    fn populate(&self) {
        self.write(
            "config.json",
            r#"{"dl":"http://127.0.0.1:1/api/v1/crates","api":"http://127.0.0.1:1"}"#,
        );
        self.write("README.md", "not an index file\n");
        self.write(".github/workflows/ci.yml", "on: push\n");
        self.write(
            "1/a",
            &format!("{}\n{}\n", line("a", "0.1.0"), line("a", "0.2.0")),
        );
        self.write("2/ab", &format!("{}\n", line("ab", "1.0.0")));
        self.write("3/x/xyz", &format!("{}\n", line("XyZ", "0.0.1")));
        self.write(
            "se/rd/serde",
            &format!(
                "{}\nnot json\n{}\n",
                line("serde", "1.0.0"),
                line("serde", "1.0.1+build.5")
            ),
        );
        self.write(
            "my/_c/my_crate",
            &format!("{}\n", line("My_Crate", "2.0.0")),
        );
        self.write(
            "zz/yy/misplaced",
            &format!("{}\n", line("misplaced", "1.0.0")),
        );
    }
}

/// Kills the daemon when the test ends, however it ends.
struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves every repository under `fixture.root()` with `git daemon` on a free loopback port.
fn start_daemon(fixture: &Fixture) -> Daemon {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = fixture.root().display().to_string();
    // Run `git-daemon` itself: `git daemon` forks it as a child, which survives killing `git`.
    let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
    let exec_path = String::from_utf8(exec_path.stdout).unwrap();
    let child = Command::new(std::path::Path::new(exec_path.trim()).join("git-daemon"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", fixture.home())
        .env("XDG_CONFIG_HOME", fixture.home())
        .args([
            "--reuseaddr",
            &format!("--base-path={root}"),
            "--export-all",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &root,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child, port };
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return daemon;
        }
        if let Some(status) = daemon.child.try_wait().unwrap() {
            panic!("git daemon exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("git daemon did not listen on port {port} within 5 s");
}

fn options() -> ReadOptions {
    ReadOptions::with_threads(2)
}

fn read_git(index: &GitIndex, tree: &GitId) -> (Vec<IndexFile>, ReadStats) {
    let mut files = Vec::new();
    let stats = index
        .read_all(tree, &options(), &mut |f| files.push(f))
        .unwrap();
    (files, stats)
}

fn read_dir(root: &Path) -> (Vec<IndexFile>, ReadStats) {
    let mut files = Vec::new();
    let stats = DirIndex::open(root)
        .unwrap()
        .read_all(&options(), &mut |f| files.push(f))
        .unwrap();
    (files, stats)
}

fn paths(files: &[IndexFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

fn id(hex: &str) -> GitId {
    hex.parse().unwrap()
}

#[test]
fn clone_over_file_reads_what_the_checkout_holds() {
    let fx = Fixture::new();
    fx.populate();
    let (commit, tree) = fx.commit("first");

    let dir = fx.root().join("clone.git");
    let index = GitIndex::open_or_clone(&fx.file_url(), &dir).unwrap();
    let head = index.head().unwrap().unwrap();
    assert_eq!((head.commit, head.tree), (id(&commit), id(&tree)));

    let (files, stats) = read_git(&index, &head.tree);
    assert_eq!(
        paths(&files),
        [
            "1/a",
            "2/ab",
            "3/x/xyz",
            "my/_c/my_crate",
            "se/rd/serde",
            "zz/yy/misplaced"
        ]
    );
    assert_eq!(
        (stats.files, stats.entries, stats.bad_lines),
        (5, 7, 2),
        "the stray file and the bad line count as bad lines"
    );
    let stray = files.last().unwrap();
    assert_eq!(stray.problems[0].kind, LineErrorKind::NotAnIndexFile);
    let serde = &files[4];
    assert_eq!(serde.entries[1].vers().as_str(), "1.0.1+build.5");
    assert_eq!(serde.problems[0].line, 2);

    // The same tree read from the checkout gives the same files, stats and order.
    assert_eq!((files.clone(), stats.clone()), read_dir(&fx.work()));
    // A commit stands for its tree, and one thread reads what two read.
    let mut by_commit = Vec::new();
    let stats_1 = index
        .read_all(&head.commit, &ReadOptions::with_threads(1), &mut |f| {
            by_commit.push(f)
        })
        .unwrap();
    assert_eq!((by_commit, stats_1), (files, stats));

    let config = index.config(&head.tree).unwrap().unwrap();
    assert_eq!(config.dl, "http://127.0.0.1:1/api/v1/crates");
    assert_eq!(config.api.as_deref(), Some("http://127.0.0.1:1"));
    assert_eq!(
        Some(config),
        DirIndex::open(fx.work()).unwrap().config().unwrap()
    );

    // Opening again does not fetch and finds the same tip.
    let again = GitIndex::open_or_clone(&fx.file_url(), &dir).unwrap();
    assert_eq!(again.head().unwrap(), Some(head));
}

#[test]
fn clone_and_fetch_over_git_daemon() {
    let fx = Fixture::new();
    fx.populate();
    let (commit, tree) = fx.commit("first");
    let daemon = start_daemon(&fx);
    let url = format!("git://127.0.0.1:{}/index.git", daemon.port);

    let index = GitIndex::open_or_clone(&url, &fx.root().join("clone.git")).unwrap();
    let head = index.head().unwrap().unwrap();
    assert_eq!((head.commit, head.tree), (id(&commit), id(&tree)));
    assert_eq!(read_git(&index, &head.tree), read_dir(&fx.work()));

    fx.write(
        "ne/w-/new-crate",
        &format!("{}\n", line("new-crate", "0.1.0")),
    );
    let (commit, tree) = fx.commit("add new-crate");
    let outcome = index.fetch().unwrap();
    assert_eq!(outcome.previous, Some(head));
    assert_eq!(
        (outcome.current.commit, outcome.current.tree),
        (id(&commit), id(&tree))
    );
    assert!(outcome.tree_changed());
    assert_eq!(
        read_git(&index, &outcome.current.tree),
        read_dir(&fx.work())
    );

    // Nothing new upstream: the tip stays.
    let outcome = index.fetch().unwrap();
    assert_eq!(outcome.previous, Some(outcome.current));
    assert!(!outcome.tree_changed());
}

#[test]
fn fetch_follows_a_squash_and_a_force_push_to_unrelated_history() {
    let fx = Fixture::new();
    fx.populate();
    fx.commit("first");
    fx.write("2/cd", &format!("{}\n", line("cd", "1.0.0")));
    let (_, tree) = fx.commit("second");
    let index = GitIndex::open_or_clone(&fx.file_url(), &fx.root().join("clone.git")).unwrap();
    let before = index.head().unwrap().unwrap();

    // Squash: a new root commit with the same tree.
    let work = fx.work();
    let squashed = fx.git(&work, &["commit-tree", &tree, "-m", "squash"]);
    fx.git(&work, &["update-ref", "refs/heads/master", &squashed]);
    fx.push();
    let outcome = index.fetch().unwrap();
    assert_eq!(outcome.previous, Some(before));
    assert_eq!(outcome.current.commit, id(&squashed));
    assert_eq!(outcome.current.tree, before.tree);
    assert!(!outcome.tree_changed(), "a squash keeps the tree");

    // Then a commit on top of the squash adds a crate.
    fx.write("3/n/new", &format!("{}\n", line("new", "0.1.0")));
    let (commit, tree) = fx.commit("add new");
    let outcome = index.fetch().unwrap();
    assert_eq!(
        (outcome.current.commit, outcome.current.tree),
        (id(&commit), id(&tree))
    );
    let mut files = Vec::new();
    let names = [CrateName::new("new").unwrap()];
    let stats = index
        .read_crates(&outcome.current.tree, &names, &options(), &mut |f| {
            files.push(f)
        })
        .unwrap();
    assert_eq!((stats.files, stats.entries), (1, 1));
    assert_eq!(files[0].entries[0].name().as_str(), "new");

    // A force-push of a history that shares nothing with ours.
    let other = fx.root().join("other");
    fx.git(fx.root(), &["init", "-q", "-b", "master", "other"]);
    std::fs::create_dir_all(other.join("1")).unwrap();
    std::fs::write(other.join("1/z"), format!("{}\n", line("z", "9.0.0"))).unwrap();
    fx.git(&other, &["add", "-A"]);
    fx.git(&other, &["commit", "-q", "-m", "unrelated"]);
    let upstream = fx.upstream().display().to_string();
    fx.git(&other, &["push", "-q", "--force", &upstream, "master"]);
    let outcome = index.fetch().unwrap();
    assert_eq!(
        outcome.current.commit,
        id(&fx.git(&other, &["rev-parse", "HEAD"]))
    );
    assert!(outcome.tree_changed());
    let (files, stats) = read_git(&index, &outcome.current.tree);
    assert_eq!(paths(&files), ["1/z"]);
    assert_eq!((files.clone(), stats), read_dir(&other));
    assert_eq!(index.config(&outcome.current.tree).unwrap(), None);
}

#[test]
fn read_crates_finds_present_names_in_any_case_and_reports_absent_ones() {
    let fx = Fixture::new();
    fx.populate();
    let (_, tree) = fx.commit("first");
    let index = GitIndex::open_or_clone(&fx.file_url(), &fx.root().join("clone.git")).unwrap();

    let names = ["Serde", "nope", "xyz", "my_crate"].map(|n| CrateName::new(n).unwrap());
    let mut files = Vec::new();
    let stats = index
        .read_crates(&id(&tree), &names, &options(), &mut |f| files.push(f))
        .unwrap();
    assert_eq!(paths(&files), ["se/rd/serde", "3/x/xyz", "my/_c/my_crate"]);
    assert_eq!(stats.not_found, ["no/pe/nope"]);
    assert_eq!((stats.files, stats.entries, stats.bad_lines), (3, 4, 1));
    assert_eq!(files[2].entries[0].name().as_str(), "My_Crate");

    // The same as the directory source answers.
    let mut dir_files = Vec::new();
    let dir_stats = DirIndex::open(fx.work())
        .unwrap()
        .read_crates(&names, &options(), &mut |f| dir_files.push(f))
        .unwrap();
    assert_eq!((files, stats), (dir_files, dir_stats));
}

#[test]
fn an_interrupted_clone_is_finished_by_the_next_open() {
    let fx = Fixture::new();
    fx.populate();
    let (commit, _) = fx.commit("first");
    // What a clone leaves behind when it dies between creating the repository and fetching.
    fx.git(fx.root(), &["init", "-q", "--bare", "half.git"]);
    let index = GitIndex::open_or_clone(&fx.file_url(), &fx.root().join("half.git")).unwrap();
    assert_eq!(index.head().unwrap().unwrap().commit, id(&commit));
}

#[test]
fn failures_are_git_errors_naming_what_and_where() {
    let fx = Fixture::new();
    let missing = format!("file://{}", fx.root().join("missing.git").display());
    let dir = fx.root().join("clone.git");
    let err = GitIndex::open_or_clone(&missing, &dir).unwrap_err();
    let Error::Git {
        action, location, ..
    } = &err
    else {
        panic!("expected a git error, got {err:?}");
    };
    assert_eq!((*action, location.as_str()), ("clone", missing.as_str()));
    assert!(err.to_string().starts_with("git clone file://"), "{err}");
    // The message carries gix's causes down to the operating system's.
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );

    // An upstream with no commits has no HEAD to fetch.
    let err = GitIndex::open_or_clone(&fx.file_url(), &fx.root().join("empty.git")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Git {
                action: "clone",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("points to no commit"), "{err}");

    // A directory that holds something else is not taken over.
    let busy = fx.root().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("file"), "x").unwrap();
    let err = GitIndex::open_or_clone(&fx.file_url(), &busy).unwrap_err();
    assert!(matches!(err, Error::Git { action: "open", .. }), "{err}");

    assert!("abc".parse::<GitId>().is_err());
    let hex = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(id(hex).to_string(), hex);
}

fn diff(index: &GitIndex, old: &str, new: &str) -> Vec<(String, ChangeKind)> {
    index
        .diff_trees(&id(old), &id(new))
        .unwrap()
        .into_iter()
        .map(|c| (c.path, c.kind))
        .collect()
}

fn changes(expected: &[(&str, ChangeKind)]) -> Vec<(String, ChangeKind)> {
    expected
        .iter()
        .map(|(p, k)| ((*p).to_owned(), *k))
        .collect()
}

fn read_paths(index: &GitIndex, tree: &GitId, paths: &[&str]) -> (Vec<IndexFile>, ReadStats) {
    let paths = paths.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    let mut files = Vec::new();
    let stats = index
        .read_paths(tree, &paths, &options(), &mut |f| files.push(f))
        .unwrap();
    (files, stats)
}

/// Sets or clears the executable bits of a file in the work tree; git records the mode.
fn set_executable(path: &Path, executable: bool) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = (path, executable);
}

#[test]
fn diff_trees_reports_index_files_added_modified_and_deleted() {
    let fx = Fixture::new();
    fx.populate();
    // A stray file where the next commit puts a directory with an index file in it.
    fx.write("3/q", "a file where a directory will be\n");
    let (commit_1, tree_1) = fx.commit("first");

    fx.write(
        "ne/w-/new-crate",
        &format!("{}\n", line("new-crate", "0.1.0")),
    );
    fx.write(
        "2/ab",
        &format!("{}\n{}\n", line("ab", "1.0.0"), line("ab", "1.1.0")),
    );
    std::fs::remove_file(fx.work().join("1/a")).unwrap();
    std::fs::remove_file(fx.work().join("3/q")).unwrap();
    fx.write("3/q/qux", &format!("{}\n", line("qux", "0.1.0")));
    // None of these is an index file, so none may show in the diff.
    fx.write(
        "config.json",
        r#"{"dl":"http://127.0.0.1:2/api/v1/crates"}"#,
    );
    fx.write(".github/workflows/ci.yml", "on: pull_request\n");
    fx.write(".github/new.md", "new\n");
    fx.write("README.md", "still not an index file\n");
    fx.write(
        "zz/yy/misplaced",
        &format!("{}\n", line("misplaced", "2.0.0")),
    );
    fx.write("zz/yy/also-misplaced", "x\n");
    // A mode change alone leaves the content, and what is read, the same.
    set_executable(&fx.work().join("3/x/xyz"), true);
    // A symlink at an index path.
    #[cfg(unix)]
    {
        std::fs::create_dir_all(fx.work().join("sy/ml")).unwrap();
        std::os::unix::fs::symlink("../../2/ab", fx.work().join("sy/ml/symlink")).unwrap();
    }
    // A submodule (git records a nested repository as a gitlink) at an index path.
    let nested = fx.work().join("su/bm/submod");
    std::fs::create_dir_all(&nested).unwrap();
    fx.git(&nested, &["init", "-q", "-b", "master"]);
    fx.git(&nested, &["commit", "-q", "--allow-empty", "-m", "nested"]);
    let (commit_2, tree_2) = fx.commit("second");

    // What git itself sees changed, to show the test changes what it means to.
    let raw = fx.git(
        &fx.work(),
        &["diff", "--name-only", "--no-renames", &tree_1, &tree_2],
    );
    let mut expected_raw = vec![
        ".github/new.md",
        ".github/workflows/ci.yml",
        "1/a",
        "2/ab",
        "3/q",
        "3/q/qux",
        "3/x/xyz",
        "README.md",
        "config.json",
        "ne/w-/new-crate",
        "su/bm/submod",
        "zz/yy/also-misplaced",
        "zz/yy/misplaced",
    ];
    if cfg!(unix) {
        expected_raw.push("sy/ml/symlink");
    }
    expected_raw.sort_unstable();
    let mut raw = raw.lines().collect::<Vec<_>>();
    raw.sort_unstable();
    assert_eq!(raw, expected_raw);

    let index = GitIndex::open_or_clone(&fx.file_url(), &fx.root().join("clone.git")).unwrap();
    let forward = changes(&[
        ("1/a", ChangeKind::Deleted),
        ("2/ab", ChangeKind::Modified),
        ("3/q/qux", ChangeKind::Added),
        ("ne/w-/new-crate", ChangeKind::Added),
    ]);
    assert_eq!(diff(&index, &tree_1, &tree_2), forward);
    // Commits stand for their trees.
    assert_eq!(diff(&index, &commit_1, &commit_2), forward);
    // Backwards, additions are deletions; a directory that becomes a file is deleted with all it
    // holds.
    assert_eq!(
        diff(&index, &tree_2, &tree_1),
        changes(&[
            ("1/a", ChangeKind::Added),
            ("2/ab", ChangeKind::Modified),
            ("3/q/qux", ChangeKind::Deleted),
            ("ne/w-/new-crate", ChangeKind::Deleted),
        ])
    );
    assert_eq!(diff(&index, &tree_2, &tree_2), []);

    // The diff against the empty tree is every index file, as read_all lists them less the stray.
    let empty = fx.git(&fx.work(), &["hash-object", "-t", "tree", "/dev/null"]);
    let (files, _) = read_git(&index, &id(&tree_2));
    let all = diff(&index, &empty, &tree_2);
    assert!(all.iter().all(|(_, kind)| *kind == ChangeKind::Added));
    assert_eq!(
        all.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        paths(&files)
            .into_iter()
            .filter(|p| !p.starts_with("zz/"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn diff_trees_of_one_tree_or_a_squash_is_empty() {
    let fx = Fixture::new();
    fx.populate();
    let (commit, tree) = fx.commit("first");
    let work = fx.work();
    let squashed = fx.git(&work, &["commit-tree", &tree, "-m", "squash"]);
    fx.git(&work, &["update-ref", "refs/heads/master", &squashed]);
    fx.push();

    let index = GitIndex::open_or_clone(&fx.file_url(), &fx.root().join("clone.git")).unwrap();
    let head = index.head().unwrap().unwrap();
    assert_eq!((head.commit, head.tree), (id(&squashed), id(&tree)));
    assert_eq!(diff(&index, &tree, &tree), []);
    // The clone only has the squash, so the old commit is unknown; its tree is the same one.
    assert!(!index.has_tree(&id(&commit)).unwrap());
    assert!(index.has_tree(&head.tree).unwrap());
    assert_eq!(diff(&index, &tree, &squashed), []);
}

#[test]
fn has_tree_is_false_for_unknown_ids_and_for_history_gone_after_a_gc() {
    let fx = Fixture::new();
    fx.populate();
    let (commit, tree) = fx.commit("first");
    let dir = fx.root().join("clone.git");
    let index = GitIndex::open_or_clone(&fx.file_url(), &dir).unwrap();
    assert!(index.has_tree(&id(&tree)).unwrap());
    assert!(
        index.has_tree(&id(&commit)).unwrap(),
        "a commit peels to its tree"
    );
    let blob = fx.git(&fx.work(), &["rev-parse", "HEAD:1/a"]);
    assert!(!index.has_tree(&id(&blob)).unwrap(), "a blob is no tree");
    let unknown = id("0123456789abcdef0123456789abcdef01234567");
    assert!(!index.has_tree(&unknown).unwrap());
    let err = index.diff_trees(&unknown, &id(&tree)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Git {
                action: "comparing trees",
                ..
            }
        ),
        "{err}"
    );

    // A force-push of a history that shares nothing with the first.
    let other = fx.root().join("other");
    fx.git(fx.root(), &["init", "-q", "-b", "master", "other"]);
    std::fs::create_dir_all(other.join("1")).unwrap();
    std::fs::write(other.join("1/z"), format!("{}\n", line("z", "9.0.0"))).unwrap();
    fx.git(&other, &["add", "-A"]);
    fx.git(&other, &["commit", "-q", "-m", "unrelated"]);
    let upstream = fx.upstream().display().to_string();
    fx.git(&other, &["push", "-q", "--force", &upstream, "master"]);
    let outcome = index.fetch().unwrap();
    // Until a gc, the old objects stay and the old tree can still be compared with the new one.
    assert!(index.has_tree(&id(&tree)).unwrap());
    assert_eq!(
        index
            .diff_trees(&id(&tree), &outcome.current.tree)
            .unwrap()
            .len(),
        6,
        "five index files deleted, one added"
    );

    fx.git(&dir, &["reflog", "expire", "--expire=now", "--all"]);
    fx.git(&dir, &["gc", "-q", "--prune=now"]);
    let reopened = GitIndex::open_or_clone(&fx.file_url(), &dir).unwrap();
    assert!(!reopened.has_tree(&id(&tree)).unwrap());
    assert!(!reopened.has_tree(&id(&commit)).unwrap());
    assert!(reopened.has_tree(&outcome.current.tree).unwrap());
    assert!(reopened.has_tree(&outcome.current.commit).unwrap());
    let err = reopened
        .diff_trees(&id(&tree), &outcome.current.tree)
        .unwrap_err();
    assert!(err.to_string().contains(&tree), "{err}");
    // The handle that was open during the gc may still see the old objects (gix keeps the packs it
    // has mapped, and a deleted file stays readable while mapped); it must at least agree with
    // itself: a tree it has can be compared.
    if index.has_tree(&id(&tree)).unwrap() {
        index.diff_trees(&id(&tree), &outcome.current.tree).unwrap();
    }
}

#[test]
fn read_paths_reads_exactly_the_asked_files() {
    let fx = Fixture::new();
    fx.populate();
    let (commit, tree) = fx.commit("first");
    let index = GitIndex::open_or_clone(&fx.file_url(), &fx.root().join("clone.git")).unwrap();
    let (all, _) = read_git(&index, &id(&tree));
    let file = |p: &str| all.iter().find(|f| f.path == p).unwrap().clone();

    let (files, stats) = read_paths(
        &index,
        &id(&tree),
        &[
            "se/rd/serde",
            "no/pe/nope",
            "1/a",
            // Not index files, though the first three are files in the tree.
            "config.json",
            ".github/workflows/ci.yml",
            "zz/yy/misplaced",
            "3/x",
            "",
            "2/AB",
        ],
    );
    assert_eq!(files, [file("se/rd/serde"), file("1/a")]);
    assert_eq!(
        stats.not_found,
        [
            "no/pe/nope",
            "config.json",
            ".github/workflows/ci.yml",
            "zz/yy/misplaced",
            "3/x",
            "",
            "2/AB"
        ]
    );
    assert_eq!((stats.files, stats.entries, stats.bad_lines), (2, 4, 1));

    // By commit, and the same as asking by crate name.
    let (by_commit, commit_stats) = read_paths(&index, &id(&commit), &["2/ab", "my/_c/my_crate"]);
    let names = ["ab", "My_Crate"].map(|n| CrateName::new(n).unwrap());
    let mut by_name = Vec::new();
    let name_stats = index
        .read_crates(&id(&tree), &names, &options(), &mut |f| by_name.push(f))
        .unwrap();
    assert_eq!((&by_commit, &commit_stats), (&by_name, &name_stats));
    assert_eq!(paths(&by_commit), ["2/ab", "my/_c/my_crate"]);

    assert_eq!(
        read_paths(&index, &id(&tree), &[]),
        (vec![], ReadStats::default())
    );
}

/// What the files that read_all gives hold, by path, less the strays (which hold no entries).
fn index_state(index: &GitIndex, tree: &GitId) -> BTreeMap<String, IndexFile> {
    let (files, _) = read_git(index, tree);
    files
        .into_iter()
        .filter(|f| {
            !f.problems
                .iter()
                .any(|p| p.kind == LineErrorKind::NotAnIndexFile)
        })
        .map(|f| (f.path.clone(), f))
        .collect()
}

/// Places in a small index a step of a history can change: index files of names of every length,
/// a file that is sometimes a directory, strays, and files that are no index files at all.
const SLOTS: &[&str] = &[
    "1/a",
    "1/b",
    "2/ab",
    "3/q",
    "3/q/qux",
    "3/x/xyz",
    "se/rd/serde",
    "se/rd/serde_json",
    "to/ki/tokio",
    "zz/yy/misplaced",
    "config.json",
    ".github/workflows/ci.yml",
];

#[derive(Clone, Debug)]
enum Step {
    /// Write variant `v` of a slot's file (`v` versions, and a bad line when `v` is odd).
    Write(usize, u8),
    Remove(usize),
    /// Flip the executable bit, which does not change what is read.
    Chmod(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..SLOTS.len(), 1..5u8).prop_map(|(s, v)| Step::Write(s, v)),
        1 => (0..SLOTS.len()).prop_map(Step::Remove),
        1 => (0..SLOTS.len()).prop_map(Step::Chmod),
    ]
}

fn apply(fx: &Fixture, step: &Step) {
    let work = fx.work();
    match *step {
        Step::Write(slot, variant) => {
            let rel = SLOTS[slot];
            // A file may take the place of a directory and the other way round.
            let full = work.join(rel);
            if full.is_dir() {
                std::fs::remove_dir_all(&full).unwrap();
            }
            for ancestor in Path::new(rel).ancestors().skip(1) {
                if work.join(ancestor).is_file() {
                    std::fs::remove_file(work.join(ancestor)).unwrap();
                }
            }
            let name = rel.rsplit('/').next().unwrap();
            let mut text = String::new();
            for minor in 0..variant {
                text.push_str(&line(name, &format!("0.{minor}.0")));
                text.push('\n');
            }
            if variant % 2 == 1 {
                text.push_str("not json\n");
            }
            fx.write(rel, &text);
        }
        Step::Remove(slot) => {
            let full = work.join(SLOTS[slot]);
            if full.is_file() {
                std::fs::remove_file(full).unwrap();
            }
        }
        Step::Chmod(slot) => {
            let full = work.join(SLOTS[slot]);
            if full.is_file() {
                let executable = is_executable(&full);
                set_executable(&full, !executable);
            }
        }
    }
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// What an incremental sync does — keep what read_all gave for the old tree, drop the deleted
    /// files and read the added and modified ones — ends where a full read of the new tree does,
    /// between any two trees of a history, forwards and backwards.
    #[test]
    fn diff_and_read_paths_bring_the_old_state_to_the_new(
        history in proptest::collection::vec(proptest::collection::vec(step(), 1..5), 1..5)
    ) {
        let fx = Fixture::new();
        let mut trees = vec![fx.commit("empty").1];
        for (i, steps) in history.iter().enumerate() {
            for step in steps {
                apply(&fx, step);
            }
            trees.push(fx.commit(&format!("step {i}")).1);
        }
        let index = GitIndex::open_or_clone(&fx.file_url(), &fx.root().join("clone.git")).unwrap();
        let states = trees.iter().map(|t| index_state(&index, &id(t))).collect::<Vec<_>>();
        for (old, old_state) in trees.iter().zip(&states) {
            for (new, new_state) in trees.iter().zip(&states) {
                let changes = index.diff_trees(&id(old), &id(new)).unwrap();
                prop_assert!(changes.windows(2).all(|w| w[0].path < w[1].path), "{:?}", changes);
                let mut state = old_state.clone();
                let mut changed = Vec::new();
                for change in changes.iter().cloned() {
                    let had = state.contains_key(&change.path);
                    match change.kind {
                        ChangeKind::Added => prop_assert!(!had, "{:?}", change),
                        ChangeKind::Modified => prop_assert!(had, "{:?}", change),
                        ChangeKind::Deleted => prop_assert!(state.remove(&change.path).is_some(), "{:?}", change),
                    }
                    if change.kind != ChangeKind::Deleted {
                        changed.push(change.path);
                    }
                }
                let mut files = Vec::new();
                let stats = index.read_paths(&id(new), &changed, &options(), &mut |f| files.push(f)).unwrap();
                prop_assert!(stats.not_found.is_empty(), "{:?}", stats);
                prop_assert_eq!(paths(&files), changed.iter().map(String::as_str).collect::<Vec<_>>());
                for file in files {
                    state.insert(file.path.clone(), file);
                }
                prop_assert_eq!(&state, new_state);
                // Nothing is reported that reads the same (a mode change, a stray, config.json).
                if old_state == new_state {
                    prop_assert!(changes.is_empty(), "{:?}", changes);
                }
            }
        }
    }
}
