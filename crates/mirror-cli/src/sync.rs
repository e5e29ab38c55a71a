//! `mirror-cli sync`, `verify` and `status`: the mirror itself.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{HumanBytes, HumanDuration};
use mirror_index::CrateName;
use mirror_sync::{
    Failure, FailureGroup, FetchSettings, HostStopped, Interrupt, StatusReport, SyncOptions,
    SyncReport, VerifyOptions, VerifyReport,
};

use crate::Outcome;
use crate::progress::{Reporter, handle_signals};

/// Entries of a list (removed versions, corrupt files, …) shown in a human summary (all are in
/// `--json`).
const SHOWN_FAILURES: usize = 20;
/// Failures shown as samples after their counts by kind and host (all are in `--json`).
const FAILURE_SAMPLES: usize = 5;

/// How downloads are made: shared by `sync` and `verify --repair`.
#[derive(clap::Args)]
pub(crate) struct FetchArgs {
    /// Downloads in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
    /// Requests per second, all downloads together.
    #[arg(long, value_name = "N", default_value_t = 20.0)]
    rate: f64,
    /// The tool part of the User-Agent header.
    #[arg(long, value_name = "S")]
    user_agent: Option<String>,
    /// How the registry's operators can reach you (an e-mail address or URL), sent in the
    /// User-Agent. Registries ask for it.
    #[arg(long, value_name = "CONTACT", env = "MIRROR_CLI_CONTACT")]
    contact: Option<String>,
    /// Attempts per download, the first included.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    attempts: u32,
    /// The first backoff between attempts, in milliseconds (it doubles each retry).
    #[arg(long, value_name = "MS", default_value_t = 1000, hide = true)]
    backoff_ms: u64,
    /// The longest Retry-After honoured, in milliseconds (a longer one is cut to it).
    #[arg(long, value_name = "MS", default_value_t = 600_000, hide = true, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    max_retry_after_ms: u64,
    /// Threads for parsing and hashing (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    threads: u16,
}

impl FetchArgs {
    fn settings(&self) -> anyhow::Result<FetchSettings> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            anyhow::bail!("--rate must be a positive number of requests per second");
        }
        let mut settings = FetchSettings::default();
        settings.jobs = Some(usize::from(self.jobs));
        settings.rate = Some(self.rate);
        settings.user_agent.clone_from(&self.user_agent);
        settings.contact.clone_from(&self.contact);
        settings.attempts = Some(self.attempts);
        settings.backoff = Some(Duration::from_millis(self.backoff_ms));
        settings.max_retry_after = Some(Duration::from_millis(self.max_retry_after_ms));
        Ok(settings)
    }
}

/// Arguments of `mirror-cli sync`.
#[derive(clap::Args)]
pub(crate) struct SyncArgs {
    /// The mirror directory.
    #[arg(long, value_name = "DIR", default_value = "mirror")]
    dest: PathBuf,
    /// The index: a git URL, a local directory, or sparse+http(s)://… (needs --crate).
    /// Default: the index of the mirror's last sync.
    #[arg(long, value_name = "SRC", env = "MIRROR_CLI_INDEX")]
    index: Option<String>,
    /// Download URL template; defaults to the `dl` of the index's config.json.
    #[arg(long, value_name = "TEMPLATE")]
    dl: Option<String>,
    /// Where the mirror will be served from: the published index/config.json points cargo's
    /// downloads at URL/crates/…. Remembered; `mirror-cli serve` needs none.
    #[arg(long, value_name = "URL", value_parser = crate::serve::base_url_arg)]
    base_url: Option<String>,
    /// Only these crates (repeatable).
    #[arg(long = "crate", value_name = "NAME")]
    crates: Vec<CrateName>,
    /// Only the crates named in this file, one per line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    crates_from: Option<PathBuf>,
    /// Leave out yanked versions that are not mirrored yet.
    #[arg(long)]
    skip_yanked: bool,
    /// Compare every index entry with the state, not only the files changed since the last
    /// sync (also runs by itself, see --full-every-syncs and --full-every-days).
    #[arg(long)]
    full: bool,
    /// Move the files of versions removed upstream to .mirror/quarantine (default: keep them).
    #[arg(long)]
    prune: bool,
    /// Run a full compare by itself after this many syncs.
    #[arg(long, value_name = "N", default_value_t = 24)]
    full_every_syncs: u64,
    /// Run a full compare by itself when the last one is this many days old.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    full_every_days: u64,
    /// Plan and say what would be downloaded, without downloading or recording anything.
    #[arg(long)]
    dry_run: bool,
    /// Print a JSON summary as the last line of stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    fetch: FetchArgs,
}

/// Arguments of `mirror-cli verify`.
#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// The mirror directory.
    #[arg(long, value_name = "DIR", default_value = "mirror")]
    dest: PathBuf,
    /// Download missing and corrupt versions again (corrupt files go to .mirror/quarantine).
    #[arg(long)]
    repair: bool,
    /// Print a JSON summary as the last line of stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    fetch: FetchArgs,
}

/// Arguments of `mirror-cli status`.
#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    /// The mirror directory.
    #[arg(long, value_name = "DIR", default_value = "mirror")]
    dest: PathBuf,
    /// Print the status as one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn sync(args: SyncArgs) -> anyhow::Result<Outcome> {
    let mut options = SyncOptions::default();
    options.index = args.index;
    options.dl = args.dl;
    options.publish_base_url = args.base_url;
    options.crates = args.crates;
    if let Some(file) = &args.crates_from {
        options.crates.extend(read_crate_list(file)?);
    }
    options.skip_yanked = args.skip_yanked;
    options.full = args.full;
    options.prune = args.prune;
    options.full_every_syncs = Some(args.full_every_syncs);
    options.full_every_days = Some(args.full_every_days);
    options.dry_run = args.dry_run;
    options.threads = usize::from(args.fetch.threads);
    options.fetch = args.fetch.settings()?;
    options.holder = Some("mirror-cli sync".to_owned());
    let interrupt = Interrupt::new();
    handle_signals(interrupt.clone());
    let reporter = Reporter::start(false);
    let result = mirror_sync::sync(&args.dest, &options, &reporter, &interrupt);
    reporter.finish();
    let report = result?;
    let text = sync_summary(&report, &args.dest);
    emit(&text, args.json.then(|| serde_json::to_string(&report)))?;
    Ok(if report.is_clean() {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}

pub(crate) fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let mut options = VerifyOptions::default();
    options.repair = args.repair;
    options.threads = usize::from(args.fetch.threads);
    options.fetch = args.fetch.settings()?;
    options.holder = Some("mirror-cli verify".to_owned());
    let interrupt = Interrupt::new();
    handle_signals(interrupt.clone());
    let reporter = Reporter::start(false);
    let result = mirror_sync::verify(&args.dest, &options, &reporter, &interrupt);
    reporter.finish();
    let report = result?;
    let text = verify_summary(&report, args.repair);
    emit(&text, args.json.then(|| serde_json::to_string(&report)))?;
    Ok(if report.is_clean() {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<Outcome> {
    let report = mirror_sync::status(&args.dest, Some("mirror-cli status"))?;
    if args.json {
        emit("", Some(serde_json::to_string(&report)))?;
    } else {
        emit(&status_summary(&report), None)?;
    }
    Ok(Outcome::Clean)
}

/// Reads a file of crate names, one per line; blank lines and `#` comments are ignored.
fn read_crate_list(path: &std::path::Path) -> anyhow::Result<Vec<CrateName>> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the crate list {}", path.display()))?;
    let mut names = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let name = line
            .parse::<CrateName>()
            .with_context(|| format!("{}:{}: bad crate name", path.display(), number + 1))?;
        names.push(name);
    }
    Ok(names)
}

/// Prints the human summary (to stdout, or to stderr when JSON goes to stdout) and the JSON
/// summary as the last line of stdout.
fn emit(text: &str, json: Option<serde_json::Result<String>>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match json {
        Some(json) => {
            eprint!("{text}");
            writeln!(stdout, "{}", json?)?;
        }
        None => write!(stdout, "{text}")?,
    }
    stdout.flush()?;
    Ok(())
}

fn sync_summary(report: &SyncReport, dest: &std::path::Path) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let took = HumanDuration(Duration::from_millis(report.duration_ms));
    let commit = report
        .index_commit
        .as_deref()
        .map(|c| format!(" at commit {}", &c[..c.len().min(12)]))
        .unwrap_or_default();
    line(format!(
        "{} into {}{commit}, {took}",
        if report.dry_run {
            "dry run of a sync"
        } else {
            "sync"
        },
        dest.display()
    ));
    line(if report.mode == "incremental" {
        format!(
            "  index:        {} files changed since the last sync, {} versions in them, {} selected (incremental compare)",
            report.index_files_read, report.index_versions, report.selected
        )
    } else {
        format!(
            "  index:        {} versions in {} files read ({} compare), {} selected",
            report.index_versions, report.index_files_read, report.mode, report.selected
        )
    });
    if let Some(why) = &report.full_reason {
        line(format!("  compared all: {why}"));
    }
    if report.added + report.yanked + report.unyanked > 0 {
        line(format!(
            "  upstream:     {} versions added, {} yanked, {} unyanked since the last sync",
            report.added, report.yanked, report.unyanked
        ));
    }
    line(format!(
        "  present:      {} recorded verified, file in place at its recorded size (not hashed; `verify` hashes){}",
        report.already_present,
        if report.adopted > 0 {
            format!(
                " ({} found in place after an interrupted run and hashed)",
                report.adopted
            )
        } else {
            String::new()
        }
    ));
    if report.dry_run {
        let unknown = report.would_download_unknown_size;
        line(format!(
            "  would fetch:  {} versions, {}{}",
            report.would_download,
            HumanBytes(report.would_download_bytes),
            match unknown {
                0 => String::new(),
                n if n == report.would_download => {
                    " known: the index gives no sizes, and the mirror never held these bytes"
                        .to_owned()
                }
                n => format!(
                    " for those of known size, and {n} of unknown size (the index gives no sizes)"
                ),
            }
        ));
    } else {
        let secs = (report.duration_ms as f64 / 1000.0).max(0.001);
        line(format!(
            "  downloaded:   {} versions, {} ({}/s over the run)",
            report.downloaded,
            HumanBytes(report.downloaded_bytes),
            HumanBytes((report.downloaded_bytes as f64 / secs) as u64)
        ));
    }
    let drifted = report.recorded_missing + report.recorded_wrong_size;
    if drifted > 0 {
        line(format!(
            "  drift:        {drifted} versions recorded verified were not in place as recorded ({} missing, {} of another size, moved to .mirror/quarantine); downloaded again:",
            report.recorded_missing, report.recorded_wrong_size
        ));
        for v in report.drift.iter().take(SHOWN_FAILURES) {
            line(format!("    {} {}", v.name, v.vers));
        }
        if report.drift_forgotten > 0 {
            line(format!(
                "    of which {} yanked, left out by --skip-yanked: no longer recorded, not downloaded",
                report.drift_forgotten
            ));
        }
    }
    if report.checksum_changed > 0 {
        line(format!(
            "  re-published: {} versions changed checksum upstream (old files in .mirror/quarantine):",
            report.checksum_changed
        ));
        for change in report.checksum_changes.iter().take(SHOWN_FAILURES) {
            line(format!(
                "    {} {}: {} -> {}",
                change.name, change.vers, change.old, change.new
            ));
        }
    }
    if report.removed_upstream > 0 {
        line(format!(
            "  removed:      {} versions no longer in the index{} ({}):",
            report.removed_upstream,
            match report.removed_crates_upstream {
                0 => String::new(),
                1 => ", 1 whole crate".to_owned(),
                n => format!(", {n} whole crates"),
            },
            if report.pruned > 0 {
                "moved to .mirror/quarantine"
            } else {
                "kept; --prune moves them to .mirror/quarantine"
            }
        ));
        for v in report.removed.iter().take(SHOWN_FAILURES) {
            line(format!("    {} {}", v.name, v.vers));
        }
    }
    if report.pruned > 0 {
        line(format!("  pruned:       {} versions", report.pruned));
    }
    if report.published_written + report.published_removed > 0 {
        line(format!(
            "  published:    {} index files written, {} removed (index/)",
            report.published_written, report.published_removed
        ));
    }
    if report.temp_cleaned > 0 {
        line(format!(
            "  cleaned:      {} temp files of an interrupted run",
            report.temp_cleaned
        ));
    }
    if !report.not_in_index.is_empty() {
        line(format!(
            "  not found:    {} (not in the index)",
            report.not_in_index.join(", ")
        ));
    }
    if report.index_errors > 0 {
        line(format!(
            "  bad lines:    {} index lines skipped:",
            report.index_errors
        ));
        for sample in &report.index_error_samples {
            line(format!("    {sample}"));
        }
    }
    if report.failed > 0 {
        line(format!(
            "  failed:       {} versions (recorded; the next sync retries them):",
            report.failed
        ));
        failure_lines(
            &mut line,
            &report.failures_by_kind,
            &report.failures,
            "see --json or `mirror-cli status`",
        );
    }
    line(if report.interrupted {
        "interrupted: run the same command again to resume".to_owned()
    } else if let Some(stop) = &report.host_stopped {
        host_stopped_message(stop, report.not_attempted)
    } else if report.dry_run {
        "dry run: nothing was downloaded or recorded".to_owned()
    } else if report.is_clean() {
        "done: every selected version is in place and recorded verified".to_owned()
    } else {
        "finished with problems (see above)".to_owned()
    });
    out
}

fn verify_summary(report: &VerifyReport, repair: bool) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let secs = (report.duration_ms as f64 / 1000.0).max(0.001);
    line(format!(
        "verify: {} files checked, {} ok, {} hashed in {} ({}/s)",
        report.checked,
        report.ok,
        HumanBytes(report.bytes),
        HumanDuration(Duration::from_millis(report.duration_ms)),
        HumanBytes((report.bytes as f64 / secs) as u64)
    ));
    for (what, list) in [("missing", &report.missing), ("corrupt", &report.corrupt)] {
        if !list.is_empty() {
            line(format!("  {what}: {}", list.len()));
            for v in list.iter().take(SHOWN_FAILURES) {
                line(format!("    {} {}", v.name, v.vers));
            }
            if list.len() > SHOWN_FAILURES {
                line(format!("    … and {} more", list.len() - SHOWN_FAILURES));
            }
        }
    }
    if !report.unexpected.is_empty() {
        line(format!(
            "  unexpected: {} files no record accounts for (left in place):",
            report.unexpected.len()
        ));
        for path in report.unexpected.iter().take(SHOWN_FAILURES) {
            line(format!("    {path}"));
        }
    }
    if repair {
        line(format!(
            "  repaired: {} of {} missing or corrupt",
            report.repaired,
            report.missing.len() + report.corrupt.len()
        ));
        if !report.failures.is_empty() {
            line(format!(
                "  failed: {} repairs (recorded; the next sync retries them):",
                report.failures.len()
            ));
            failure_lines(
                &mut line,
                &report.failures_by_kind,
                &report.failures,
                "see --json",
            );
        }
    }
    let broken = report.missing.len() + report.corrupt.len();
    line(if report.interrupted {
        "interrupted: run verify again to check everything".to_owned()
    } else if let Some(stop) = &report.host_stopped {
        host_stopped_message(stop, report.not_attempted)
    } else if report.is_clean() {
        "ok: every recorded file is present and matches its checksum".to_owned()
    } else if report.read_only {
        "problems found, and nothing could be recorded: the mirror is read-only, so its state still records them verified and its published index still offers them; run `mirror-cli verify` where the mirror is writable to act on them".to_owned()
    } else if broken > 0 && report.is_mended() && report.unexpected.is_empty() {
        format!(
            "repaired: every file is present and matches its checksum again, but {broken} were missing or corrupt (exit code 1: the damage happened)"
        )
    } else if broken > 0 && !repair {
        "problems found: they are no longer recorded as verified; `mirror-cli verify --repair` or the next sync downloads them again".to_owned()
    } else {
        "problems found (see above)".to_owned()
    });
    out
}

fn status_summary(report: &StatusReport) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("mirror {}", report.dest));
    line(format!(
        "  index:      {}",
        report.index_source.as_deref().unwrap_or("(never synced)")
    ));
    if let Some(dl) = &report.dl {
        line(format!("  downloads:  {dl}"));
    }
    if let Some(cdn) = &report.cdn_template {
        line(format!("  cdn:        {cdn} (learned)"));
    }
    line(format!(
        "  verified:   {} versions, {} (as recorded: `verify` re-hashes them)",
        report.verified,
        HumanBytes(report.verified_bytes)
    ));
    line(format!("  failed:     {} versions", report.failed));
    failure_lines(
        &mut line,
        &report.failures_by_kind,
        &report.failures,
        "see --json",
    );
    if report.removed_upstream > 0 {
        line(format!(
            "  removed:    {} upstream removals recorded",
            report.removed_upstream
        ));
    }
    line(format!(
        "  complete for index commit: {}",
        report.synced_commit.as_deref().unwrap_or("none yet")
    ));
    let last = match report.last_sync_unix {
        Some(at) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!(
                "{} ago",
                HumanDuration(Duration::from_secs(now.saturating_sub(at)))
            )
        }
        None => "never".to_owned(),
    };
    line(format!("  syncs:      {} (last {last})", report.sync_count));
    if let Some(why) = &report.full_compare_needed {
        line(format!("  next sync:  compares the whole index ({why})"));
    }
    if report.publish_pending {
        line(
            "  published:  may lag (a run stopped before publishing); the next sync rewrites index/"
                .to_owned(),
        );
    }
    out
}

/// Failures as a summary shows them: the counts by kind and host first, then a few samples.
/// `more` says where the rest are.
fn failure_lines(
    line: &mut impl FnMut(String),
    groups: &[FailureGroup],
    failures: &[Failure],
    more: &str,
) {
    for group in groups {
        match &group.host {
            Some(host) => line(format!("    {} {} from {host}", group.count, group.kind)),
            None => line(format!("    {} {}", group.count, group.kind)),
        }
    }
    if failures.is_empty() {
        return;
    }
    line("  for example:".to_owned());
    for failure in failures.iter().take(FAILURE_SAMPLES) {
        line(format!(
            "    {} {}: {}: {}",
            failure.name, failure.vers, failure.kind, failure.message
        ));
    }
    let total: u64 = groups.iter().map(|g| g.count).sum();
    let shown = failures.len().min(FAILURE_SAMPLES) as u64;
    if total > shown {
        line(format!("    … and {} more ({more})", total - shown));
    }
}

/// The one message of a run that gave up on a host: which host, how it failed, what was left
/// undone, and what to do about it.
fn host_stopped_message(stop: &HostStopped, not_attempted: u64) -> String {
    let status = stop.status.map(|s| format!("HTTP {s}")).unwrap_or_default();
    let (what, advice) = match (stop.kind.as_str(), stop.status) {
        ("forbidden", _) => (
            format!("refused: {status}"),
            "the registry may be refusing this mirror: make sure --contact tells its operators how to reach you, and ask them; or download from another server with --dl",
        ),
        ("http", Some(429)) => (
            "too many requests: HTTP 429 to every attempt".to_owned(),
            "the registry is limiting this mirror: run again later with a lower --rate and --jobs, with --contact so its operators can reach you; or download from another server with --dl",
        ),
        ("http", _) => (
            format!("server errors: {status} to every attempt"),
            "the server is failing: run again later, or download from another server with --dl; --contact lets its operators reach you",
        ),
        ("network", _) => (
            "no connection".to_owned(),
            "the server cannot be reached: check the network and the download URL (--dl), then run again; --contact lets its operators reach you",
        ),
        ("timeout", _) => (
            "timeouts".to_owned(),
            "the server does not answer in time: run again later, or download from another server with --dl; --contact lets its operators reach you",
        ),
        (kind, _) => (
            kind.to_owned(),
            "run again later, or download from another server with --dl; --contact lets its operators reach you",
        ),
    };
    format!(
        "stopped downloading: {} failed {} downloads in a row ({what}); {not_attempted} versions were not tried, the next run tries them\n  the last: {}\n  what to do: {advice}",
        stop.host, stop.failures, stop.last_error
    )
}
