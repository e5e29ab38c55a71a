//! `mirror_sync::verify` at its own level: a clean mirror, one with a file deleted and another
//! corrupted, and `repair` mending them; reports and the status around them snapshotted.

use mirror_testkit::mirror::MirrorFixture;

use crate::engine::{assert_files, crate_path, refs, sync, verify};

/// A synced mirror with `alpha 1.0.0` deleted and `gamma-utils 2.0.0` corrupted (same size, one
/// byte changed: only the hash can tell).
fn damaged() -> MirrorFixture {
    let f = MirrorFixture::new();
    assert!(sync(&f).is_clean());
    std::fs::remove_file(crate_path(&f, f.version("alpha", "1.0.0"))).unwrap();
    let path = crate_path(&f, f.version("gamma-utils", "2.0.0"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[7] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    f
}

#[test]
fn verify_on_a_clean_mirror_finds_nothing_wrong() {
    let f = MirrorFixture::new();
    assert!(sync(&f).is_clean());

    let report = verify(&f, false);
    assert!(report.is_clean() && report.is_mended(), "{report:?}");
    assert_eq!((report.checked, report.ok), (6, 6));
    let bytes: u64 = f.versions().iter().map(|v| v.bytes.len() as u64).sum();
    assert_eq!(report.bytes, bytes);
    insta::assert_json_snapshot!(f.redact(&report));
}

#[test]
fn verify_lists_a_deleted_and_a_corrupted_file() {
    let f = damaged();

    let report = verify(&f, false);
    assert!(!report.is_clean() && !report.is_mended());
    assert_eq!((report.checked, report.ok, report.repaired), (6, 4, 0));
    assert_eq!(refs(&report.missing), ["alpha 1.0.0"]);
    assert_eq!(refs(&report.corrupt), ["gamma-utils 2.0.0"]);
    assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
    insta::assert_json_snapshot!("verify_damaged", f.redact(&report));

    // The state no longer claims them, and the next sync will compare everything.
    let status = mirror_sync::status(f.dest(), None).unwrap();
    assert_eq!((status.verified, status.failed), (4, 2));
    assert!(status.full_compare_needed.is_some());
    insta::assert_json_snapshot!("status_damaged", f.redact(&status));
}

#[test]
fn verify_repair_mends_a_deleted_and_a_corrupted_file() {
    let f = damaged();
    f.server().clear_requests();

    let report = verify(&f, true);
    // Damage was found, so not clean, though all of it was mended.
    assert!(!report.is_clean() && report.is_mended(), "{report:?}");
    assert_eq!(report.repaired, 2);
    assert_eq!(refs(&report.missing), ["alpha 1.0.0"]);
    assert_eq!(refs(&report.corrupt), ["gamma-utils 2.0.0"]);
    let mut fetched: Vec<String> = f.server().requests().into_iter().map(|r| r.path).collect();
    fetched.sort();
    assert_eq!(
        fetched,
        [
            f.version("alpha", "1.0.0").cdn_path(),
            f.version("gamma-utils", "2.0.0").cdn_path()
        ]
    );
    assert_files(&f, &f.versions().iter().collect::<Vec<_>>());
    // The corrupt copy went to quarantine, not away.
    let quarantine = f.dest().join(".mirror/quarantine");
    let mut stack = vec![quarantine];
    let mut kept = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                kept.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    assert!(
        kept.iter().any(|name| name == "gamma-utils-2.0.0.crate"),
        "{kept:?}"
    );
    insta::assert_json_snapshot!("verify_repair", f.redact(&report));

    let status = mirror_sync::status(f.dest(), None).unwrap();
    assert_eq!((status.verified, status.failed), (6, 0));
    insta::assert_json_snapshot!("status_repaired", f.redact(&status));
    let again = verify(&f, false);
    assert!(again.is_clean(), "{again:?}");
    assert_eq!(again.ok, 6);
}
