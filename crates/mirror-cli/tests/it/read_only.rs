//! A mirror on a read-only file system: `status` reads it, `verify` refuses with a clear
//! message (it must record what it finds), and nothing is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::history::Registry;
use crate::{files_below, stderr, stdout};

/// A read-only bind mount of a directory, unmounted when dropped.
pub(crate) struct ReadOnlyMount {
    dir: PathBuf,
}

impl ReadOnlyMount {
    /// Mounts `source` read-only on `dir`. Panics, saying why, when mounting is not allowed:
    /// root ignores permission bits, so only a read-only mount makes a mirror read-only for the
    /// tests (CI runs as root); the test must not pass by skipping.
    pub(crate) fn mount(source: &Path, dir: &Path) -> ReadOnlyMount {
        std::fs::create_dir_all(dir).unwrap();
        let mount = |args: &[&str]| {
            let out = Command::new("mount")
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
            assert!(
                out.status.success(),
                "the read-only tests need to bind-mount a directory read-only (run the tests as \
                 root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        mount(&["--bind", source.to_str().unwrap(), dir.to_str().unwrap()]);
        let mounted = ReadOnlyMount {
            dir: dir.to_owned(),
        };
        mount(&["-o", "remount,bind,ro", dir.to_str().unwrap()]);
        let probe = dir.join(".write-probe");
        assert!(
            std::fs::write(&probe, b"x").is_err(),
            "{} is still writable",
            dir.display()
        );
        mounted
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
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

#[test]
fn status_reads_a_read_only_mirror_and_verify_refuses_clearly() {
    let mut reg = Registry::new();
    reg.publish("a", "1.0.0", b"a 1.0.0");
    reg.publish("bb", "0.1.0", b"bb 0.1.0");
    reg.commit("one", false);
    let (out, _) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dest = reg.dest();
    let cache = reg.tmp.path().join("cache");
    let (out, writable) = {
        let out = crate::run(
            &cache,
            &["status", "--dest", dest.to_str().unwrap(), "--json"],
        );
        let summary: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
        (out, summary)
    };
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let ro = reg.tmp.path().join("read-only");
    let _mount = ReadOnlyMount::mount(&dest, &ro);
    let before = listing(&ro);
    let ro_s = ro.to_str().unwrap();

    let out = crate::run(&cache, &["status", "--dest", ro_s, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
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

    let out = crate::run(&cache, &["verify", "--dest", ro_s]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out).replace(ro_s, "[DEST]");
    insta::assert_snapshot!(text);
    assert_eq!(listing(&ro), before, "something was written");
}
