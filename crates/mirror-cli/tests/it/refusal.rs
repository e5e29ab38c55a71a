//! A registry that refuses the mirror, or asks it to wait: a bounded number of requests, one
//! message saying what to do, failures counted by kind and host, pauses shown.

use std::process::Output;

use mirror_testkit::server::{Fault, RateFaults};
use serde_json::{Value, json};

use crate::stderr;
use crate::sync::Fixture;

/// The fetcher's default `max_consecutive_failures`.
const LIMIT: usize = 30;
const JOBS: usize = 4;

/// `sync --json` of the fixture, straight to its CDN, with fast retries.
fn sync(f: &Fixture, extra: &[&str]) -> (Output, Value) {
    let index = format!("file://{}", f.registry.git.display());
    let dl = f.server.dl_cdn_template();
    let jobs = JOBS.to_string();
    let mut args = vec![
        "sync",
        "--dest",
        f.dest.to_str().unwrap(),
        "--index",
        &index,
        "--dl",
        &dl,
        "--json",
        "--rate",
        "1000",
        "--jobs",
        &jobs,
        "--backoff-ms",
        "5",
        "--contact",
        "tests@example.org",
    ];
    args.extend_from_slice(extra);
    let out = f.command(&args).output().unwrap();
    let json = last_json(&out);
    (out, json)
}

fn status(f: &Fixture, json: bool) -> Output {
    let dest = f.dest.to_str().unwrap();
    let mut args = vec!["status", "--dest", dest];
    if json {
        args.push("--json");
    }
    f.command(&args).output().unwrap()
}

fn last_json(out: &Output) -> Value {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let last = text
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output; stderr:\n{}", stderr(out)));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

/// The CDN path of the fixture's `index`th version.
fn cdn_path(f: &Fixture, index: usize) -> String {
    let v = &f.registry.versions[index];
    format!("/crates/{0}/{0}-{1}.crate", v.name(), v.vers())
}

/// Crate-file requests the server answered.
fn crate_requests(f: &Fixture) -> usize {
    f.server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/crates/"))
        .count()
}

/// A server answering `403` to everything sees the limit of refusals in a row and the downloads
/// in flight, not the whole registry; the run exits 1 with one message naming the host, the
/// kind and what to do; the versions never tried stay pending, the marker stays, and the next
/// run (the server friendly again) mirrors everything.
#[test]
fn a_registry_that_refuses_everything_gets_a_bounded_number_of_requests_and_one_message() {
    let f = Fixture::new();
    let n = f.registry.versions.len();
    assert!(
        n > 3 * LIMIT,
        "the fixture should be much larger than the limit: {n}"
    );
    f.server
        .inject_rate(RateFaults::new(7, vec![(1.0, Fault::Status(403))]));

    let (out, report) = sync(&f, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let requests = crate_requests(&f);
    // The requests in flight when the last refusal came back may still arrive: at most one per
    // job, plus as many that took a freed place just before the stop was recorded.
    assert!(
        (LIMIT..=LIMIT + 2 * JOBS).contains(&requests),
        "a server refusing everything got {requests} requests for {n} versions"
    );
    let host = f.server.addr().to_string();
    let failed = report["failed"].as_u64().unwrap();
    let not_attempted = report["not_attempted"].as_u64().unwrap();
    assert_eq!(failed as usize, requests, "one request per refused version");
    assert_eq!(failed + not_attempted, n as u64, "{report}");
    assert_eq!(report["downloaded"], 0);
    assert_eq!(
        report["host_stopped"]["host"].as_str(),
        Some(host.as_str()),
        "{report}"
    );
    assert_eq!(report["host_stopped"]["kind"], "forbidden");
    assert_eq!(report["host_stopped"]["status"], 403);
    assert_eq!(report["host_stopped"]["failures"], LIMIT);
    // The list of failures keeps its shape; the counts by kind and host come with it.
    assert_eq!(report["failures"].as_array().unwrap().len() as u64, failed);
    assert_eq!(report["failures"][0]["kind"], "forbidden");
    assert_eq!(report["failures"][0]["host"].as_str(), Some(host.as_str()));
    assert_eq!(
        report["failures_by_kind"],
        json!([{"kind": "forbidden", "host": host, "count": failed}])
    );

    // One message, in the summary (on stderr beside --json), says what happened and what to do.
    let text = stderr(&out);
    assert_eq!(text.matches("stopped downloading").count(), 1, "{text}");
    let from = text.find("  failed:").expect("a failed line");
    let summary: String = text[from..]
        .lines()
        .filter(|l| !l.starts_with("    ") || !l.contains(": forbidden: "))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::with_settings!({filters => vec![
        (r"127\.0\.0\.1:\d+", "[HOST]"),
        (r"\b\d+ (versions|forbidden)\b", "[N] $1"),
        (r"/crates/[^ )]+", "/crates/[FILE]"),
        (r"… and \d+ more", "… and [N] more"),
    ]}, {
        insta::assert_snapshot!(summary);
    });

    // Nothing is recorded verified, and the marker has not moved: the next run retries.
    let out = status(&f, true);
    let state = last_json(&out);
    assert_eq!(state["verified"], 0);
    assert_eq!(state["failed"], failed);
    assert_eq!(state["synced_commit"], Value::Null);
    assert_eq!(
        state["failures_by_kind"],
        json!([{"kind": "forbidden", "host": host, "count": failed}])
    );

    f.server.clear_faults();
    f.server.clear_requests();
    let (out, report) = sync(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["downloaded"], n);
    assert_eq!(report["host_stopped"], Value::Null);
    assert_eq!(report["not_attempted"], 0);
    assert_eq!(report["failures_by_kind"], json!([]));
    let state = last_json(&status(&f, true));
    assert_eq!(state["verified"], n);
    assert_eq!(state["synced_commit"], f.registry.commit.as_str());
}

/// A `Retry-After` of a day, cut to the longest honoured, is said once at the default log level,
/// with the host, what was asked and that it was capped.
#[test]
fn a_long_retry_after_is_a_warning_that_says_it_was_capped() {
    let f = Fixture::new();
    let n = f.registry.versions.len();
    let day = Fault::TooManyRequests {
        retry_after: Some(86_400),
    };
    f.server.inject_times(&cdn_path(&f, 0), day, 1);
    let (out, report) = sync(&f, &["--max-retry-after-ms", "1000"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["downloaded"], n);
    let text = stderr(&out);
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("asked for a pause"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    let expected = format!(
        "{} asked for a pause of 86400 s (Retry-After on a 429); pausing 1 s, the longest honoured (capped); no request starts until then",
        f.server.addr()
    );
    assert!(
        warnings[0].contains("WARN") && warnings[0].ends_with(&expected),
        "{}",
        warnings[0]
    );
}

/// Failures of several kinds are counted by kind and host, in the sync's JSON, in `status`, and
/// in the human forms before the samples.
#[test]
fn failures_are_grouped_by_kind_and_host() {
    let f = Fixture::new();
    for i in [1, 2, 3] {
        f.server.inject(&cdn_path(&f, i), Fault::Status(404));
    }
    f.server.inject(&cdn_path(&f, 4), Fault::Status(500));
    let (out, report) = sync(&f, &["--attempts", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let host = f.server.addr().to_string();
    let groups = json!([
        {"kind": "not_found", "host": host, "count": 3},
        {"kind": "http", "host": host, "count": 1},
    ]);
    assert_eq!(report["failures_by_kind"], groups, "{report}");
    assert_eq!(report["failed"], 4);
    assert_eq!(report["host_stopped"], Value::Null);
    let state = last_json(&status(&f, true));
    assert_eq!(state["failures_by_kind"], groups, "{state}");

    let out = status(&f, false);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let counts = format!("    3 not_found from {host}\n    1 http from {host}\n  for example:\n");
    assert!(
        text.contains(&format!("  failed:     4 versions\n{counts}")),
        "{text}"
    );
    let summary = stderr(&{ sync(&f, &["--attempts", "2"]).0 });
    assert!(
        summary.contains(&format!(
            "  failed:       4 versions (recorded; the next sync retries them):\n{counts}"
        )),
        "{summary}"
    );
}

/// `verify --repair` against a registry that refuses everything stops the same way, and every
/// version it did not repair, tried or not, stays recorded as a failure for the next sync.
#[test]
fn a_repair_refused_everywhere_stops_and_leaves_every_broken_version_failed() {
    let f = Fixture::new();
    let n = f.registry.versions.len();
    let (out, _) = sync(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::remove_dir_all(f.dest.join("crates")).unwrap();
    f.server.clear_requests();
    f.server
        .inject_rate(RateFaults::new(3, vec![(1.0, Fault::Status(403))]));
    let dest = f.dest.to_str().unwrap();
    let jobs = JOBS.to_string();
    let args = [
        "verify",
        "--dest",
        dest,
        "--repair",
        "--json",
        "--rate",
        "1000",
        "--jobs",
        &jobs,
        "--backoff-ms",
        "5",
    ];
    let out = f.command(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = last_json(&out);
    let requests = crate_requests(&f);
    assert!(
        (LIMIT..=LIMIT + 2 * JOBS).contains(&requests),
        "{requests} requests for {n} repairs"
    );
    assert_eq!(report["repaired"], 0);
    assert_eq!(report["host_stopped"]["kind"], "forbidden", "{report}");
    let failed = report["failures"].as_array().unwrap().len();
    assert_eq!(failed, requests);
    assert_eq!(report["not_attempted"], (n - failed) as u64);
    assert_eq!(
        report["failures_by_kind"],
        json!([{"kind": "forbidden", "host": f.server.addr().to_string(), "count": failed}])
    );
    assert_eq!(stderr(&out).matches("stopped downloading").count(), 1);
    let state = last_json(&status(&f, true));
    assert_eq!(state["verified"], 0, "{state}");
    assert_eq!(state["failed"], n, "{state}");
}
