//! A crates.io-scale synthetic index (about 250k crates, 2.6M lines, 2 GB), deterministic from a
//! seed, as a sparse-layout directory and as a bare git repository, for benchmarks.

mod lines;
mod names;
mod rng;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use mirror_index::{CrateName, index_path};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::real::{DEFAULT_DL, config_json, create_dir, remove_dir, write_file};
use crate::{Result, git};
use lines::CrateSpec;
use rng::Rng;

/// The seed `cargo xtask fixtures` uses unless told otherwise.
pub const DEFAULT_SEED: u64 = 2026;

/// The number of crates of a crates.io-scale index (crates.io had about that many in 2026).
pub const DEFAULT_CRATES: usize = 250_000;

/// Crates generated, written and streamed to git per batch: enough to keep every core busy,
/// few enough (about 35 MB of lines) to keep memory flat.
const BATCH: usize = 4096;

/// What [`synthetic_index`] generates.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyntheticOptions {
    /// Everything generated follows from it.
    pub seed: u64,
    /// Number of crates (index files).
    pub crates: usize,
    /// The `dl` value of `config.json`.
    pub dl: String,
    /// Also build the bare git repository (`index.git`).
    pub git: bool,
}

impl SyntheticOptions {
    /// `crates` crates from `seed`, with the default `dl` and a git repository.
    pub fn new(seed: u64, crates: usize) -> Self {
        SyntheticOptions {
            seed,
            crates,
            dl: DEFAULT_DL.into(),
            git: true,
        }
    }
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        SyntheticOptions::new(DEFAULT_SEED, DEFAULT_CRATES)
    }
}

/// A synthetic index built by [`synthetic_index`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyntheticIndex {
    /// `out_dir/synthetic`, holding everything below.
    pub root: PathBuf,
    /// The sparse-layout tree: `config.json` and one file per crate.
    pub dir: PathBuf,
    /// The bare git repository with one commit of the same tree, when asked for.
    pub git: Option<PathBuf>,
    /// The commit id of the git repository's `HEAD`.
    pub commit: Option<String>,
    /// `manifest.tsv`: `sha256 TAB size TAB path` for every file of `dir`, sorted by path.
    pub manifest: PathBuf,
    /// SHA-256 of `manifest.tsv`: equal digests mean byte-identical trees.
    pub digest: String,
    /// Crates (index files).
    pub crates: usize,
    /// Index lines.
    pub lines: u64,
    /// Bytes of index files (without `config.json`).
    pub bytes: u64,
}

/// Generates a synthetic index under `out_dir/synthetic/`: `dir/` (sparse layout with
/// `config.json`), `index.git` (bare, one commit, built with `git fast-import`),
/// `manifest.tsv` (a digest of every file) and `summary.json`. Anything already in
/// `out_dir/synthetic` is removed first.
///
/// The index looks like crates.io's: real-looking names (1-, 2- and 3-letter ones, mixed case,
/// unique ignoring case and `-`/`_`), a long tail of versions per crate (most have a few, some
/// hundreds), lines of 0.5 to 1.5 KB with dependency arrays, feature maps, some `features2` with
/// `"v":2`, `pubtime`, `rust_version`, `links`, yanked lines, `+` build metadata, pre-releases and
/// backports. Checksums are SHA-256 of the seed, name and version: there are no crate files.
///
/// ```no_run
/// use mirror_testkit::{SyntheticOptions, synthetic_index};
/// let index = synthetic_index("target/fixtures".as_ref(), &SyntheticOptions::new(1, 1000)).unwrap();
/// assert_eq!(index.crates, 1000);
/// ```
pub fn synthetic_index(out_dir: &Path, options: &SyntheticOptions) -> Result<SyntheticIndex> {
    let root = out_dir.join("synthetic");
    let dir = root.join("dir");
    let git_dir = root.join("index.git");
    remove_dir(&root)?;
    create_dir(&dir)?;

    let seed = options.seed;
    let names = names::generate(seed, options.crates);
    let specs = plan(seed, names.len());
    // Files are produced in path order so that the git stream, hence the pack, is reproducible.
    let mut order: Vec<(String, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Ok((index_path(&CrateName::new(n)?), i)))
        .collect::<Result<_>>()?;
    order.sort_unstable();
    let parents: BTreeSet<&str> = order
        .iter()
        .filter_map(|(p, _)| p.rsplit_once('/').map(|(d, _)| d))
        .collect();
    for parent in parents {
        create_dir(&dir.join(parent))?;
    }
    let config = config_json(&options.dl);
    write_file(&dir.join("config.json"), &config)?;

    let mut manifest = Vec::with_capacity(order.len() * 100);
    push_manifest(
        &mut manifest,
        "config.json",
        &config,
        &hex(&Sha256::digest(&config)),
    );
    let mut totals = (0u64, 0u64);
    let (tx, rx) = mpsc::sync_channel::<Batch>(2);
    let produced = std::thread::scope(|scope| -> Result<()> {
        let feeder = options.git.then(|| {
            let git_dir = &git_dir;
            let config = &config;
            scope.spawn(move || feed_git(git_dir, config, rx))
        });
        let mut result = Ok(());
        for chunk in order.chunks(BATCH) {
            let files: Vec<Result<GeneratedFile>> = chunk
                .par_iter()
                .map(|(path, i)| {
                    let mut data = Vec::with_capacity(specs[*i].versions * 900);
                    let lines = lines::crate_file(seed, &specs[*i], &names, &mut data);
                    write_file(&dir.join(path), &data)?;
                    let sum = hex(&Sha256::digest(&data));
                    Ok((path.clone(), data, lines as u64, sum))
                })
                .collect();
            let mut batch = Vec::with_capacity(files.len());
            for file in files {
                let (path, data, lines, sum) = match file {
                    Ok(file) => file,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                };
                totals.0 += lines;
                totals.1 += data.len() as u64;
                push_manifest(&mut manifest, &path, &data, &sum);
                batch.push((path, data));
            }
            if result.is_err() {
                break;
            }
            if feeder.is_some() && tx.send(Batch::Files(batch)).is_err() {
                // The feeder stopped: its error says why.
                break;
            }
        }
        if result.is_ok() && feeder.is_some() {
            // Without this the feeder cannot tell a finished stream from an abandoned one.
            let _ = tx.send(Batch::Finish);
        }
        drop(tx);
        if let Some(feeder) = feeder {
            let fed = feeder.join().expect("the git feeder does not panic");
            result.and(fed)
        } else {
            result
        }
    });
    produced?;

    let manifest_path = root.join("manifest.tsv");
    write_file(&manifest_path, &manifest)?;
    let digest = hex(&Sha256::digest(&manifest));
    let commit = if options.git {
        git::head_commit(&git_dir)?
    } else {
        None
    };
    let summary = format!(
        "{{\"seed\":{seed},\"crates\":{},\"lines\":{},\"bytes\":{},\"commit\":{},\"manifest_sha256\":\"{digest}\"}}\n",
        names.len(),
        totals.0,
        totals.1,
        commit
            .as_deref()
            .map_or("null".into(), |c| format!("\"{c}\"")),
    );
    write_file(&root.join("summary.json"), summary.as_bytes())?;
    Ok(SyntheticIndex {
        root,
        dir,
        git: options.git.then_some(git_dir),
        commit,
        manifest: manifest_path,
        digest,
        crates: names.len(),
        lines: totals.0,
        bytes: totals.1,
    })
}

/// How many versions each crate has: most a handful, a long tail up to a thousand, the oldest
/// (most depended-on) crates more. The mean is about 10.5 lines per crate.
fn plan(seed: u64, crates: usize) -> Vec<CrateSpec> {
    let mut rng = Rng::derive(seed, 3, 0);
    (0..crates)
        .map(|index| {
            let versions = match rng.below(1000) {
                0..458 => 1,
                458..678 => rng.range(2, 3),
                678..828 => rng.range(4, 9),
                828..938 => rng.range(10, 29),
                938..988 => rng.range(30, 99),
                988..998 => rng.range(100, 299),
                _ => rng.range(300, 1000),
            };
            let versions = if index < crates / 200 {
                (versions * 3).min(1500)
            } else {
                versions
            };
            CrateSpec {
                index,
                versions: versions as usize,
            }
        })
        .collect()
}

/// Index path, content, number of lines and SHA-256 (hex) of one generated file.
type GeneratedFile = (String, Vec<u8>, u64, String);

enum Batch {
    Files(Vec<(String, Vec<u8>)>),
    Finish,
}

/// Streams every file received on `rx` into `git fast-import` as a blob, then one commit of all of
/// them at the fixed testkit identity and time.
fn feed_git(git_dir: &Path, config: &[u8], rx: mpsc::Receiver<Batch>) -> Result<()> {
    git::fast_import(git_dir, |w| {
        let mut paths = vec!["config.json".to_owned()];
        blob(w, 1, config)?;
        let mut finished = false;
        for batch in rx {
            match batch {
                Batch::Files(files) => {
                    for (path, data) in files {
                        paths.push(path);
                        blob(w, paths.len(), &data)?;
                    }
                }
                Batch::Finish => {
                    finished = true;
                    break;
                }
            }
        }
        if !finished {
            // Ending without `done` makes fast-import fail rather than commit half a tree.
            return Err(std::io::Error::other("generation stopped early"));
        }
        let message = "Synthetic crates.io-scale index\n";
        let who = format!(
            "{} <{}> {} +0000",
            git::AUTHOR_NAME,
            git::AUTHOR_EMAIL,
            git::COMMIT_TIME
        );
        write!(
            w,
            "commit refs/heads/{}\nauthor {who}\ncommitter {who}\ndata {}\n{message}",
            git::BRANCH,
            message.len()
        )?;
        for (i, path) in paths.iter().enumerate() {
            writeln!(w, "M 100644 :{} {path}", i + 1)?;
        }
        w.write_all(b"\ndone\n")
    })
}

fn blob(w: &mut dyn Write, mark: usize, data: &[u8]) -> std::io::Result<()> {
    write!(w, "blob\nmark :{mark}\ndata {}\n", data.len())?;
    w.write_all(data)?;
    w.write_all(b"\n")
}

fn push_manifest(manifest: &mut Vec<u8>, path: &str, data: &[u8], sum: &str) {
    writeln!(manifest, "{sum}\t{}\t{path}", data.len()).expect("vec write");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
