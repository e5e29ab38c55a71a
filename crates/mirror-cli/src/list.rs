//! `mirror-cli list`: every version in an index with its checksum and download URL.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use mirror_index::{CrateName, IndexFile, ReadOptions};

use crate::Outcome;

/// Arguments of `mirror-cli list`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The index: a git URL, a local directory, or sparse+http(s)://… (needs --crate).
    #[arg(long, value_name = "SRC")]
    index: String,
    /// Download URL template; defaults to the `dl` of the index's config.json.
    #[arg(long, value_name = "TEMPLATE")]
    dl: Option<String>,
    /// Only these crates (repeatable).
    #[arg(long = "crate", value_name = "NAME")]
    crates: Vec<CrateName>,
    /// One JSON object per version: {"name","vers","cksum","yanked","url"}.
    #[arg(long)]
    json: bool,
    /// Where git indexes are cloned (default: the user's cache directory).
    #[arg(long, value_name = "DIR", env = "MIRROR_CLI_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct Row<'a> {
    name: &'a str,
    vers: &'a str,
    cksum: String,
    yanked: bool,
    url: String,
}

pub(crate) fn run(args: Args) -> anyhow::Result<Outcome> {
    let index = crate::source::open(&args.index, args.cache_dir)?;
    let template = index.dl_template(args.dl.as_deref())?;
    let stdout = io::stdout().lock();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout);
    let mut write_error: Option<io::Error> = None;
    let (mut versions, mut yanked, mut crates) = (0u64, 0u64, 0u64);
    if !args.json {
        write_error = writeln!(
            out,
            "{:<32} {:<20} {:<6} {:<64} URL",
            "NAME", "VERSION", "YANKED", "CHECKSUM"
        )
        .err();
    }
    let mut sink = |file: IndexFile| {
        for problem in &file.problems {
            eprintln!("warning: skipped {problem}");
        }
        if write_error.is_some() {
            return;
        }
        crates += u64::from(!file.entries.is_empty());
        for entry in &file.entries {
            versions += 1;
            yanked += u64::from(entry.yanked());
            let row = Row {
                name: entry.name().as_str(),
                vers: entry.vers().as_str(),
                cksum: entry.cksum().to_string(),
                yanked: entry.yanked(),
                url: template.expand(entry.name(), entry.vers(), entry.cksum()),
            };
            let written = if args.json {
                serde_json::to_writer(&mut out, &row)
                    .map_err(io::Error::from)
                    .and_then(|()| out.write_all(b"\n"))
            } else {
                writeln!(
                    out,
                    "{:<32} {:<20} {:<6} {} {}",
                    row.name,
                    row.vers,
                    if row.yanked { "yes" } else { "no" },
                    row.cksum,
                    row.url
                )
            };
            if let Err(e) = written {
                write_error = Some(e);
                return;
            }
        }
    };
    let stats = index.read(&args.crates, &ReadOptions::default(), &mut sink)?;
    if write_error.is_none() {
        write_error = out.flush().err();
    }
    match write_error {
        // A closed pipe (`| head`) means the reader has what it wanted.
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Outcome::Clean),
        Some(e) => return Err(e).context("writing to stdout"),
        None => {}
    }
    for name in &args.crates {
        if stats.not_found.contains(&mirror_index::index_path(name)) {
            eprintln!("warning: crate {name} is not in the index");
        }
    }
    eprintln!(
        "{versions} versions of {crates} crates ({yanked} yanked) from {} index files; {} bad lines skipped",
        stats.files, stats.bad_lines
    );
    Ok(if stats.bad_lines > 0 || !stats.not_found.is_empty() {
        Outcome::Problems
    } else {
        Outcome::Clean
    })
}
