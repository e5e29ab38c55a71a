//! A registry index in a bare git repository, kept current with forced fetches and read straight
//! from the object database, without a checkout.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use gix::objs::tree::EntryKind;
use gix::remote::Direction;
use gix::remote::fetch::Status;
use gix::remote::fetch::refs::update::Mode;

use crate::read::{read_ordered, report_strays, split_strays};
use crate::{CrateName, Error, IndexConfig, IndexFile, ReadOptions, ReadStats, path};

/// Where the fetched upstream tip is kept. It lives outside `refs/heads` and `refs/remotes` so that
/// nothing else (a user's `git fetch`, gix's clone defaults) ever moves it.
const UPSTREAM_REF: &str = "refs/mirror/upstream";

/// The remote's `HEAD`, forced (`+`): the crates.io index is periodically squashed into a new root
/// commit and may be force-pushed, and either must still move our tip.
const UPSTREAM_REFSPEC: &str = "+HEAD:refs/mirror/upstream";

/// Upper bound of the delta-base cache of each reading thread (which also holds at most 64
/// entries). Index blobs are small, so this already catches the bases that neighbouring files
/// share, and it keeps the reader within its memory budget: gix's default is 96 MB per thread, and
/// the mapped pack already counts towards the resident set.
const PACK_CACHE_BYTES: usize = 16 << 20;

/// A flag nobody sets, for operations that are not interruptible from the outside.
static NEVER_INTERRUPT: AtomicBool = AtomicBool::new(false);

/// The id of a git object (commit or tree), shown and parsed as hexadecimal.
///
/// ```
/// use mirror_index::GitId;
/// let hex = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
/// let id: GitId = hex.parse().unwrap();
/// assert_eq!(id.to_string(), hex);
/// assert!("not hex".parse::<GitId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GitId(gix::ObjectId);

impl GitId {
    fn oid(&self) -> gix::ObjectId {
        self.0
    }
}

impl fmt::Display for GitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.to_hex(), f)
    }
}

impl fmt::Debug for GitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GitId({})", self.0.to_hex())
    }
}

impl FromStr for GitId {
    type Err = Error;

    /// Parses a full hexadecimal object id (40 digits for SHA-1).
    fn from_str(s: &str) -> Result<Self, Error> {
        gix::ObjectId::from_hex(s.as_bytes())
            .map(GitId)
            .map_err(|e| git_error("parsing object id", s, &e))
    }
}

/// A commit and its tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct GitTip {
    /// The commit.
    pub commit: GitId,
    /// The commit's root tree: what the index holds.
    pub tree: GitId,
}

/// What a fetch did to the upstream tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchOutcome {
    /// The tip before the fetch, `None` for the first fetch (the clone).
    pub previous: Option<GitTip>,
    /// The tip now.
    pub current: GitTip,
}

impl FetchOutcome {
    /// Whether the index content changed: the tree differs from before, or there was no before.
    /// A squash (new commit, same tree) is not a change.
    pub fn tree_changed(&self) -> bool {
        self.previous.map(|p| p.tree) != Some(self.current.tree)
    }
}

/// An index file that differs between two trees, as [`GitIndex::diff_trees`] reports it.
///
/// With a diff, a mirror that remembers the tree it last read only reads what changed since:
///
/// ```no_run
/// use mirror_index::{ChangeKind, GitIndex, ReadOptions};
/// let index = GitIndex::open_or_clone("https://example.invalid/index.git", "mirror/.mirror/index.git".as_ref()).unwrap();
/// let outcome = index.fetch().unwrap();
/// // The old tree is gone after a force-push and a gc; then only a full read will do.
/// if let Some(previous) = outcome.previous.filter(|p| index.has_tree(&p.tree).unwrap()) {
///     let changes = index.diff_trees(&previous.tree, &outcome.current.tree).unwrap();
///     for change in changes.iter().filter(|c| c.kind == ChangeKind::Deleted) {
///         println!("gone: {}", change.path);
///     }
///     let changed: Vec<String> = changes
///         .into_iter()
///         .filter(|c| c.kind != ChangeKind::Deleted)
///         .map(|c| c.path)
///         .collect();
///     index.read_paths(&outcome.current.tree, &changed, &ReadOptions::default(), &mut |file| {
///         println!("{}: {} versions", file.path, file.entries.len());
///     }).unwrap();
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TreeChange {
    /// The index path, `/`-separated and relative to the root (`se/rd/serde`).
    pub path: String,
    /// What happened to the file at `path`.
    pub kind: ChangeKind,
}

/// How an index file differs between an old and a new tree.
///
/// Not `#[non_exhaustive]`, unlike the crate's other enums: a path is in one tree, the other or
/// both, so these three cases are all there can be, and a sync that matches on them should be told
/// by the compiler if that ever changes rather than fall into a catch-all arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Only the new tree has the file.
    Added,
    /// Both trees have the file, with different content.
    Modified,
    /// Only the old tree has the file.
    Deleted,
}

/// An index in a local bare git repository that mirrors an upstream one (`file://`, `git://`,
/// `http(s)://` or `ssh://`). Reads go straight to the object database; there is no checkout.
///
/// ```no_run
/// use mirror_index::{GitIndex, ReadOptions};
/// let index = GitIndex::open_or_clone("https://example.invalid/index.git", "mirror/.mirror/index.git".as_ref()).unwrap();
/// let outcome = index.fetch().unwrap();
/// index.read_all(&outcome.current.tree, &ReadOptions::default(), &mut |file| {
///     for entry in &file.entries {
///         println!("{} {} {}", entry.name(), entry.vers(), entry.cksum());
///     }
/// }).unwrap();
/// ```
#[derive(Clone)]
pub struct GitIndex {
    repo: gix::ThreadSafeRepository,
    url: String,
    dir: PathBuf,
}

impl fmt::Debug for GitIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitIndex")
            .field("url", &self.url)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl GitIndex {
    /// Opens the bare repository in `dir`, or, when `dir` is missing or empty, creates one there and
    /// fetches `url` into it (a bare clone). A repository that was never fetched into completely
    /// (an interrupted clone) is fetched into as well. Later fetches use `url`.
    pub fn open_or_clone(url: &str, dir: &Path) -> Result<GitIndex, Error> {
        let _span = tracing::debug_span!("git_open_or_clone", url, dir = %dir.display()).entered();
        let repo = if is_missing_or_empty(dir)? {
            tracing::debug!("creating a bare repository");
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("creating index repository", dir, e))?;
            gix::init_bare(dir).map_err(|e| git_error("init", dir.display(), &e))?
        } else {
            gix::open(dir).map_err(|e| git_error("open", dir.display(), &e))?
        };
        let index = GitIndex {
            repo: repo.into_sync(),
            url: url.to_owned(),
            dir: dir.to_owned(),
        };
        if index.head()?.is_none() {
            index.fetch_as("clone", &NEVER_INTERRUPT)?;
        }
        Ok(index)
    }

    /// The upstream URL fetches come from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local repository directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The upstream tip as of the last fetch, without fetching; `None` if nothing was fetched yet.
    pub fn head(&self) -> Result<Option<GitTip>, Error> {
        let repo = self.repo.to_thread_local();
        upstream_tip(&repo).map_err(|e| self.local_error("reading the upstream tip", &e))
    }

    /// Fetches the upstream's `HEAD`, forced, so that a squashed or force-pushed upstream still
    /// updates the tip.
    pub fn fetch(&self) -> Result<FetchOutcome, Error> {
        self.fetch_as("fetch", &NEVER_INTERRUPT)
    }

    /// Like [`GitIndex::fetch`], but stops with an error soon after `interrupt` becomes `true`.
    /// The repository stays usable: the tip only moves once the new objects are in place.
    pub fn fetch_interruptible(&self, interrupt: &AtomicBool) -> Result<FetchOutcome, Error> {
        self.fetch_as("fetch", interrupt)
    }

    fn fetch_as(
        &self,
        action: &'static str,
        interrupt: &AtomicBool,
    ) -> Result<FetchOutcome, Error> {
        let _span =
            tracing::debug_span!("git_fetch", action, url = %self.url, dir = %self.dir.display())
                .entered();
        let started = std::time::Instant::now();
        let repo = self.repo.to_thread_local();
        let previous =
            upstream_tip(&repo).map_err(|e| self.local_error("reading the upstream tip", &e))?;
        let remote_error = |e: gix::Error| git_error(action, &self.url, &e);
        let remote = repo
            .remote_at(self.url.as_str())
            .map_err(remote_error)?
            .with_fetch_tags(gix::remote::fetch::Tags::None)
            .with_refspecs([UPSTREAM_REFSPEC], Direction::Fetch)
            .map_err(remote_error)?;
        let outcome = remote
            .connect(Direction::Fetch)
            .map_err(remote_error)?
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(remote_error)?
            .receive(gix::progress::Discard, interrupt)
            .map_err(remote_error)?;
        let (update_refs, pack_received) = match &outcome.status {
            Status::NoPackReceived { update_refs, .. } => (update_refs, false),
            Status::Change { update_refs, .. } => (update_refs, true),
        };
        // gix reports a refused update (say, the upstream went back to an empty repository) as a
        // mode rather than an error; carrying on with the old tip would pass stale data off as
        // current.
        if let Some(refused) = update_refs.updates.iter().find(|u| {
            matches!(
                u.mode,
                Mode::RejectedSourceObjectNotFound { .. }
                    | Mode::RejectedTagUpdate
                    | Mode::RejectedNonFastForward
                    | Mode::RejectedToReplaceWithUnborn
                    | Mode::RejectedCurrentlyCheckedOut { .. }
            )
        }) {
            return Err(Error::Git {
                action,
                location: self.url.clone(),
                message: format!("updating {UPSTREAM_REF} was refused: {}", refused.mode),
            });
        }
        let current = upstream_tip(&repo)
            .map_err(|e| self.local_error("reading the upstream tip", &e))?
            .ok_or_else(|| Error::Git {
                action,
                location: self.url.clone(),
                message: "the upstream HEAD points to no commit (an empty repository?)".into(),
            })?;
        let outcome = FetchOutcome { previous, current };
        tracing::debug!(
            commit = %current.commit,
            tree = %current.tree,
            previous_commit = previous.map(|p| p.commit.to_string()),
            tree_changed = outcome.tree_changed(),
            pack_received,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "fetched"
        );
        Ok(outcome)
    }

    /// The `config.json` at the root of `tree` (a tree, or a commit standing for its tree), or
    /// `None` when there is none.
    pub fn config(&self, tree: &GitId) -> Result<Option<IndexConfig>, Error> {
        let repo = self.repo.to_thread_local();
        let err = |e: gix::Error| self.local_error("reading config.json", &e);
        let tree = peel_to_tree(&repo, tree.oid()).map_err(err)?;
        let tree = repo.find_tree(tree).map_err(err)?;
        let Some(entry) = tree.find_entry("config.json") else {
            return Ok(None);
        };
        if !entry.mode().is_blob() {
            return Ok(None);
        }
        let mut blob = repo.find_blob(entry.object_id()).map_err(err)?;
        let origin = format!("{} {}:config.json", self.dir.display(), tree.id);
        IndexConfig::parse(&blob.take_data(), &origin).map(Some)
    }

    /// Every index file in `tree` (a tree, or a commit standing for its tree), in path order,
    /// loaded and parsed on all cores, exactly as [`crate::DirIndex::read_all`] reads a checkout of
    /// it: `config.json` and other files at the root, dot-folders (`.github`), symlinks and
    /// submodules are left out, and files whose path is not where an index file belongs are
    /// reported as a problem of that file and not read.
    pub fn read_all(
        &self,
        tree: &GitId,
        options: &ReadOptions,
        sink: &mut dyn FnMut(IndexFile),
    ) -> Result<ReadStats, Error> {
        let repo = self.repo.to_thread_local();
        let err = |e: gix::Error| self.local_error("listing the tree", &e);
        let tree = peel_to_tree(&repo, tree.oid()).map_err(err)?;
        let started = std::time::Instant::now();
        let (items, stray) = split_strays(
            list_blobs(&repo, tree)
                .map_err(err)?
                .into_iter()
                .map(|(p, id)| (p, Some(id))),
        );
        tracing::debug!(
            %tree,
            files = items.len(),
            stray = stray.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "listed the tree"
        );
        let mut stats = self.read_items(items, options, sink)?;
        report_strays(stray, &mut stats, sink);
        Ok(stats)
    }

    /// The index files of the named crates in `tree` (a tree, or a commit standing for its tree),
    /// in the order given. Crates without an index file are listed in [`ReadStats::not_found`].
    pub fn read_crates(
        &self,
        tree: &GitId,
        names: &[CrateName],
        options: &ReadOptions,
        sink: &mut dyn FnMut(IndexFile),
    ) -> Result<ReadStats, Error> {
        let paths = names.iter().map(path::index_path).collect::<Vec<_>>();
        let items = self.look_up(tree, &paths, "looking up crates in the tree")?;
        self.read_items(items, options, sink)
    }

    /// The index files at `paths` in `tree` (a tree, or a commit standing for its tree), in the
    /// order given: what [`GitIndex::read_crates`] does, by index path, for the paths a
    /// [`GitIndex::diff_trees`] reports as added or modified.
    ///
    /// Paths that hold no index file are listed in [`ReadStats::not_found`]: paths not in the
    /// tree (a deleted file), paths of a directory, symlink or submodule, and paths that are not
    /// where an index file belongs (`config.json`, `.github/…`, a stray such as `zz/yy/misplaced`),
    /// which [`GitIndex::read_all`] would not read either.
    pub fn read_paths(
        &self,
        tree: &GitId,
        paths: &[String],
        options: &ReadOptions,
        sink: &mut dyn FnMut(IndexFile),
    ) -> Result<ReadStats, Error> {
        let items = self.look_up(tree, paths, "looking up paths in the tree")?;
        self.read_items(items, options, sink)
    }

    /// Whether the object `id` is in the local repository and is a tree, or a commit (or tag)
    /// whose tree is. An id the repository does not have is `Ok(false)`: after an upstream
    /// force-push and a gc the tree a mirror last read may be gone, and then
    /// [`GitIndex::diff_trees`] cannot start from it.
    pub fn has_tree(&self, id: &GitId) -> Result<bool, Error> {
        let repo = self.repo.to_thread_local();
        has_tree(&repo, id.oid()).map_err(|e| self.local_error("looking up a tree", &e))
    }

    /// Every index file that differs between the trees `old` and `new` (each a tree, or a commit
    /// standing for its tree), in path order: added, modified (other content; a change of the
    /// file mode alone is none) or deleted.
    ///
    /// Only paths [`GitIndex::read_all`] reads count: files at the root (`config.json`),
    /// dot-folders (`.github`), symlinks and submodules are left out, and so are strays (files
    /// not where an index file belongs), which hold no entries. A file that becomes a directory
    /// (or the other way round) is deleted, and the index files below the directory are added.
    ///
    /// Subtrees with the same id on both sides are not looked into, so the cost follows the size
    /// of the change, not of the index. Both trees must be in the repository (see
    /// [`GitIndex::has_tree`]); a missing one is an error. Reading the added and modified paths of
    /// `new` with [`GitIndex::read_paths`] and dropping the deleted ones turns what `read_all`
    /// gave for `old` into what it gives for `new`.
    pub fn diff_trees(&self, old: &GitId, new: &GitId) -> Result<Vec<TreeChange>, Error> {
        let repo = self.repo.to_thread_local();
        let err = |e: gix::Error| self.local_error("comparing trees", &e);
        let old = peel_to_tree(&repo, old.oid()).map_err(err)?;
        let new = peel_to_tree(&repo, new.oid()).map_err(err)?;
        let started = std::time::Instant::now();
        let changes = diff_index_trees(&repo, old, new).map_err(err)?;
        tracing::debug!(
            %old,
            %new,
            changes = changes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compared the trees"
        );
        Ok(changes)
    }

    /// The blob ids of `paths` in `tree`, `None` where no index file is (see
    /// [`GitIndex::read_paths`]).
    fn look_up(
        &self,
        tree: &GitId,
        paths: &[String],
        action: &'static str,
    ) -> Result<Vec<(String, Option<gix::ObjectId>)>, Error> {
        let repo = self.repo.to_thread_local();
        let err = |e: gix::Error| self.local_error(action, &e);
        let tree = peel_to_tree(&repo, tree.oid()).map_err(err)?;
        let tree = repo.find_tree(tree).map_err(err)?;
        let mut items = Vec::with_capacity(paths.len());
        for p in paths {
            let id = if path::name_of_index_path(p).is_some() {
                tree.lookup_entry(p.split('/'))
                    .map_err(err)?
                    .filter(|entry| entry.mode().is_blob())
                    .map(|entry| entry.object_id())
            } else {
                None
            };
            items.push((p.clone(), id));
        }
        Ok(items)
    }

    /// Loads the blobs of `items` (`None`: not in the tree) on the worker pool, in order.
    fn read_items(
        &self,
        items: Vec<(String, Option<gix::ObjectId>)>,
        options: &ReadOptions,
        sink: &mut dyn FnMut(IndexFile),
    ) -> Result<ReadStats, Error> {
        // Rayon calls `init` for every piece of work it splits off, many times per thread; lending
        // out thread-local repositories from a pool keeps their delta-base caches warm and makes
        // at most one per worker.
        let pool = Mutex::new(Vec::new());
        read_ordered(
            items,
            options,
            || Lease {
                repo: Some(take_or_open(&pool, &self.repo)),
                pool: &pool,
            },
            |lease, rel, id| {
                let Some(id) = id else {
                    return Ok(None);
                };
                let Some(repo) = lease.repo.as_ref() else {
                    return Err(self.local_error_msg("reading", "no repository handle".into()));
                };
                match repo.find_blob(*id) {
                    Ok(mut blob) => Ok(Some(blob.take_data())),
                    Err(e) => Err(Error::Git {
                        action: "reading blob",
                        location: format!("{} {rel}", self.dir.display()),
                        message: error_chain(&e),
                    }),
                }
            },
            sink,
        )
    }

    fn local_error(&self, action: &'static str, e: &(dyn std::error::Error + 'static)) -> Error {
        git_error(action, self.dir.display(), e)
    }

    fn local_error_msg(&self, action: &'static str, message: String) -> Error {
        Error::Git {
            action,
            location: self.dir.display().to_string(),
            message,
        }
    }
}

/// A thread-local repository lent out of a pool, and given back when dropped.
struct Lease<'a> {
    repo: Option<gix::Repository>,
    pool: &'a Mutex<Vec<gix::Repository>>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let (Some(repo), Ok(mut pool)) = (self.repo.take(), self.pool.lock()) {
            pool.push(repo);
        }
    }
}

fn take_or_open(
    pool: &Mutex<Vec<gix::Repository>>,
    shared: &gix::ThreadSafeRepository,
) -> gix::Repository {
    if let Some(repo) = pool.lock().ok().and_then(|mut p| p.pop()) {
        return repo;
    }
    let mut repo = shared.to_thread_local();
    // Every blob and tree is read once, so an object cache would only cost memory; the pack's
    // delta-base cache is what saves work.
    repo.object_cache_size(None);
    repo.objects.set_pack_cache(|| {
        Box::new(gix::odb::pack::cache::lru::StaticLinkedList::<64>::new(
            PACK_CACHE_BYTES,
        ))
    });
    repo
}

fn is_missing_or_empty(dir: &Path) -> Result<bool, Error> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io("opening index repository", dir, e)),
    }
}

/// The commit and tree `refs/mirror/upstream` points to, if it exists.
fn upstream_tip(repo: &gix::Repository) -> Result<Option<GitTip>, gix::Error> {
    let Some(mut reference) = repo.try_find_reference(UPSTREAM_REF)? else {
        return Ok(None);
    };
    // A fetch from an empty repository leaves the ref symbolic, pointing at the upstream's unborn
    // branch: there is no tip yet.
    if let gix::refs::TargetRef::Symbolic(target) = reference.target()
        && repo.try_find_reference(target)?.is_none()
    {
        return Ok(None);
    }
    let commit = reference.peel_to_commit()?;
    Ok(Some(GitTip {
        commit: GitId(commit.id),
        tree: GitId(commit.tree_id()?.detach()),
    }))
}

/// `id` itself if it is a tree, else the tree of the commit (or tag) it names.
fn peel_to_tree(repo: &gix::Repository, id: gix::ObjectId) -> Result<gix::ObjectId, gix::Error> {
    let object = repo.find_object(id)?;
    if object.kind == gix::objs::Kind::Tree {
        return Ok(id);
    }
    Ok(object.peel_to_tree()?.id)
}

/// Whether `id` names a tree, or a commit or tag that peels to one, in `repo`; `false` when any
/// object on the way is missing.
fn has_tree(repo: &gix::Repository, mut id: gix::ObjectId) -> Result<bool, gix::Error> {
    loop {
        let Some(object) = repo.try_find_object(id)? else {
            return Ok(false);
        };
        id = match object.kind {
            gix::objs::Kind::Tree => return Ok(true),
            gix::objs::Kind::Blob => return Ok(false),
            gix::objs::Kind::Commit => object.into_commit().tree_id()?.detach(),
            gix::objs::Kind::Tag => object.into_tag().target_id()?.detach(),
        };
    }
}

/// An entry of an index tree that may lead to an index file.
#[derive(Clone, Copy)]
enum Node {
    Dir(gix::ObjectId),
    File(gix::ObjectId),
}

/// What the entry `entry` of the tree at path `rel` (`""` for the root) is to a reader of the
/// index: its `/`-separated path from the root and whether it is a directory or a file, or `None`
/// when it can be no index file and hold none. Mirrors [`crate::DirIndex::list_paths`]: entries
/// whose name starts with a dot, files at the root, symlinks and submodules are left out, the
/// latter two (and names that are not UTF-8) with a warning if `warn` is set.
fn classify(
    rel: &str,
    entry: &gix::objs::tree::EntryRef<'_>,
    warn: bool,
) -> Option<(String, Node)> {
    let Ok(name) = std::str::from_utf8(entry.filename) else {
        if warn {
            tracing::warn!(dir = rel, name = %entry.filename, "skipping a file whose name is not UTF-8");
        }
        return None;
    };
    if name.starts_with('.') {
        return None;
    }
    let child = || {
        if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        }
    };
    let id = entry.oid.to_owned();
    match entry.mode.kind() {
        EntryKind::Tree => Some((child(), Node::Dir(id))),
        EntryKind::Blob | EntryKind::BlobExecutable => {
            (!rel.is_empty()).then(|| (child(), Node::File(id)))
        }
        EntryKind::Link => {
            if warn {
                tracing::warn!(path = child(), "skipping a symlink in the index");
            }
            None
        }
        EntryKind::Commit => {
            if warn {
                tracing::warn!(path = child(), "skipping a submodule in the index");
            }
            None
        }
    }
}

/// Every file below the root of `tree` that may be an index file, as sorted `/`-separated paths
/// with their blob ids (see [`classify`] for what is left out).
fn list_blobs(
    repo: &gix::Repository,
    tree: gix::ObjectId,
) -> Result<Vec<(String, gix::ObjectId)>, gix::Error> {
    let mut out = Vec::new();
    let mut stack = vec![(tree, String::new())];
    while let Some((id, rel)) = stack.pop() {
        let tree = repo.find_tree(id)?;
        for entry in tree.iter() {
            match classify(&rel, &entry?.inner, true) {
                Some((child, Node::Dir(id))) => stack.push((id, child)),
                Some((child, Node::File(id))) => out.push((child, id)),
                None => {}
            }
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The index files that differ between the trees `old` and `new`, in path order (see
/// [`GitIndex::diff_trees`]).
///
/// Both trees are walked together, directory by directory, merging each directory's entries in
/// git's order; entries with the same name, mode and id on both sides are passed over without a
/// look inside (or an allocation), so only the directories on the way to a change are read. gix's
/// tree diff would do the walk too, but would report the files [`classify`] leaves out, and need
/// the same filtering after the fact.
fn diff_index_trees(
    repo: &gix::Repository,
    old: gix::ObjectId,
    new: gix::ObjectId,
) -> Result<Vec<TreeChange>, gix::Error> {
    let mut out = Vec::new();
    let mut strays = 0usize;
    // Pairs of directories at the same path, `None` where one side has no directory there.
    let mut stack = vec![(Some(old), Some(new), String::new())];
    while let Some((old, new, rel)) = stack.pop() {
        if old == new {
            continue;
        }
        let old = old.map(|id| repo.find_tree(id)).transpose()?;
        let new = new.map(|id| repo.find_tree(id)).transpose()?;
        let olds = sorted_entries(old.as_ref())?;
        let news = sorted_entries(new.as_ref())?;
        let (mut i, mut j) = (0, 0);
        loop {
            let (o, n) = match (olds.get(i), news.get(j)) {
                (None, None) => break,
                (Some(o), None) => (Some(o), None),
                (None, Some(n)) => (None, Some(n)),
                (Some(o), Some(n)) => match o.cmp(n) {
                    Ordering::Less => (Some(o), None),
                    Ordering::Greater => (None, Some(n)),
                    Ordering::Equal if o.oid == n.oid && o.mode == n.mode => {
                        i += 1;
                        j += 1;
                        continue;
                    }
                    Ordering::Equal => (Some(o), Some(n)),
                },
            };
            i += usize::from(o.is_some());
            j += usize::from(n.is_some());
            // The old side was warned about when it was read as new.
            let o = o.and_then(|e| classify(&rel, e, false));
            let n = n.and_then(|e| classify(&rel, e, true));
            let Some(path) = o.as_ref().or(n.as_ref()).map(|(p, _)| p.clone()) else {
                continue;
            };
            let (o, n) = (o.map(|(_, node)| node), n.map(|(_, node)| node));
            let file = |node| match node {
                Some(Node::File(id)) => Some(id),
                _ => None,
            };
            let dir = |node| match node {
                Some(Node::Dir(id)) => Some(id),
                _ => None,
            };
            let kind = match (file(o), file(n)) {
                // A change of mode alone (executable or not) is no change to what is read.
                (Some(a), Some(b)) if a != b => Some(ChangeKind::Modified),
                (Some(_), None) => Some(ChangeKind::Deleted),
                (None, Some(_)) => Some(ChangeKind::Added),
                _ => None,
            };
            let (old_dir, new_dir) = (dir(o), dir(n));
            if old_dir != new_dir {
                stack.push((old_dir, new_dir, path.clone()));
            }
            if let Some(kind) = kind {
                if path::name_of_index_path(&path).is_some() {
                    out.push(TreeChange { path, kind });
                } else {
                    strays += 1;
                }
            }
        }
    }
    if strays > 0 {
        tracing::debug!(strays, "left changed files out that are not index files");
    }
    out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The entries of `tree` (none for `None`) in git's order, which is how git writes them; a tree
/// written otherwise is sorted, so that merging two trees by name stays correct.
fn sorted_entries<'a>(
    tree: Option<&'a gix::Tree<'_>>,
) -> Result<Vec<gix::objs::tree::EntryRef<'a>>, gix::Error> {
    let Some(tree) = tree else {
        return Ok(Vec::new());
    };
    let mut entries = tree.decode()?.entries;
    if !entries.is_sorted() {
        entries.sort();
    }
    Ok(entries)
}

fn git_error(
    action: &'static str,
    location: impl fmt::Display,
    e: &(dyn std::error::Error + 'static),
) -> Error {
    Error::Git {
        action,
        location: location.to_string(),
        message: error_chain(e),
    }
}

/// `e` and its causes, joined with `: `, leaving out causes the message already contains.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
