//! The git index source against repositories built with the real `git` CLI, served over `file://`
//! and over a `git daemon` on loopback.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mirror_index::{
    CrateName, DirIndex, Error, GitId, GitIndex, IndexFile, LineErrorKind, ReadOptions, ReadStats,
};

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
