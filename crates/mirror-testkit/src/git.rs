//! Git helpers for test registries: bare index repositories built with the git CLI, reproducibly.
//!
//! Every command runs with a fixed author, committer and date, no system or user configuration
//! (`GIT_CONFIG_NOSYSTEM=1`, `HOME` pointing at an empty temporary directory), so the same tree and
//! message always give the same commit id, on any machine.
//!
//! ```no_run
//! use mirror_testkit::git;
//! # fn main() -> mirror_testkit::Result<()> {
//! let first = git::write_git_index("tree".as_ref(), "index.git".as_ref(), "first")?;
//! // Change files under `tree`, then add a second commit on top of the first.
//! let second = git::write_git_index("tree".as_ref(), "index.git".as_ref(), "second")?;
//! assert_eq!(git::head_commit("index.git".as_ref())?, Some(second));
//! // A squash: a new root commit with the same tree, as crates.io does now and then.
//! let mut squash = git::CommitOptions::new("squash");
//! squash.squash = true;
//! git::write_git_index_with("tree".as_ref(), "index.git".as_ref(), &squash)?;
//! # let _ = first;
//! # Ok(())
//! # }
//! ```

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// The branch every helper writes, the one the crates.io index uses.
pub const BRANCH: &str = "master";

/// Author and committer time of commits made without an explicit time (2023-11-14T22:13:20Z).
pub const COMMIT_TIME: i64 = 1_700_000_000;

/// Author and committer name of every commit.
pub const AUTHOR_NAME: &str = "mirror-testkit";

/// Author and committer e-mail of every commit.
pub const AUTHOR_EMAIL: &str = "testkit@example.invalid";

/// How [`write_git_index_with`] makes its commit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitOptions {
    /// The commit message.
    pub message: String,
    /// Author and committer time, seconds since the epoch (UTC).
    pub time: i64,
    /// Make a new root commit even when the branch already has commits, the way the crates.io
    /// index is squashed: same tree, no parent.
    pub squash: bool,
}

impl CommitOptions {
    /// A commit on top of the branch (if any) with `message` at [`COMMIT_TIME`].
    pub fn new(message: impl Into<String>) -> Self {
        CommitOptions {
            message: message.into(),
            time: COMMIT_TIME,
            squash: false,
        }
    }
}

/// Commits the files under `tree_dir` to [`BRANCH`] of the bare repository `bare_repo`, creating
/// the repository if needed, on top of the branch's current commit. Returns the new commit id.
///
/// Everything below `tree_dir` is committed, dot-files such as `.github/` included (a `.git`
/// inside it is not). Calling it again after changing the tree adds a commit; deleted files are
/// deleted in the new commit.
pub fn write_git_index(tree_dir: &Path, bare_repo: &Path, message: &str) -> Result<String> {
    write_git_index_with(tree_dir, bare_repo, &CommitOptions::new(message))
}

/// [`write_git_index`] with a chosen time, or as a new root commit.
pub fn write_git_index_with(
    tree_dir: &Path,
    bare_repo: &Path,
    options: &CommitOptions,
) -> Result<String> {
    init_bare(bare_repo)?;
    let env = GitEnv::new()?;
    // A private index file: the bare repository has no work tree of its own, and a shared index
    // would let two calls (or a stale file from a crashed run) disturb each other.
    let index_file = env.home.path().join("index");
    let mut add = env.command(bare_repo);
    add.env("GIT_INDEX_FILE", &index_file)
        .arg("--work-tree")
        .arg(tree_dir)
        .args(["add", "--all", "--force", "--", "."]);
    run(
        add,
        &format!("add --all {}", tree_dir.display()),
        bare_repo,
        None,
    )?;
    let mut write_tree = env.command(bare_repo);
    write_tree
        .env("GIT_INDEX_FILE", &index_file)
        .arg("write-tree");
    let tree = run(write_tree, "write-tree", bare_repo, None)?;

    let parent = if options.squash {
        None
    } else {
        rev_parse(bare_repo, &format!("refs/heads/{BRANCH}"))?
    };
    let mut commit = env.command(bare_repo);
    commit.arg("commit-tree").arg(&tree);
    if let Some(parent) = &parent {
        commit.arg("-p").arg(parent);
    }
    let date = format!("{} +0000", options.time);
    commit
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date);
    let mut message = options.message.clone().into_bytes();
    if !message.ends_with(b"\n") {
        message.push(b'\n');
    }
    let id = run(commit, "commit-tree", bare_repo, Some(&message))?;
    let mut update = env.command(bare_repo);
    update.args(["update-ref", &format!("refs/heads/{BRANCH}"), &id]);
    run(update, "update-ref", bare_repo, None)?;
    Ok(id)
}

/// Creates an empty bare repository whose `HEAD` points at [`BRANCH`], unless `bare_repo` already
/// is a repository.
pub fn init_bare(bare_repo: &Path) -> Result<()> {
    if bare_repo.join("HEAD").is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(bare_repo).map_err(|e| Error::io("creating", bare_repo, e))?;
    let env = GitEnv::new()?;
    let mut init = env.bare_command();
    // No template: sample hooks and `info/exclude` are noise, and templates differ between git
    // installations.
    init.args([
        "init",
        "--quiet",
        "--bare",
        "--template=",
        "--initial-branch",
        BRANCH,
    ])
    .arg(bare_repo);
    run(init, "init --bare", bare_repo, None)?;
    Ok(())
}

/// The commit `HEAD` points at, or `None` in a repository without commits.
pub fn head_commit(bare_repo: &Path) -> Result<Option<String>> {
    rev_parse(bare_repo, "HEAD")
}

/// Resolves `rev` (`HEAD`, a branch, `HEAD^{tree}`, ...) to an object id, or `None` if it does
/// not exist.
pub fn rev_parse(bare_repo: &Path, rev: &str) -> Result<Option<String>> {
    let env = GitEnv::new()?;
    let mut cmd = env.command(bare_repo);
    cmd.args(["rev-parse", "--verify", "--quiet", "--end-of-options", rev]);
    let output = cmd
        .output()
        .map_err(|e| git_error("rev-parse", bare_repo, e))?;
    match output.status.code() {
        Some(0) => Ok(Some(
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        )),
        Some(1) => Ok(None),
        _ => Err(Error::Git {
            command: format!("rev-parse {rev}"),
            dir: bare_repo.to_owned(),
            message: failure(&output),
        }),
    }
}

/// Runs `git` with `args` in `git_dir` (as `--git-dir`) under the same reproducible environment as
/// the other helpers, and returns its standard output, trimmed. For anything the helpers do not
/// cover (`git gc`, `git update-ref -d`, ...).
pub fn git(git_dir: &Path, args: &[&str]) -> Result<String> {
    let env = GitEnv::new()?;
    let mut cmd = env.command(git_dir);
    cmd.args(args);
    run(cmd, &args.join(" "), git_dir, None)
}

/// Streams a `git fast-import` command stream into the bare repository `bare_repo` (created if
/// needed). `write` produces the stream; it should end with `done`, as the import runs with
/// `--done` so that a stream cut short fails instead of committing half a tree.
///
/// Objects are stored whole (`--depth=0`): a fresh clone of the real index stores the newest blob
/// of each file whole too, and readers then measure reading, not delta resolution.
pub fn fast_import(
    bare_repo: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    init_bare(bare_repo)?;
    let env = GitEnv::new()?;
    let mut cmd = env.command(bare_repo);
    cmd.args(["fast-import", "--quiet", "--done", "--depth=0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| git_error("fast-import", bare_repo, e))?;
    let written = {
        let stdin = child.stdin.take().expect("stdin was piped");
        let mut stdin = std::io::BufWriter::with_capacity(1 << 20, stdin);
        write(&mut stdin).and_then(|()| stdin.flush())
    };
    let output = child
        .wait_with_output()
        .map_err(|e| git_error("fast-import", bare_repo, e))?;
    if !output.status.success() {
        return Err(Error::Git {
            command: "fast-import".into(),
            dir: bare_repo.to_owned(),
            message: failure(&output),
        });
    }
    written.map_err(|e| git_error("fast-import (writing the stream)", bare_repo, e))
}

/// A temporary, empty home directory and the environment that makes git reproducible.
struct GitEnv {
    home: tempfile::TempDir,
}

impl GitEnv {
    fn new() -> Result<Self> {
        let home = tempfile::Builder::new()
            .prefix("testkit-git-home")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", std::env::temp_dir(), e))?;
        Ok(GitEnv { home })
    }

    /// A git command outside any repository.
    fn bare_command(&self) -> Command {
        let mut cmd = Command::new("git");
        // Variables that would point git at another repository or inject configuration, as they
        // are set when tests run from a git hook.
        for var in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            "GIT_CONFIG",
            "GIT_CONFIG_PARAMETERS",
            "GIT_CONFIG_COUNT",
            "GIT_NAMESPACE",
            "GIT_CEILING_DIRECTORIES",
        ] {
            cmd.env_remove(var);
        }
        let home = self.home.path();
        cmd.env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", home.join("gitconfig"))
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home)
            .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
            .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
            .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
            .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
            .env("GIT_AUTHOR_DATE", format!("{COMMIT_TIME} +0000"))
            .env("GIT_COMMITTER_DATE", format!("{COMMIT_TIME} +0000"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        // Line-ending or file-mode conversion would make the tree depend on the machine.
        cmd.args([
            "-c",
            "core.autocrlf=false",
            "-c",
            "core.fileMode=true",
            "-c",
            "core.symlinks=true",
            "-c",
            "gc.auto=0",
        ]);
        cmd
    }

    /// A git command on the repository `git_dir`.
    fn command(&self, git_dir: &Path) -> Command {
        let mut cmd = self.bare_command();
        cmd.arg("--git-dir").arg(git_dir);
        cmd
    }
}

/// Runs `cmd`, feeding it `stdin` if given, and returns its trimmed standard output.
fn run(mut cmd: Command, what: &str, dir: &Path, stdin: Option<&[u8]>) -> Result<String> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| git_error(what, dir, e))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin was piped");
        pipe.write_all(input).map_err(|e| git_error(what, dir, e))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| git_error(what, dir, e))?;
    if !output.status.success() {
        return Err(Error::Git {
            command: what.into(),
            dir: dir.to_owned(),
            message: failure(&output),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn git_error(what: &str, dir: &Path, e: std::io::Error) -> Error {
    Error::Git {
        command: what.into(),
        dir: dir.to_owned(),
        message: e.to_string(),
    }
}

fn failure(output: &std::process::Output) -> String {
    format!(
        "{}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )
}
