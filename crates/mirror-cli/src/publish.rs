//! `mirror-cli publish`: write the mirror's sparse index (`index/`) again from the index its last
//! sync read, without syncing, optionally with a new base URL.

use std::io::Write as _;
use std::path::PathBuf;

use mirror_sync::{PublishOptions, PublishReport};

use crate::Outcome;

/// Arguments of `mirror-cli publish`.
#[derive(clap::Args)]
pub(crate) struct PublishArgs {
    /// The mirror directory.
    #[arg(long, value_name = "DIR", default_value = "mirror")]
    dest: PathBuf,
    /// The URL clients reach the mirror root at, such as https://mirror.example.org: config.json's
    /// dl points below it. Remembered for later syncs and publishes; default: the last one given,
    /// else http://127.0.0.1:8080 (`mirror-cli serve` rewrites dl to its own address anyway).
    #[arg(long, value_name = "URL", value_parser = crate::serve::base_url_arg)]
    base_url: Option<String>,
    /// Threads for state lookups and writes (default: one per core, at least eight).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    threads: u16,
    /// Print a JSON summary as the last line of stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn publish(args: PublishArgs) -> anyhow::Result<Outcome> {
    let mut options = PublishOptions::default();
    options.base_url = args.base_url;
    options.threads = usize::from(args.threads);
    options.holder = Some("mirror-cli publish".to_owned());
    let report = mirror_sync::republish(&args.dest, &options)?;
    let text = summary(&report, &args.dest);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let mut stderr = std::io::stderr().lock();
        write!(stderr, "{text}")?;
        writeln!(stdout, "{}", serde_json::to_string(&report)?)?;
    } else {
        write!(stdout, "{text}")?;
    }
    stdout.flush()?;
    Ok(Outcome::Clean)
}

fn summary(report: &PublishReport, dest: &std::path::Path) -> String {
    format!(
        "published {} index files ({} versions) under {}\n  \
         written: {}, unchanged: {}, removed: {}, versions left out (not verified): {}\n  \
         config.json: dl below {}{}\n{}",
        report.files,
        report.versions,
        dest.join("index").display(),
        report.written,
        report.unchanged,
        report.removed,
        report.left_out,
        report.base_url,
        if report.config_written {
            " (written)"
        } else {
            " (unchanged)"
        },
        match report.temp_cleaned {
            0 => String::new(),
            n => format!("  cleaned: {n} temp files of an interrupted run\n"),
        },
    )
}
