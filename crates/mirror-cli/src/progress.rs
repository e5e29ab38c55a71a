//! Showing a long run: progress bars on a terminal, a log line every few seconds elsewhere; and
//! Ctrl-C / SIGTERM turned into a clean stop.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mirror_index::{CrateName, Version};
use mirror_sync::{Interrupt, Progress, ServerPause, Stage};

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
    /// A pause the registry asked for, while it lasts.
    pause: Mutex<Option<Pause>>,
}

/// What the progress shows of a [`ServerPause`].
#[derive(Clone, Debug)]
struct Pause {
    host: String,
    status: u16,
    until: Instant,
    asked: Duration,
    capped: bool,
}

impl From<&ServerPause> for Pause {
    fn from(pause: &ServerPause) -> Self {
        Pause {
            host: pause.host.clone(),
            status: pause.status,
            until: pause.until,
            asked: pause.asked,
            capped: pause.is_capped(),
        }
    }
}

#[derive(Clone)]
struct StageInfo {
    what: &'static str,
    /// The bar's message for the stage, put back when a pause is over.
    message: String,
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
                message: String::new(),
                total: 0,
                total_bytes: 0,
                since: Instant::now(),
            }),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            pause: Mutex::new(None),
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
        eprintln!("{}", self.line(Instant::now()));
    }

    /// The progress line logged every few seconds off a terminal.
    fn line(&self, now: Instant) -> String {
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
        let pause = self
            .pause
            .lock()
            .expect("no panics while the lock is held")
            .clone();
        if let Some(pause) = pause.filter(|p| p.until > now) {
            line += &format!("; {}", pause_text(&pause, now));
        }
        line
    }
}

/// A pause the registry asked for, as the progress shows it: who asked, how long is left, and
/// whether it was cut to the longest honoured.
fn pause_text(pause: &Pause, now: Instant) -> String {
    let left = HumanDuration(pause.until.saturating_duration_since(now));
    let capped = if pause.capped {
        format!(", capped: it asked for {}", HumanDuration(pause.asked))
    } else {
        String::new()
    };
    format!(
        "paused: {} asked to wait (Retry-After on a {}), {left} left{capped}",
        pause.host, pause.status
    )
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
            message: message.clone(),
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

    fn server_pause(&self, pause: Option<&ServerPause>) {
        *self
            .shared
            .pause
            .lock()
            .expect("no panics while the lock is held") = pause.map(Pause::from);
        if let Some(bar) = &self.shared.bar {
            let message = match pause {
                Some(pause) => pause_text(&pause.into(), Instant::now()),
                None => self
                    .shared
                    .stage
                    .lock()
                    .expect("no panics while the lock is held")
                    .message
                    .clone(),
            };
            bar.set_message(message);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Off a terminal, the line logged every few seconds says that downloads are paused, by
    /// whom, for how long, and that the pause was cut to the longest honoured.
    #[test]
    fn the_progress_line_shows_a_server_pause() {
        let reporter = Reporter::start(true);
        reporter.stage(&Stage::Downloading {
            versions: 5,
            known_bytes: 0,
        });
        let now = Instant::now();
        let line = reporter.shared.line(now);
        assert!(line.starts_with("downloading: 0/5 versions"), "{line}");
        assert!(!line.contains("paused"), "{line}");
        *reporter.shared.pause.lock().expect("unpoisoned") = Some(Pause {
            host: "registry.example".into(),
            status: 429,
            until: now + Duration::from_secs(590),
            asked: Duration::from_secs(86_400),
            capped: true,
        });
        let line = reporter.shared.line(now);
        assert!(
            line.ends_with(
                "; paused: registry.example asked to wait (Retry-After on a 429), 10 minutes left, capped: it asked for 24 hours"
            ),
            "{line}"
        );
        // Over: not shown any more.
        let line = reporter.shared.line(now + Duration::from_secs(600));
        assert!(!line.contains("paused"), "{line}");
        reporter.finish();
    }
}
