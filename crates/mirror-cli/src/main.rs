//! `mirror-cli`: mirror, verify and serve a Cargo registry.
//!
//! This file parses the command line, sets up logging, and is the one place that turns the result
//! of a command into an exit code: 0 all done, 1 finished with problems, 2 bad usage or fatal.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the binary is where output to the user belongs"
)]

mod list;
mod progress;
mod publish;
mod serve;
mod source;
mod sync;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Mirror every crate of a Cargo registry, verify it, keep it current and serve it.
#[derive(Parser)]
#[command(name = "mirror-cli", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More logging on stderr (-v: info, -vv: debug). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// List every version in an index with its checksum and download URL.
    List(list::Args),
    /// Download every version not yet mirrored, verify it, and record it.
    Sync(sync::SyncArgs),
    /// Re-hash every recorded file; report (and with --repair mend) missing, corrupt and unexpected ones.
    Verify(sync::VerifyArgs),
    /// What the mirror holds and how its last sync went.
    Status(sync::StatusArgs),
    /// Write the mirror's sparse index (index/) again, without syncing; set its base URL.
    Publish(publish::PublishArgs),
    /// Serve the mirror to cargo over HTTP (sparse index and crate files).
    Serve(serve::ServeArgs),
}

/// How a command that ran to the end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Everything done, nothing wrong.
    Clean,
    /// The run finished, but something failed or was skipped.
    Problems,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server's access log is at info level: shown by default.
    let verbose = match cli.command {
        Command::Serve(_) => cli.verbose.max(1),
        _ => cli.verbose,
    };
    init_tracing(verbose);
    let result = match cli.command {
        Command::List(args) => list::run(args),
        Command::Sync(args) => sync::sync(args),
        Command::Verify(args) => sync::verify(args),
        Command::Status(args) => sync::status(args),
        Command::Publish(args) => publish::publish(args),
        Command::Serve(args) => serve::serve(args),
    };
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line, each cause once. The library errors put their cause in
/// their own message (so that a message is whole wherever it is shown: a log, a report) and also
/// return it as `source()`, so printing the chain as it is (`{:#}`) said everything twice
/// ("File exists (os error 17): File exists (os error 17)"). A cause whose text is already
/// there is left out.
fn error_chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or the journal (the server's access log) gets
        // plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Like the library errors: the cause in the message, and as `source()` too.
    #[derive(Debug)]
    struct WithSource {
        path: &'static str,
        source: std::io::Error,
    }

    impl std::fmt::Display for WithSource {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "creating directory {}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for WithSource {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn each_cause_of_an_error_is_printed_once() {
        let io = || std::io::Error::from_raw_os_error(17);
        let error = anyhow::Error::new(WithSource {
            path: "mirror",
            source: io(),
        })
        .context("opening the mirror");
        let os = io().to_string();
        assert_eq!(
            error_chain(&error),
            format!("opening the mirror: creating directory mirror: {os}")
        );
        // A cause that says something new is still printed.
        let error = anyhow::Error::new(io()).context("reading the crate list x");
        assert_eq!(
            error_chain(&error),
            format!("reading the crate list x: {os}")
        );
    }
}
