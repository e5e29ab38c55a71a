//! Showing a long run: progress bars on a terminal, a log line every few seconds elsewhere; and
//! Ctrl-C / SIGTERM turned into a clean stop.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mirror_index::{CrateName, Version};
use mirror_sync::{Interrupt, Progress, Stage};

/// How often a line is logged when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The [`Progress`] of the command line.
pub(crate) struct Reporter {
    shared: Arc<Shared>,
    logger: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    bar: Option<ProgressBar>,
    stage: Mutex<StageInfo>,
    done: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    stop: AtomicBool,
}

#[derive(Clone)]
struct StageInfo {
    what: &'static str,
    total: u64,
    total_bytes: u64,
    since: Instant,
}

impl Reporter {
    /// Bars when stderr is a terminal (and `quiet` is off), else log lines every few seconds.
    pub(crate) fn start(quiet: bool) -> Reporter {
        let terminal = std::io::stderr().is_terminal() && !quiet;
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let shared = Arc::new(Shared {
            bar,
            stage: Mutex::new(StageInfo {
                what: "starting",
                total: 0,
                total_bytes: 0,
                since: Instant::now(),
            }),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let logger = (!terminal && !quiet).then(|| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !shared.stop.load(Ordering::Relaxed) {
                    // Parked, not asleep: `finish` unparks it, so the command does not wait for
                    // the rest of a 200 ms nap before it exits (it did, by 100 ms on average,
                    // every run off a terminal).
                    std::thread::park_timeout(Duration::from_millis(200));
                    if last.elapsed() >= LOG_EVERY {
                        last = Instant::now();
                        shared.log_line();
                    }
                }
            })
        });
        Reporter { shared, logger }
    }

    /// Clears the bars and stops the logger, before the summary is printed.
    pub(crate) fn finish(mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(bar) = &self.shared.bar {
            bar.finish_and_clear();
        }
        if let Some(logger) = self.logger.take() {
            logger.thread().unpark();
            let _ = logger.join();
        }
    }
}

impl Shared {
    fn log_line(&self) {
        let stage = self
            .stage
            .lock()
            .expect("no panics while the lock is held")
            .clone();
        let done = self.done.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let secs = stage.since.elapsed().as_secs_f64().max(0.001);
        let mut line = format!("{}: ", stage.what);
        if stage.total > 0 {
            line += &format!("{done}/{} versions", stage.total);
        } else {
            line += &format!("{done} versions");
        }
        line += &format!(
            ", {} ({}/s)",
            HumanBytes(bytes),
            HumanBytes((bytes as f64 / secs) as u64)
        );
        if failed > 0 {
            line += &format!(", {failed} failed");
        }
        if stage.total > 0 && done > 0 && done < stage.total {
            let eta = secs * (stage.total - done) as f64 / done as f64;
            line += &format!(
                ", about {} left",
                HumanDuration(Duration::from_secs_f64(eta))
            );
        }
        eprintln!("{line}");
    }
}

impl Progress for Reporter {
    fn stage(&self, stage: &Stage) {
        let (what, total, total_bytes, message) = match stage {
            Stage::UpdatingIndex { source } => (
                "updating the index",
                0,
                0,
                format!("updating the index {source}"),
            ),
            Stage::Planning => ("planning", 0, 0, "reading the index".to_owned()),
            Stage::Adopting { files } => (
                "hashing files left in place",
                *files,
                0,
                "hashing files left in place".to_owned(),
            ),
            Stage::Downloading {
                versions,
                known_bytes,
            } => (
                "downloading",
                *versions,
                *known_bytes,
                "downloading".to_owned(),
            ),
            Stage::Verifying { files, bytes } => {
                ("verifying", *files, *bytes, "verifying".to_owned())
            }
            Stage::Walking => (
                "looking for unexpected files",
                0,
                0,
                "looking for unexpected files".to_owned(),
            ),
            Stage::Publishing => ("publishing", 0, 0, "publishing the index".to_owned()),
            Stage::Finishing => ("saving", 0, 0, "saving the state".to_owned()),
            _ => ("working", 0, 0, "working".to_owned()),
        };
        *self
            .shared
            .stage
            .lock()
            .expect("no panics while the lock is held") = StageInfo {
            what,
            total,
            total_bytes,
            since: Instant::now(),
        };
        self.shared.done.store(0, Ordering::Relaxed);
        self.shared.bytes.store(0, Ordering::Relaxed);
        self.shared.failed.store(0, Ordering::Relaxed);
        if let Some(bar) = &self.shared.bar {
            bar.reset();
            if total > 0 {
                bar.set_length(total);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:<12} [{elapsed_precise}] {wide_bar} {pos}/{len} {prefix} ETA {eta}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
            } else {
                bar.set_length(0);
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}] {prefix}")
                        .expect("a valid template"),
                );
            }
            bar.set_prefix("");
            bar.set_message(message);
        } else {
            eprintln!("{message} …");
        }
    }

    fn bytes(&self, bytes: u64) {
        let total = self.shared.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(bar) = &self.shared.bar {
            let stage = self
                .shared
                .stage
                .lock()
                .expect("no panics while the lock is held");
            let secs = stage.since.elapsed().as_secs_f64().max(0.001);
            let rate = HumanBytes((total as f64 / secs) as u64);
            bar.set_prefix(if stage.total_bytes > 0 {
                format!(
                    "{} of {}, {rate}/s",
                    HumanBytes(total),
                    HumanBytes(stage.total_bytes)
                )
            } else {
                format!("{}, {rate}/s", HumanBytes(total))
            });
        }
    }

    fn done(&self, _name: &CrateName, _vers: &Version) {
        self.shared.done.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.shared.bar {
            bar.inc(1);
        }
    }

    fn failed(&self, name: &CrateName, vers: &Version, kind: &str, message: &str) {
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.shared.bar {
            bar.inc(1);
            bar.suspend(|| eprintln!("failed: {name} {vers}: {kind}: {message}"));
        }
    }
}

/// Turns the first Ctrl-C or SIGTERM into `interrupt` (a clean stop), and a second Ctrl-C into
/// an immediate exit.
pub(crate) fn handle_signals(interrupt: Interrupt) {
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::warn!("cannot watch for Ctrl-C: {e}");
                return;
            }
        };
        runtime.block_on(async move {
            #[cfg(unix)]
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            for count in 0.. {
                #[cfg(unix)]
                let terminate = async {
                    match term.as_mut() {
                        Some(term) => {
                            term.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let terminate = std::future::pending::<()>();
                tokio::select! {
                    result = tokio::signal::ctrl_c() => {
                        if result.is_err() {
                            return;
                        }
                    }
                    () = terminate => {}
                }
                if count == 0 {
                    eprintln!(
                        "\ninterrupted: stopping cleanly (downloads in flight are dropped; run the same command again to resume). Press Ctrl-C again to quit at once."
                    );
                    interrupt.trigger();
                } else {
                    eprintln!("\nquitting at once; the next run cleans up and resumes");
                    std::process::exit(130);
                }
            }
        });
    });
}
