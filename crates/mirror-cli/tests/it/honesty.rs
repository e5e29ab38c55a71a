//! What the summaries, `status` and the exit codes say must be what happened: a full compare
//! looks at the files it reports present, storage failures are counted where they are said to be
//! recorded, a repair that mended damage still says damage happened, a publish cleans up after a
//! killed one, and a prune counts the index files it removed.

use mirror_store::Store;

use crate::history::{self, Registry};
use crate::sync::{Fixture, count, published, summary};
use crate::{stderr, stdout};

/// A file deleted by hand and another whose size changed are noticed by `sync --full`, which
/// downloads both again (the wrong one kept in quarantine) and says so; nothing is published for
/// them until they are verified again.
#[test]
fn a_full_compare_downloads_again_what_is_missing_or_of_the_wrong_size() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let store = f.store();
    let (gone, grown) = (&f.registry.versions[0], &f.registry.versions[1]);
    std::fs::remove_file(store.crate_path(gone.name(), gone.vers())).unwrap();
    let grown_path = store.crate_path(grown.name(), grown.vers());
    let mut bytes = std::fs::read(&grown_path).unwrap();
    bytes.extend_from_slice(b"appended by hand");
    std::fs::write(&grown_path, &bytes).unwrap();

    let (out, report) = f.sync(&["--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&report, "recorded_missing"), 1, "{report}");
    assert_eq!(count(&report, "recorded_wrong_size"), 1, "{report}");
    assert_eq!(report["drift"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(count(&report, "downloaded"), 2, "{report}");
    assert_eq!(count(&report, "already_present"), n - 2, "{report}");
    assert_eq!(f.assert_files_are_verified_copies() as u64, n);
    assert!(published(&f.dest, gone.name(), gone.vers()));
    assert!(published(&f.dest, grown.name(), grown.vers()));
    let text = stderr(&out);
    assert!(
        text.contains("1 missing, 1 of another size"),
        "the summary names the drift: {text}"
    );
    // The grown copy is evidence: kept in quarantine, not deleted.
    let kept = crate::files_below(&f.dest.join(".mirror/quarantine"));
    assert!(
        kept.iter()
            .any(|p| std::fs::read(p).is_ok_and(|b| b == bytes)),
        "{kept:?}"
    );

    // Nothing was hashed for the versions found in place: the summary says "recorded verified".
    let out = f.sync_command(&["--full"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains(&format!("{n} recorded verified")), "{text}");
    assert!(!text.contains("mirrored and verified"), "{text}");
    let (_, status) = f.status();
    assert_eq!(count(&status, "verified"), n, "{status}");
}

/// A version whose file cannot be put in place (our own disk refuses) is a failure `status`
/// counts, as the summary says it was recorded; the next sync retries it.
#[test]
fn storage_failures_are_recorded_and_counted_by_status() {
    let f = Fixture::new();
    let n = f.registry.versions.len() as u64;
    let store = Store::open(&f.dest).unwrap();
    let v = &f.registry.versions[0];
    // A file where the crate's directory belongs: putting its files in place fails.
    let blocker = store
        .crate_path(v.name(), v.vers())
        .parent()
        .unwrap()
        .to_owned();
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"in the way").unwrap();

    let (out, report) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed = count(&report, "failed");
    assert!(failed >= 1, "{report}");
    assert!(
        report["failures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] == "storage"),
        "{report}"
    );
    let (_, status) = f.status();
    assert_eq!(count(&status, "failed"), failed, "{status}");
    assert!(
        status["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "storage" && f["name"] == v.name().as_str()),
        "{status}"
    );

    std::fs::remove_file(&blocker).unwrap();
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (_, status) = f.status();
    assert_eq!(count(&status, "failed"), 0, "{status}");
    assert_eq!(count(&status, "verified"), n, "{status}");
}

/// `verify --repair` that mended every broken file still exits 1 (damage happened: cron hears of
/// it), with `repaired` equal to what was missing or corrupt; the next verify exits 0.
#[test]
fn a_repair_that_mended_everything_exits_1_and_says_so() {
    let f = Fixture::new();
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = &f.registry.versions[2];
    std::fs::remove_file(f.store().crate_path(v.name(), v.vers())).unwrap();

    let (out, report) = f.verify(&["--repair"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(count(&report, "repaired"), 1, "{report}");
    assert_eq!(report["missing"].as_array().unwrap().len(), 1, "{report}");
    assert!(
        report["failures"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let text = stderr(&out);
    assert!(
        text.contains("repaired: every file is present and matches its checksum again"),
        "{text}"
    );
    let (out, _) = f.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// The temp files a killed publish leaves in `.mirror/tmp` are deleted by the next publish.
#[test]
fn publish_cleans_the_temp_files_of_a_killed_publish() {
    let f = Fixture::new();
    let (out, _) = f.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let tmp = f.dest.join(".mirror/tmp");
    let leftover = tmp.join("4242-0-00000000deadbeef.part");
    std::fs::write(&leftover, b"half an index file").unwrap();

    let out = f
        .command(&["publish", "--dest", f.dest.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = summary(&out);
    assert_eq!(count(&report, "temp_cleaned"), 1, "{report}");
    assert!(!leftover.exists());
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    assert!(stdout(&out).lines().count() == 1);
}

/// `sync --prune` counts the published index files its retraction removed, and leaves no
/// empty shard directory under `index/`.
#[test]
fn a_prune_counts_the_index_files_it_removed_and_leaves_no_empty_shard() {
    let mut reg = Registry::new();
    reg.publish("keep", "1.0.0", b"keep 1.0.0");
    reg.publish("gone", "1.0.0", b"gone 1.0.0");
    reg.publish("gone", "1.1.0", b"gone 1.1.0");
    reg.publish("zz", "0.1.0", b"zz 0.1.0");
    reg.commit("base", false);
    let (out, _) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let index = reg.dest().join("index");
    assert!(index.join("go/ne/gone").is_file());
    assert!(index.join("2/zz").is_file());

    reg.delete("gone");
    reg.delete("zz");
    reg.commit("gone and zz deleted", false);
    let (out, s) = reg.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s["removed_upstream"], 3, "{s}");
    let (out, s) = reg.sync(&["--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s["pruned"], 3, "{s}");
    assert_eq!(s["published_removed"], 2, "{s}");
    assert!(history::published(&reg.dest(), "gone").is_empty());
    for gone in ["go/ne", "go", "2"] {
        assert!(!index.join(gone).exists(), "index/{gone} is left behind");
    }
    assert!(index.join("ke/ep/keep").is_file());
    assert!(index.join("config.json").is_file());
    assert!(
        stderr(&out).contains("2 removed (index/)"),
        "{}",
        stderr(&out)
    );
}
