//! `mirror-cli serve`: the mirror over HTTP/1.1 and cleartext HTTP/2, for cargo.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use mirror_serve::ServeOptions;

use crate::Outcome;

/// How long responses in flight (a large crate to a slow client) may hold up the exit after
/// Ctrl-C or SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// Arguments of `mirror-cli serve`.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The mirror directory.
    #[arg(long, value_name = "DIR", default_value = "mirror")]
    dest: PathBuf,
    /// The address to listen on; port 0 picks a free port (the line `listening on http://…` on
    /// stdout says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// The URL clients reach this server at, when it is not the listening address (behind a
    /// reverse proxy, or listening on 0.0.0.0). config.json's dl points below it.
    #[arg(long, value_name = "URL", value_parser = base_url_arg)]
    base_url: Option<String>,
}

/// Checks a `--base-url` (`serve`, `publish`, `sync`) while the arguments are parsed, so that a bad
/// one is refused before anything is printed or written; the library functions check it again the
/// same way. The value kept has no trailing slash.
pub(crate) fn base_url_arg(url: &str) -> Result<String, mirror_index::Error> {
    mirror_index::BaseUrl::parse(url).map(|url| url.to_string())
}

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mirror-serve")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(args))?;
    Ok(Outcome::Clean)
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if !args.dest.is_dir() {
        anyhow::bail!(
            "{} is not a directory: give the mirror directory (--dest) a sync wrote",
            args.dest.display()
        );
    }
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    if !args.dest.join("index").join("config.json").is_file() {
        tracing::warn!(
            dest = %args.dest.display(),
            "the mirror has no published index yet (index/config.json): run `mirror-cli sync`, or `mirror-cli publish` after a sync; until then cargo gets 404s"
        );
    }
    let signals = Signals::watch();
    let base = args.base_url.clone().unwrap_or_else(|| {
        if addr.ip().is_unspecified() {
            // Clients reach 0.0.0.0 through one of the machine's own names or addresses.
            format!("http://<this machine's address>:{}", addr.port())
        } else {
            format!("http://{addr}")
        }
    });
    // The first line is for scripts and tests that asked for port 0. A server must not stop
    // because nobody reads its stdout any more, so a failed write is only logged.
    let banner = format!(
        "listening on http://{addr}\n\
         serving {} as {base}; point cargo at it with, in .cargo/config.toml:\n  \
         [source.crates-io]\n  \
         replace-with = \"mirror\"\n  \
         [source.mirror]\n  \
         registry = \"sparse+{base}/index/\"\n",
        args.dest.display()
    );
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(banner.as_bytes()).and_then(|()| out.flush()) {
        tracing::warn!("cannot write to stdout: {e}");
    }
    drop(out);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("shutting down: no new connections; finishing the responses in flight");
        stop.send_replace(true);
    });
    let mut on_signal = stopped.clone();
    let server = mirror_serve::serve(
        listener,
        ServeOptions {
            dest: args.dest.clone(),
            base_url: args.base_url.clone(),
        },
        async move {
            // An error means the sender is gone, which only happens once it sent.
            let _ = on_signal.wait_for(|stop| *stop).await;
        },
    );
    let mut grace = stopped;
    tokio::select! {
        result = server => result.context("serving the mirror")?,
        () = async {
            let _ = grace.wait_for(|stop| *stop).await;
            tokio::time::sleep(GRACE).await;
        } => {
            tracing::warn!("responses still in flight after {GRACE:?}; exiting anyway");
        }
    }
    Ok(())
}

/// Ctrl-C and SIGTERM, watched from before the server says it listens, so that a signal sent
/// as soon as it does is never lost (or left to the default action, which kills the process).
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn watch() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let watch = |kind, what| {
                signal(kind)
                    .inspect_err(|e| tracing::warn!("cannot watch for {what}: {e}"))
                    .ok()
            };
            Signals {
                interrupt: watch(SignalKind::interrupt(), "Ctrl-C"),
                terminate: watch(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Waits for the first of them.
    async fn recv(mut self) {
        #[cfg(unix)]
        {
            async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(self.interrupt.as_mut()) => {}
                () = next(self.terminate.as_mut()) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
