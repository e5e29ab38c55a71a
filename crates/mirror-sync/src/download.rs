//! Running many downloads at once: fetch (polite, verified) into a pending file, commit it into
//! place, then record it verified. Shared by sync and `verify --repair`.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mirror_fetch::{Download, FetchErrorKind, FetchOptions, Fetcher, Sink};
use mirror_index::{Checksum, CrateName, DlTemplate, Version};
use mirror_state::State;
use mirror_store::Store;
use tokio::task::JoinSet;

use crate::report::{HostStopped, url_host};
use crate::{Error, Failure, Interrupt, Progress};

/// How downloads are made. Every `None` keeps the default of [`FetchOptions`] (see
/// `docs/politeness.md`).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FetchSettings {
    /// Requests in flight at once (`--jobs`).
    pub jobs: Option<usize>,
    /// Requests per second (`--rate`).
    pub rate: Option<f64>,
    /// The tool part of the User-Agent (`--user-agent`).
    pub user_agent: Option<String>,
    /// Contact information appended to the User-Agent (`--contact`).
    pub contact: Option<String>,
    /// Attempts per download, the first included.
    pub attempts: Option<u32>,
    /// The first backoff between attempts.
    pub backoff: Option<Duration>,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Option<Duration>,
}

impl FetchSettings {
    /// The `User-Agent` downloads and index requests send.
    pub fn full_user_agent(&self) -> String {
        let dl = DlTemplate::new("http://unused.invalid/").expect("a constant valid template");
        self.options(dl, None).full_user_agent()
    }

    /// The fetch options for downloads from `dl`, with `cdn` as an already learned CDN template.
    pub(crate) fn options(&self, dl: DlTemplate, cdn: Option<DlTemplate>) -> FetchOptions {
        let mut options = FetchOptions::new(dl);
        options.cdn_template = cdn;
        if let Some(jobs) = self.jobs {
            options.max_in_flight = jobs.max(1);
        }
        if let Some(rate) = self.rate {
            options.requests_per_second = rate;
            // A burst larger than the rate would let a slow limit be exceeded in its first second.
            options.burst = options.burst.min((rate.ceil() as u32).max(1));
            options.api_requests_per_second = options.api_requests_per_second.min(rate);
            options.min_requests_per_second = options.min_requests_per_second.min(rate);
        }
        options.user_agent.clone_from(&self.user_agent);
        options.contact.clone_from(&self.contact);
        if let Some(attempts) = self.attempts {
            options.max_attempts = attempts.max(1);
        }
        if let Some(backoff) = self.backoff {
            options.backoff_initial = backoff;
            options.backoff_max = options.backoff_max.max(backoff);
        }
        if let Some(max) = self.max_retry_after {
            options.max_retry_after = max;
        }
        options
    }
}

/// One version to download.
#[derive(Clone, Debug)]
pub(crate) struct Work {
    pub(crate) name: CrateName,
    pub(crate) vers: Version,
    pub(crate) cksum: Checksum,
}

/// What a batch of downloads did.
#[derive(Debug, Default)]
pub(crate) struct Downloaded {
    pub(crate) done: u64,
    pub(crate) bytes: u64,
    pub(crate) failures: Vec<Failure>,
    pub(crate) interrupted: bool,
    /// Set when the mirror's own disk or state failed: the run stopped starting downloads.
    pub(crate) stopped: Option<String>,
    /// Set when one host failed too many downloads in a row: the run stopped starting
    /// downloads, and those it never tried are left as they were.
    pub(crate) host_stopped: Option<HostStopped>,
    /// Versions never tried (the run stopped early, for whatever reason).
    pub(crate) not_attempted: u64,
}

enum Outcome {
    Done(u64),
    /// The registry side failed; recorded in the state, retried next run.
    Failed(Failure),
    /// Our side failed (disk full, state unwritable): stop the run.
    Local(Failure),
    /// Not tried: the fetcher had given up on the host. Nothing is recorded, so the version
    /// stays as it was (a failure, or no record) and the next run tries it.
    NotTried,
}

/// How often the caller's thread collects finished downloads for the report and the progress.
const COLLECT_EVERY: Duration = Duration::from_millis(100);

/// What the workers share: the queue they take versions from, and the outcomes they leave for
/// the caller's thread to collect.
struct Shared {
    queue: Mutex<std::vec::IntoIter<Work>>,
    outcomes: Mutex<Vec<(Work, Outcome)>>,
    /// Set when the local disk or state failed: workers take no new version.
    stop: AtomicBool,
    /// Bytes streamed so far, for progress.
    bytes: AtomicU64,
}

/// Downloads `work` with `fetcher` into `store`, recording each result in `state`, with at most
/// the fetcher's in-flight limit running at once. Stops early on `interrupt` (dropping downloads
/// in flight, whose temp files are deleted) or when the local disk fails.
///
/// The downloads run in long-lived worker tasks on the runtime, which take versions from a
/// shared queue and leave their outcomes in a shared list; this future (on the caller's thread,
/// under `block_on`) collects them every [`COLLECT_EVERY`]. One task per version, joined here,
/// woke this thread once per version (a futex wake and two context switches): about a sixth of
/// all context switches of a sync of 20k small files (see `docs/benchmarks.md`).
pub(crate) async fn download_all(
    work: Vec<Work>,
    fetcher: &Fetcher,
    store: &Arc<Store>,
    state: &Arc<State>,
    progress: &dyn Progress,
    interrupt: &Interrupt,
) -> Downloaded {
    let mut result = Downloaded::default();
    // Twice the in-flight limit keeps the fetcher busy while some workers commit and record.
    let workers = (fetcher.options().max_in_flight.max(1) * 2).min(work.len());
    let shared = Arc::new(Shared {
        queue: Mutex::new(work.into_iter()),
        outcomes: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        bytes: AtomicU64::new(0),
    });
    let mut tasks: JoinSet<()> = JoinSet::new();
    for _ in 0..workers {
        let (fetcher, store, state, shared) = (
            fetcher.clone(),
            store.clone(),
            state.clone(),
            shared.clone(),
        );
        tasks.spawn(async move {
            // A host that keeps refusing or failing gets no new downloads (the fetcher sends it
            // nothing more anyway): the run ends, and the rest waits for the next one.
            while !shared.stop.load(Ordering::Relaxed) && fetcher.stopped_host().is_none() {
                let Some(item) = lock(&shared.queue).next() else {
                    break;
                };
                let outcome = download_one(&item, &fetcher, &store, &state, &shared.bytes).await;
                if matches!(outcome, Outcome::Local(_)) {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                lock(&shared.outcomes).push((item, outcome));
            }
        });
    }
    let mut reported = 0u64;
    let mut tick = tokio::time::interval(COLLECT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running = true;
    let mut pause_shown = false;
    while running {
        tokio::select! {
            biased;
            () = interrupt.triggered(), if !result.interrupted => {
                result.interrupted = true;
                // Downloads in flight are dropped, and their pending files deleted.
                tasks.abort_all();
            }
            joined = tasks.join_next() => match joined {
                None => running = false,
                Some(Ok(())) => {}
                // Aborted by an interrupt.
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => {
                    shared.stop.store(true, Ordering::Relaxed);
                    result
                        .stopped
                        .get_or_insert_with(|| format!("a download task failed: {e}"));
                }
            },
            _ = tick.tick() => {}
        }
        let outcomes = std::mem::take(&mut *lock(&shared.outcomes));
        for (item, outcome) in outcomes {
            collect(&mut result, progress, &item, outcome);
        }
        let now = shared.bytes.load(Ordering::Relaxed);
        if now > reported {
            progress.bytes(now - reported);
            reported = now;
        }
        // A long `Retry-After` holds every download still; without this it looks like a hang.
        let pause = fetcher.server_pause();
        if pause.is_some() || pause_shown {
            progress.server_pause(pause.as_ref());
            pause_shown = pause.is_some();
        }
    }
    result.not_attempted += lock(&shared.queue).len() as u64;
    if let Some(stop) = fetcher.stopped_host() {
        result.host_stopped = Some(HostStopped::new(&stop));
    }
    result
}

/// Adds one finished download to the result and tells the progress.
fn collect(result: &mut Downloaded, progress: &dyn Progress, item: &Work, outcome: Outcome) {
    match outcome {
        Outcome::Done(len) => {
            result.done += 1;
            result.bytes += len;
            progress.done(&item.name, &item.vers);
        }
        Outcome::Failed(failure) => {
            progress.failed(&item.name, &item.vers, &failure.kind, &failure.message);
            result.failures.push(failure);
        }
        Outcome::Local(failure) => {
            progress.failed(&item.name, &item.vers, &failure.kind, &failure.message);
            if result.stopped.is_none() {
                tracing::error!("{}; stopping the run", failure.message);
                result.stopped = Some(failure.message.clone());
            }
            result.failures.push(failure);
        }
        Outcome::NotTried => result.not_attempted += 1,
    }
}

/// Locks a mutex, ignoring poisoning: a worker that panicked left the queue and the list whole
/// (each change is one call).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn download_one(
    item: &Work,
    fetcher: &Fetcher,
    store: &Store,
    state: &State,
    counter: &AtomicU64,
) -> Outcome {
    let failure = |kind: &str, message: String| Failure {
        name: item.name.to_string(),
        vers: item.vers.to_string(),
        kind: kind.to_owned(),
        message,
        host: None,
    };
    // Our own disk failed: recorded like any failure (so `status` counts it and the next sync
    // retries it), as far as the state can still write; the run stops either way.
    let storage = |message: String| {
        if let Err(e) = state.mark_failed(&item.name, &item.vers, item.cksum, "storage", &message) {
            tracing::warn!(name = %item.name, vers = %item.vers, "cannot record the storage failure: {e}");
        }
        Outcome::Local(failure("storage", message))
    };
    let mut pending = match store.begin(&item.name, &item.vers) {
        Ok(pending) => pending,
        Err(e) => return storage(e.to_string()),
    };
    let mut sink = Counting {
        inner: &mut pending,
        counter,
        written: 0,
    };
    let download = Download::new(&item.name, &item.vers, &item.cksum);
    let verified = match fetcher.fetch(&download, &mut sink).await {
        Ok(verified) => verified,
        Err(e) if matches!(e.kind(), FetchErrorKind::Sink) => {
            return storage(e.to_string());
        }
        Err(e) if matches!(e.kind(), FetchErrorKind::HostStopped) => return Outcome::NotTried,
        Err(e) => {
            let kind = e.kind().as_str();
            let message = e.to_string();
            tracing::warn!(name = %item.name, vers = %item.vers, kind, "{message}");
            if let Err(e) = state.mark_failed(&item.name, &item.vers, item.cksum, kind, &message) {
                return Outcome::Local(failure("state", e.to_string()));
            }
            return Outcome::Failed(Failure {
                host: url_host(e.url()),
                ..failure(kind, message)
            });
        }
    };
    // Order matters: the file goes in place first, then the state says verified. A crash in
    // between leaves a file without a record, which the next run hashes and adopts.
    if let Err(e) = pending.commit().await {
        return storage(e.to_string());
    }
    if let Err(e) = state.mark_verified(&item.name, &item.vers, item.cksum, verified.len) {
        return Outcome::Local(failure("state", e.to_string()));
    }
    tracing::debug!(name = %item.name, vers = %item.vers, bytes = verified.len, attempts = verified.attempts, "verified");
    Outcome::Done(verified.len)
}

/// A sink that counts the bytes going through it into a shared counter, for progress.
struct Counting<'a, S> {
    inner: &'a mut S,
    counter: &'a AtomicU64,
    written: u64,
}

impl<S: Sink> Sink for Counting<'_, S> {
    async fn reset(&mut self) -> io::Result<()> {
        self.counter.fetch_sub(self.written, Ordering::Relaxed);
        self.written = 0;
        self.inner.reset().await
    }

    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.inner.write(chunk).await?;
        self.written += chunk.len() as u64;
        self.counter
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn finish(&mut self) -> io::Result<()> {
        self.inner.finish().await
    }
}

/// A multi-threaded runtime for downloads.
pub(crate) fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, Error> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    builder
        .thread_name("mirror-download")
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime { source })
}
