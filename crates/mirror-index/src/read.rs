//! Reading many index files on all cores while handing them to the caller in a stable order.

use std::sync::mpsc;

use rayon::prelude::*;

use crate::{Error, IndexFile};

/// Options for reading many index files.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Worker threads for loading and parsing; 0 means one per available core.
    pub threads: usize,
}

impl ReadOptions {
    /// Options with `threads` workers (0: one per core).
    pub fn with_threads(threads: usize) -> Self {
        ReadOptions { threads }
    }
}

/// What a read went through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadStats {
    /// Index files read.
    pub files: usize,
    /// Valid entries handed out.
    pub entries: usize,
    /// Lines skipped as bad.
    pub bad_lines: usize,
    /// Bytes of index files read.
    pub bytes: u64,
    /// Index paths asked for (by crate name or by path) that hold no index file.
    pub not_found: Vec<String>,
}

/// Splits the file paths of an index tree into index files (with what `load` needs to find them)
/// and strays: files whose path is not where any crate's index file belongs.
pub(crate) fn split_strays<L>(
    paths: impl IntoIterator<Item = (String, L)>,
) -> (Vec<(String, L)>, Vec<String>) {
    let mut stray = Vec::new();
    let items = paths
        .into_iter()
        .filter_map(|(p, locator)| {
            if crate::path::name_of_index_path(&p).is_some() {
                Some((p, locator))
            } else {
                stray.push(p);
                None
            }
        })
        .collect();
    (items, stray)
}

/// Reports each stray file as a problem of that file (line 0), after the index files were read.
pub(crate) fn report_strays(
    stray: Vec<String>,
    stats: &mut ReadStats,
    sink: &mut dyn FnMut(IndexFile),
) {
    for p in stray {
        stats.bad_lines += 1;
        sink(IndexFile {
            problems: vec![crate::LineError {
                file: p.clone(),
                line: 0,
                kind: crate::LineErrorKind::NotAnIndexFile,
            }],
            path: p,
            entries: Vec::new(),
        });
    }
}

/// Files loaded and parsed per batch. Large enough to keep both cores busy, small enough that a
/// batch of crates.io-sized files stays within a few MB.
const BATCH: usize = 256;

/// Loads and parses `items` (index path plus whatever `load` needs to find the bytes) on a worker
/// pool and calls `sink` for each file in the order of `items`. `init` makes each worker's private
/// state (a thread-local repository handle, say). `load` returns `None` for a file that is gone.
pub(crate) fn read_ordered<L, S>(
    items: Vec<(String, L)>,
    options: &ReadOptions,
    init: impl Fn() -> S + Sync,
    load: impl Fn(&mut S, &str, &L) -> Result<Option<Vec<u8>>, Error> + Sync,
    sink: &mut dyn FnMut(IndexFile),
) -> Result<ReadStats, Error>
where
    L: Sync,
{
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(2, usize::from),
        n => n,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("index-read-{i}"))
        .build()
        .map_err(|e| Error::Io {
            action: "starting index reader threads",
            path: Default::default(),
            source: std::io::Error::other(e),
        })?;
    let mut stats = ReadStats::default();
    let (tx, rx) = mpsc::sync_channel::<Result<Vec<(Option<IndexFile>, String, u64)>, Error>>(2);
    let (pool, init, load, items) = (&pool, &init, &load, &items);
    std::thread::scope(|scope| {
        // The producer owns `tx`, so the consumer's loop ends when the producer is done.
        scope.spawn(move || {
            for batch in items.chunks(BATCH) {
                let parsed = pool.install(|| {
                    batch
                        .par_iter()
                        .map_init(init, |state, (path, locator)| {
                            let bytes = load(state, path, locator)?;
                            Ok(match bytes {
                                Some(data) => {
                                    let len = data.len() as u64;
                                    (Some(IndexFile::parse(path, &data)), path.clone(), len)
                                }
                                None => (None, path.clone(), 0),
                            })
                        })
                        .collect::<Result<Vec<_>, Error>>()
                });
                let failed = parsed.is_err();
                if tx.send(parsed).is_err() || failed {
                    return;
                }
            }
        });
        for batch in rx {
            for (file, path, len) in batch? {
                match file {
                    Some(file) => {
                        stats.files += 1;
                        stats.bytes += len;
                        stats.entries += file.entries.len();
                        stats.bad_lines += file.problems.len();
                        sink(file);
                    }
                    None => stats.not_found.push(path),
                }
            }
        }
        Ok(stats)
    })
}
