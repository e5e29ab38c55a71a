//! A mirror this process cannot write: `status` reads it, `verify` checks every file and
//! reports what it finds without recording anything, `verify --repair` refuses clearly, and
//! nothing is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::history::Registry;
use crate::{files_below, stderr, stdout};

/// A mirror made read-only for this process, made writable again when dropped.
///
/// Without root, taking the write bits away is enough. Root ignores them (the probe write
/// succeeds), so as root the mirror is seen through a read-only bind mount instead; the test
/// fails rather than skips when that is not allowed either.
pub(crate) enum ReadOnly {
    /// `chmod -R a-w` on the mirror itself.
    Permissions { dir: PathBuf },
    /// A read-only bind mount of the mirror at `dir`.
    Mount { dir: PathBuf },
}

impl ReadOnly {
    /// Makes `dest` read-only; returns the guard and the path to give `--dest`.
    pub(crate) fn make(dest: &Path, mount_point: &Path) -> ReadOnly {
        chmod(dest, "a-w");
        if std::fs::write(dest.join(".write-probe"), b"x").is_err() {
            return ReadOnly::Permissions {
                dir: dest.to_owned(),
            };
        }
        // Root: the permissions are not enforced.
        std::fs::remove_file(dest.join(".write-probe")).unwrap();
        chmod(dest, "u+w");
        std::fs::create_dir_all(mount_point).unwrap();
        let mount = |args: &[&str]| {
            let out = Command::new("mount")
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
            assert!(
                out.status.success(),
                "running as root, where permissions are not enforced, the read-only tests \
                 bind-mount the mirror read-only, and could not: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        mount(&[
            "--bind",
            dest.to_str().unwrap(),
            mount_point.to_str().unwrap(),
        ]);
        let guard = ReadOnly::Mount {
            dir: mount_point.to_owned(),
        };
        mount(&["-o", "remount,bind,ro", mount_point.to_str().unwrap()]);
        assert!(
            std::fs::write(mount_point.join(".write-probe"), b"x").is_err(),
            "{} is still writable",
            mount_point.display()
        );
        guard
    }

    /// The path of the read-only mirror.
    pub(crate) fn dir(&self) -> &Path {
        match self {
            ReadOnly::Permissions { dir } | ReadOnly::Mount { dir } => dir,
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        match self {
            ReadOnly::Permissions { dir } => chmod(dir, "u+w"),
            ReadOnly::Mount { dir } => {
                let _ = Command::new("umount").arg("-l").arg(&*dir).status();
            }
        }
    }
}

fn chmod(dir: &Path, mode: &str) {
    let status = Command::new("chmod")
        .args(["-R", mode])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "chmod -R {mode} {}", dir.display());
}

/// Every file under `root` with its modification time and length.
fn listing(root: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out: Vec<_> = files_below(root)
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).unwrap();
            (p, meta.len(), meta.modified().unwrap())
        })
        .collect();
    out.sort();
    out
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_str(stdout(out).lines().last().unwrap()).unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{} {}",
                v["name"].as_str().unwrap(),
                v["vers"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_read_only_mirror_is_read_by_status_and_checked_by_verify_which_records_nothing() {
    let mut reg = Registry::new();
    reg.publish("a", "1.0.0", b"a 1.0.0");
    reg.publish("bb", "0.1.0", b"bb 0.1.0");
    reg.publish("ccc", "2.0.0", b"ccc 2.0.0");
    reg.commit("one", false);
    let (out, _) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dest = reg.dest();
    let cache = reg.tmp.path().join("cache");
    let mount_point = reg.tmp.path().join("read-only");
    let out = crate::run(
        &cache,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let writable = json(&out);

    // Intact: status reads it, verify checks every file and exits 0.
    {
        let ro = ReadOnly::make(&dest, &mount_point);
        let ro_s = ro.dir().to_str().unwrap();
        let before = listing(ro.dir());
        let out = crate::run(&cache, &["status", "--dest", ro_s, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let summary = json(&out);
        for field in [
            "verified",
            "verified_bytes",
            "failed",
            "synced_commit",
            "sync_count",
        ] {
            assert_eq!(summary[field], writable[field], "{field}: {summary}");
        }
        let out = crate::run(&cache, &["status", "--dest", ro_s]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

        let out = crate::run(&cache, &["verify", "--dest", ro_s, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let report = json(&out);
        assert_eq!(report["checked"], 3, "{report}");
        assert_eq!(report["ok"], 3, "{report}");
        assert_eq!(report["read_only"], true, "{report}");
        assert!(
            stderr(&out).contains("ok: every recorded file"),
            "{}",
            stderr(&out)
        );
        assert_eq!(listing(ro.dir()), before, "something was written");
    }

    // Damaged (one file cut, one gone): verify reports both, exit 1, and says nothing could
    // be recorded; --repair refuses before doing anything.
    let cut = reg.file("a", "1.0.0");
    std::fs::write(&cut, b"a 1.0").unwrap();
    std::fs::remove_file(reg.file("bb", "0.1.0")).unwrap();
    {
        let ro = ReadOnly::make(&dest, &mount_point);
        let ro_s = ro.dir().to_str().unwrap();
        let before = listing(ro.dir());
        let out = crate::run(&cache, &["verify", "--dest", ro_s, "--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let report = json(&out);
        assert_eq!(report["checked"], 3, "{report}");
        assert_eq!(report["ok"], 1, "{report}");
        assert_eq!(names(&report["corrupt"]), ["a 1.0.0"], "{report}");
        assert_eq!(names(&report["missing"]), ["bb 0.1.0"], "{report}");
        assert_eq!(report["read_only"], true, "{report}");
        let text = stderr(&out);
        assert!(
            text.contains("problems found, and nothing could be recorded: the mirror is read-only"),
            "{text}"
        );

        let out = crate::run(&cache, &["verify", "--repair", "--dest", ro_s]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.starts_with(&format!(
                "error: verify --repair needs write access to the mirror at {ro_s} ("
            )),
            "{text}"
        );
        assert!(
            text.contains(
                "run it where the mirror is writable (verify without --repair checks a \
                 read-only mirror)"
            ),
            "{text}"
        );
        assert_eq!(listing(ro.dir()), before, "something was written");
    }

    // Nothing was recorded: the state still says all three verified, and a verify where the
    // mirror is writable finds the same damage and acts on it.
    let out = crate::run(
        &cache,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    );
    assert_eq!(json(&out)["verified"], 3);
    let out = crate::run(
        &cache,
        &["verify", "--dest", dest.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["read_only"], false, "{report}");
    assert_eq!(names(&report["missing"]), ["bb 0.1.0"], "{report}");
    let out = crate::run(
        &cache,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    );
    assert_eq!(json(&out)["verified"], 1);
}
