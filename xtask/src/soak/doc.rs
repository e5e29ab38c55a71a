//! `docs/reliability.md`, written from the figures of a soak.

use std::fmt::Write as _;
use std::process::Command;

use super::Soak;

/// The fuzzing table of the doc a soak replaces, for a soak that did not fuzz.
fn old_fuzz_table(old: &str) -> Option<String> {
    let start = old.find("\nFuzzing")?;
    let rest = &old[start..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    let table: String =
        rest[..end]
            .lines()
            .filter(|l| l.starts_with('|'))
            .fold(String::new(), |mut t, l| {
                let _ = writeln!(t, "{l}");
                t
            });
    (!table.is_empty()).then_some(table)
}

/// The whole doc.
pub(super) fn render(soak: &Soak, table: &str, old: &str) -> String {
    let date = Command::new("date")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let (a, l) = (&soak.args, &soak.limits);
    let mut command = format!(
        "cargo xtask soak --sync-kills {} --verify-kills {} --window-kills {} --corrupt-cases {} --flood-connections {} --rate {} --jobs {} --seed {}",
        l.sync_kills,
        l.verify_kills,
        l.window_kills,
        l.corrupt_cases,
        a.flood_connections,
        a.rate,
        a.jobs,
        a.seed
    );
    let fuzz = match &soak.figures.fuzz_table {
        Some(table) => {
            let _ = write!(command, " --fuzz-seconds {}", l.fuzz_seconds);
            format!(
                "Fuzzing (no crash, hang or out-of-memory input found; each target ran from the committed\n\
                 corpus in `fuzz/corpus/`, plus what earlier runs found):\n\n{table}"
            )
        }
        None => {
            for phase in [
                "crashes",
                "windows",
                "corruption",
                "flood",
                "faults",
                "hostile",
                "full-disk",
            ] {
                let _ = write!(command, " --phase {phase}");
            }
            format!(
                "Fuzzing was not part of this soak (cargo-fuzz needs a nightly toolchain); the table of the\n\
                 last soak that fuzzed (no crash, hang or out-of-memory input found):\n\n{}",
                old_fuzz_table(old).unwrap_or_else(|| "(no earlier figures)\n".to_owned())
            )
        }
    };
    let broken = if soak.figures.violations.is_empty() {
        "No promise broke.\n".to_owned()
    } else {
        let mut list = format!(
            "**{} promises broke** (each listed once, after the step that first showed it; the soak failed):\n\n",
            soak.figures.violations.len()
        );
        for v in &soak.figures.violations {
            let _ = writeln!(list, "- {}", v.replace('\n', " "));
        }
        list
    };
    format!(
        "# Reliability

How mirror-cli holds up against crashes, faults, damaged state, slow clients, hostile input and
full disks (issues 8 and 12), and the figures of the last soak. The quick cases are tests
(`cargo nextest run`); the long runs are `cargo xtask soak` (`--short` for a run of a few
minutes), which is not part of CI.

## The promises

The mirror never lies: (a) every version the state records verified has its file in place with
the recorded SHA-256; (b) every line of the published index (`index/`) has its crate file in
place, hashing to the line's checksum, and recorded verified with that checksum. The soak checks
both directly on the disk after every kill and after every run it checks, not only once the
mirror converged: it walks and hashes `crates/`, parses every file under `index/`, and reads the
state from a copy of `.mirror/state` through `mirror-state` (so the check neither takes the
mirror's lock nor lets the database's recovery write into the mirror the next run opens). A file
the soak damaged on purpose is excused only until a run is seen acting on it (its line retracted
from `index/`); from then on the record must say it is broken. Every broken promise is printed
at once with the step that preceded it, counted, listed again at the end, and fails the soak.

## The last soak

Command: `{command}`

Date: {date}. Machine: the shared 2-core development box; `mirror-cli` is the debug build.

{table}
{broken}
{fuzz}
## What the soak does

- **Crashes.** `mirror-cli sync` and `mirror-cli verify --repair` are SIGKILLed after a random
  delay drawn over the length of a whole sync (measured first), so kills land in every stage:
  the index update, downloads (each one a rename into `crates/` followed by a state write),
  quarantines and repairs, publishing, the final state writes. Every third `sync` kill aims at a
  stage too short for a random delay to hit often: a few milliseconds after `publishing the index`
  (publishing, then the state writes that end a run), or during `hashing files left in place`
  after the state was deleted under a partial mirror (adoption writes a record per file). After
  every kill the soak hashes every file under `crates/` against the index checksum (a file under
  its final name is never corrupt, and nothing else, such as a temp file, is ever there) and
  checks both promises. `verify` runs on a mirror damaged on purpose (bytes flipped, files cut or
  deleted) so that it has quarantines, downloads and state writes to be killed in. Every cycle
  ends with a plain sync and verify that must give the complete verified mirror.
- **Kills inside the window.** `verify`, `verify --repair` and `sync --prune` take irreversible
  steps (a line retracted from `index/`, a file moved to quarantine) before the end of the run.
  The soak kills each of them between its first such step and its end, without any help from
  `mirror-cli`: it watches the disk every half millisecond (the published index files of the
  versions it damaged or removed upstream, and the entries of `.mirror/quarantine/`) and kills
  at once for half the kills, else after a delay drawn over the window's length measured on an
  unkilled run. `verify` rounds damage one to three offered files first; every second round a
  `sync --full` and every fourth a plain `sync` follow the kill, as cron would run them, and are
  checked too. `sync --prune` rounds remove a whole crate and a few versions of others upstream,
  in a new commit of the git index or in a directory index given as a new `--index`; a second
  prune must finish the job (nothing removed upstream left under `crates/` or in `index/`); then
  the index is whole again and the mirror converges.
- **Damaged state.** Copies of a complete mirror with tombstones (versions removed upstream, their
  files kept) and a base URL given to `publish` get their sled files truncated, cut, zeroed or
  bit-flipped. `status` must refuse with an error naming the recovery (moving `.mirror/state`
  aside), or read exactly what the intact copy reads (damage in bytes the database no longer
  uses); reading less and exiting 0 breaks the promise. `sync` must agree with `status`. Then the
  recovery is applied (the state moved aside, a sync): every file verified again by hashing, the
  promises held, the tombstones and the base URL (`index/config.json`) as they were.
- **Slow clients.** `mirror-cli serve` gets many idle connections, many requests whose head never
  ends, and more silent connections than its descriptor limit (`prlimit --nofile=256`); while
  each flood is held, a normal request (a new connection asking for `config.json`) is timed right
  away and after 12 s, and must be answered in under a second.
- **Faults.** The testkit server draws a fault for over 40% of crate requests: 500, 502, 503 and
  429 with `Retry-After`, resets, truncated and stalled bodies, slow first bytes, wrong bytes,
  404, 403 and gzip bombs. Failures are listed with their kind, exit 1, recorded in the state and
  retried by the next run. Then the server is stopped in the middle of a sync and restarted on the
  same port seconds later. The server's request log shows that requests in flight never passed
  `--jobs` and requests begun in any window never passed the burst plus `--rate` times the window
  (1 s, 250 ms and 100 ms windows). A clean run then completes with nothing lost.
- **Hostile input.** An index whose lines try to leave the mirror (`../`, absolute paths,
  backslashes, drive letters, NUL, a Cyrillic look-alike, a 65-character name, an 8 MB line,
  invalid UTF-8, a duplicate version with another checksum, a line for another crate's file) next
  to good crates, with a canary beside `--dest`: every bad line is reported, the good crates
  mirror, nothing outside `--dest` changes. `dl` templates with `file:`, `ftp:` and `javascript:`
  schemes are refused with exit 2 before any work. Hostile server answers: a gzip bomb of 1 GiB
  with `Content-Encoding: gzip` (hashed as served, never expanded: a checksum mismatch), wrong
  bytes and a truncated body through the CLI; an endless body (cut at the size limit), the bomb,
  a stall past the stall timeout and a slow first byte through the library.
- **Full disk.** `--dest` on a tmpfs half the size of the mirror: the sync stops with the
  `No space left on device` error and a `storage` failure in its report, exit 1, no temp file
  left and nothing partial under `crates/`; once the filesystem is grown, the same command
  completes the mirror (files whose records did not reach the disk are adopted by hashing).

## Where the quick cases are tested

- Crashes: `crates/mirror-cli/tests/it/sync.rs` (`a_sync_killed_at_random_moments_always_converges`,
  `ctrl_c_stops_cleanly_and_the_next_run_resumes`).
- Two processes on one mirror: `a_second_sync_process_is_refused_while_the_first_runs` (two real
  `sync` processes; the second exits 2 naming the first's pid) and
  `a_second_process_on_the_same_mirror_is_refused_with_exit_2`.
- Full disk: `a_full_disk_stops_cleanly_and_a_rerun_after_space_is_freed_completes` and
  `a_repair_on_a_full_disk_stops_cleanly_and_the_mirror_completes_once_there_is_room` (a tmpfs;
  they need root, and fail rather than skip without it).
- Fetch faults and hostile servers: `crates/mirror-fetch/tests/it/` (`faults.rs`, `hostile.rs`
  for endless bodies, bodies longer than declared and gzip bombs, `verify.rs` for slow drips and
  size limits, `redirects.rs` for redirect loops and odd schemes).
- Hostile index: `crates/mirror-cli/tests/it/hostile.rs`.
- The soak's own promise check: the tests in `xtask/src/soak/promises.rs` (an intact mirror, a
  missing file, a line without a verified record, damage excused only until a run notices it).
- Fuzzing: the soak's last phase, or `cargo xtask fuzz` alone (targets in `fuzz/`: index lines
  and files, `config.json`, `dl` templates, state records; corpus in `fuzz/corpus/`). Two crashes
  were found and fixed, each with a regression test (`mirror-index` `props.rs`, a `dl` template
  without a host; `mirror-state` `corrupt.rs`, over-long texts in a state record).

## Known limits

- On a full disk the state database (sled) cannot write, or even open: records of downloads
  made just before the disk filled may not reach the disk, and `status` and `verify` fail with
  the disk-full error until there is room. Nothing is lost: the files are in place and the next
  sync hashes and adopts them; until then `verify` lists them as unexpected files.
- The CLI's size limit is fixed at 1 GiB, so an endless body costs up to 1 GiB of download and
  temp file before it is cut; the soak checks endless bodies through the library with a small
  limit.
"
    )
}
