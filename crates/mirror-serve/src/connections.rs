//! The accept loop and the life of each connection, with the bounds that keep slow or silent
//! clients from stalling the server: a header timeout, an idle timeout, a cap on open connections
//! (closing the idlest at the cap), and a back-off when accepting fails.
//!
//! hyper's own HTTP/1.1 header timeout is not used: it does not cover a connection that sends
//! nothing at all (the HTTP/1-or-2 detection waits for the first bytes without a timer), nor
//! HTTP/2, and it also runs while a keep-alive connection waits for its next request, which would
//! cut the idle timeout short. Each connection has a watchdog of its own instead: a
//! request-counting wrapper around the service tells it when a request begins and when its
//! response body is done or dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::Limits;

/// Descriptors kept for everything but connections: the runtime, the listener, standard streams,
/// log files, and whatever else the process holds.
const RESERVED_DESCRIPTORS: u64 = 32;
/// The first pause after a failed accept; it doubles with each failure in a row, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A warning that keeps happening (failed accepts, the cap) is logged at most this often, with
/// the number of times it happened in between.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long a connection being closed after a response may take to flush it.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` and serves `app` on each until `shutdown` completes; then
/// stops accepting, shuts the open connections down gracefully and returns once all are closed.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    let cap = connection_cap(limits.max_connections, open_file_limit());
    // No timer: hyper's timeouts stay off (see the module comment), the watchdogs do that work.
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
    let table = Arc::new(Table::default());
    let (closing, closing_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut failures = AcceptFailures::default();
    let mut at_cap = Throttle::default();
    let mut next_id = 0_u64;
    'accept: loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    let pause = failures.failed(&e, &table);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = &mut shutdown => break 'accept,
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        failures.succeeded();
        // Make room for it: closing an idle connection, or waiting until one is idle (it waits,
        // accepted and unserved; the listener's backlog holds the next ones). Closing only when
        // a connection is waiting spares the idle ones as long as nobody needs their slot.
        loop {
            let changed = table.changed.notified();
            let open = table.len();
            if open < cap {
                break;
            }
            match table.evict_idlest() {
                Eviction::Started => {
                    if let Some(more) = at_cap.hit() {
                        tracing::warn!(
                            cap,
                            times_since_last_warning = more,
                            "connection limit reached: closing the connection idle the longest to admit a new one"
                        );
                    }
                }
                Eviction::Pending => {}
                Eviction::NoneIdle => {
                    if let Some(more) = at_cap.hit() {
                        tracing::warn!(
                            cap,
                            times_since_last_warning = more,
                            "connection limit reached and every connection has a request in progress: new connections wait"
                        );
                    }
                }
            }
            tokio::select! {
                () = changed => {}
                () = &mut shutdown => break 'accept,
            }
        }
        next_id += 1;
        let conn = Arc::new(Conn::new());
        table.insert(next_id, Arc::clone(&conn));
        let service = Tracked {
            inner: TowerToHyperService::new(app.clone()),
            conn: Arc::clone(&conn),
            table: Arc::clone(&table),
        };
        tokio::spawn(serve_connection(
            Arc::clone(&builder),
            stream,
            service,
            limits.clone(),
            closing_rx.clone(),
            next_id,
        ));
    }
    // No new connections from here on: dropping the listener makes clients fail fast.
    drop(listener);
    closing.send_replace(true);
    loop {
        let changed = table.changed.notified();
        if table.len() == 0 {
            break;
        }
        changed.await;
    }
}

/// Serves one connection until it ends, its watchdog closes it, or the server shuts down.
async fn serve_connection(
    builder: Arc<Builder<TokioExecutor>>,
    stream: TcpStream,
    service: Tracked,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
    id: u64,
) {
    let conn = Arc::clone(&service.conn);
    // Declared before the connection, so dropped after it: the socket is closed before the table
    // says a slot is free, also when this task is cancelled or panics.
    let _slot = Slot {
        table: Arc::clone(&service.table),
        id,
    };
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = pin!(connection);
    let mut draining = false;
    let mut shutting_down = false;
    let mut drain_until = None;
    loop {
        let wake = conn.wake.notified();
        let deadline = match conn.next(&limits, shutting_down) {
            Next::Close(why) => {
                // hyper drops a response body once it has the last bytes, before they are all
                // written: a connection that answered anything is shut down gracefully (an idle
                // one closes as soon as its output is flushed), and dropped only if that takes
                // longer than the drain grace.
                if !conn.answered_any() {
                    tracing::debug!(reason = why, "closing connection");
                    break;
                }
                let until = *drain_until.get_or_insert_with(|| {
                    tracing::debug!(reason = why, "closing connection gracefully");
                    conn.lock().draining = true;
                    Instant::now() + DRAIN_GRACE
                });
                if !draining {
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
                if Instant::now() >= until {
                    tracing::debug!("connection not closed within the drain grace; dropping it");
                    break;
                }
                Some(until)
            }
            Next::Drain => {
                if !draining {
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
                None
            }
            Next::Wait(deadline) => deadline,
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = wake => {}
            () = sleep_until(deadline) => {}
            () = closed(&mut closing), if !shutting_down => {
                connection.as_mut().graceful_shutdown();
                draining = true;
                shutting_down = true;
            }
        }
    }
}

/// A connection's place in the table, given up when dropped.
struct Slot {
    table: Arc<Table>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.remove(self.id);
    }
}

/// Waits until the server is closing (or gone).
async fn closed(closing: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the server stopped waiting for its connections.
    let _ = closing.wait_for(|closing| *closing).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The open connections.
#[derive(Default)]
struct Table {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Notified (for the accept loop, the one waiter) when a connection closes or has no request in
    /// progress any more.
    changed: Notify,
}

/// What [`Table::evict_idlest`] did.
enum Eviction {
    /// The connection idle the longest was told to close.
    Started,
    /// One told before, with no request in progress, has not closed yet: no other is closed
    /// meanwhile.
    Pending,
    /// Every connection has a request in progress.
    NoneIdle,
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // The map stays consistent whatever panicked while it was held: each change is one call.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn insert(&self, id: u64, conn: Arc<Conn>) {
        self.lock().insert(id, conn);
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.changed.notify_one();
    }

    /// Tells the connection with no request in progress that has been idle the longest to close.
    fn evict_idlest(&self) -> Eviction {
        let conns = self.lock();
        let mut idlest: Option<(Instant, &Arc<Conn>)> = None;
        for conn in conns.values() {
            let state = conn.lock();
            if state.evicted {
                // One that got a request meanwhile finishes it first, however long that takes,
                // and one flushing its last response may take up to the drain grace: neither
                // holds up the next eviction.
                if state.in_flight == 0 && !state.draining {
                    return Eviction::Pending;
                }
                continue;
            }
            if state.in_flight == 0 && idlest.is_none_or(|(since, _)| state.idle_since < since) {
                idlest = Some((state.idle_since, conn));
            }
        }
        match idlest {
            Some((_, conn)) => {
                conn.lock().evicted = true;
                conn.wake.notify_one();
                Eviction::Started
            }
            None => Eviction::NoneIdle,
        }
    }
}

/// One open connection, as its watchdog and the accept loop see it.
struct Conn {
    accepted: Instant,
    state: Mutex<Activity>,
    /// Wakes the watchdog: a response ended, or the connection is to close.
    wake: Notify,
}

struct Activity {
    /// Requests whose response is not done yet.
    in_flight: usize,
    /// Requests received.
    requests: u64,
    /// When the connection last had no request in progress: accepted, or a response done.
    idle_since: Instant,
    /// Chosen to close at the cap.
    evicted: bool,
    /// Shut down gracefully, flushing what it has to send.
    draining: bool,
}

/// What a connection's watchdog does next.
enum Next {
    /// Close it now (the reason, for the debug log).
    Close(&'static str),
    /// Let the requests in progress finish, then close.
    Drain,
    /// Check again at this time (`None`: when woken).
    Wait(Option<Instant>),
}

impl Conn {
    fn new() -> Conn {
        let now = Instant::now();
        Conn {
            accepted: now,
            state: Mutex::new(Activity {
                in_flight: 0,
                requests: 0,
                idle_since: now,
                evicted: false,
                draining: false,
            }),
            wake: Notify::new(),
        }
    }

    /// Whether it got a request, so may have a response still to flush.
    fn answered_any(&self) -> bool {
        self.lock().requests > 0
    }

    fn lock(&self) -> MutexGuard<'_, Activity> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the watchdog does next; `shutting_down`: the server is stopping.
    fn next(&self, limits: &Limits, shutting_down: bool) -> Next {
        let state = self.lock();
        if state.in_flight > 0 {
            return if state.evicted {
                Next::Drain
            } else {
                Next::Wait(None)
            };
        }
        if state.evicted {
            return Next::Close("connection limit reached; idle the longest");
        }
        // hyper's graceful shutdown waits for a request head that has begun to arrive; one that
        // never ends would hold the shutdown up until the timeouts.
        if shutting_down {
            return Next::Close("shutting down");
        }
        let (deadline, why) = if state.requests == 0 {
            (
                self.accepted + limits.header_timeout,
                "no complete request within the header timeout",
            )
        } else {
            (
                state.idle_since + limits.idle_timeout,
                "idle past the idle timeout",
            )
        };
        if Instant::now() >= deadline {
            Next::Close(why)
        } else {
            Next::Wait(Some(deadline))
        }
    }
}

/// The router, counting the requests in progress on one connection.
#[derive(Clone)]
struct Tracked {
    inner: TowerToHyperService<Router>,
    conn: Arc<Conn>,
    table: Arc<Table>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::begin(Arc::clone(&self.conn), Arc::clone(&self.table));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| {
                Body::new(CountedBody {
                    inner,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A request in progress, from the call until its response body is done or dropped.
struct InFlight {
    conn: Arc<Conn>,
    table: Arc<Table>,
}

impl InFlight {
    fn begin(conn: Arc<Conn>, table: Arc<Table>) -> InFlight {
        {
            let mut state = conn.lock();
            state.in_flight += 1;
            state.requests += 1;
        }
        InFlight { conn, table }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let idle = {
            let mut state = self.conn.lock();
            state.in_flight -= 1;
            state.idle_since = Instant::now();
            state.in_flight == 0
        };
        if idle {
            self.conn.wake.notify_one();
            self.table.changed.notify_one();
        }
    }
}

/// A response body that ends its request when done or dropped (hyper drops it once sent).
struct CountedBody {
    inner: Body,
    /// Held for its `Drop`.
    _in_flight: InFlight,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The soft limit on open files of this process, if it has one.
fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    None
}

/// The connections that fit: `max`, or fewer when the open-file limit leaves room for fewer. Each
/// connection may hold two descriptors (its socket and the file it sends).
fn connection_cap(max: usize, open_files: Option<u64>) -> usize {
    let max = max.max(1);
    let Some(open_files) = open_files else {
        return max;
    };
    let fit = usize::try_from(open_files.saturating_sub(RESERVED_DESCRIPTORS) / 2)
        .unwrap_or(usize::MAX)
        .max(1);
    if fit < max {
        tracing::info!(
            max_connections = max,
            open_file_limit = open_files,
            cap = fit,
            "fewer connections than asked for: the open-file limit (ulimit -n) leaves room for {fit}"
        );
        fit
    } else {
        max
    }
}

/// Failed accepts in a row: the back-off and the throttled warning.
#[derive(Default)]
struct AcceptFailures {
    /// Failures in a row.
    in_a_row: u32,
    warn: Throttle,
}

impl AcceptFailures {
    /// Logs `error` (throttled) and returns how long to wait before accepting again. Out of
    /// descriptors, it also closes the idlest connection, so that the wait frees one.
    fn failed(&mut self, error: &io::Error, table: &Table) -> Duration {
        // These concern one connection, which the kernel has dropped already; the next accept
        // is fine.
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
        ) {
            tracing::debug!(%error, "a connection was dropped before it was accepted");
            return Duration::ZERO;
        }
        let out_of_descriptors = out_of_descriptors(error);
        if out_of_descriptors {
            table.evict_idlest();
        }
        let pause = backoff(self.in_a_row);
        self.in_a_row = self.in_a_row.saturating_add(1);
        if let Some(more) = self.warn.hit() {
            tracing::warn!(
                %error,
                failed_since_last_warning = more,
                open_connections = table.len(),
                retry_in_ms = pause.as_millis(),
                "cannot accept connections{}",
                if out_of_descriptors {
                    ": out of file descriptors (raise ulimit -n, or lower --max-connections); closing the idlest connection"
                } else {
                    ""
                }
            );
        }
        pause
    }

    fn succeeded(&mut self) {
        self.in_a_row = 0;
    }
}

/// The pause after `failures` failed accepts in a row (the first is 0): 10 ms doubling to 1 s.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2_u32.saturating_pow(failures))
        .min(MAX_BACKOFF)
}

fn out_of_descriptors(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        Errno::from_io_error(error)
            .is_some_and(|e| [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].contains(&e))
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// A warning that may fire often: logged the first time and then at most every [`WARN_EVERY`].
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    /// Times it fired since it was last logged.
    suppressed: u64,
}

impl Throttle {
    /// `Some(times it fired unlogged since the last log)` when this one is to be logged.
    fn hit(&mut self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    fn hit_at(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now < last + WARN_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Throttle, WARN_EVERY, backoff, connection_cap, out_of_descriptors};

    #[test]
    fn the_back_off_doubles_from_10_ms_to_1_s() {
        let pauses: Vec<u128> = (0..10).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn the_cap_leaves_room_for_two_descriptors_a_connection() {
        assert_eq!(connection_cap(512, None), 512);
        assert_eq!(connection_cap(512, Some(20_000)), 512);
        assert_eq!(connection_cap(512, Some(1024)), 496);
        assert_eq!(connection_cap(512, Some(256)), 112);
        assert_eq!(connection_cap(512, Some(64)), 16);
        assert_eq!(connection_cap(512, Some(10)), 1);
        assert_eq!(connection_cap(0, None), 1);
    }

    #[cfg(unix)]
    #[test]
    fn out_of_descriptors_is_told_from_other_errors() {
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(
            rustix::io::Errno::MFILE.raw_os_error()
        )));
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(
            rustix::io::Errno::NFILE.raw_os_error()
        )));
        assert!(!out_of_descriptors(&std::io::Error::from_raw_os_error(
            rustix::io::Errno::INVAL.raw_os_error()
        )));
        assert!(!out_of_descriptors(&std::io::Error::other("x")));
    }

    #[test]
    fn a_repeated_warning_is_logged_once_every_ten_seconds_with_a_count() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        assert_eq!(throttle.hit_at(start), Some(0));
        assert_eq!(throttle.hit_at(start + Duration::from_secs(1)), None);
        assert_eq!(throttle.hit_at(start + Duration::from_secs(9)), None);
        assert_eq!(throttle.hit_at(start + WARN_EVERY), Some(2));
        assert_eq!(throttle.hit_at(start + WARN_EVERY), None);
    }
}
