//! `mirror_sync::sync` at its own level: a first full sync, a second with nothing to do, one after
//! upstream published and yanked, and one with a download that fails; each report snapshotted.

use mirror_testkit::mirror::MirrorFixture;
use mirror_testkit::server::Fault;

use crate::engine::{assert_files, sync};

#[test]
fn first_sync_downloads_every_version() {
    let f = MirrorFixture::new();
    let report = sync(&f);

    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.mode, "full");
    assert_eq!((report.selected, report.downloaded), (6, 6));
    let bytes: u64 = f.versions().iter().map(|v| v.bytes.len() as u64).sum();
    assert_eq!(report.downloaded_bytes, bytes);
    assert_files(&f, &f.versions().iter().collect::<Vec<_>>());
    insta::assert_json_snapshot!(f.redact(&report));
}

#[test]
fn second_sync_is_incremental_with_nothing_to_do() {
    let f = MirrorFixture::new();
    assert!(sync(&f).is_clean());
    f.server().clear_requests();

    let report = sync(&f);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.mode, "incremental");
    assert_eq!(
        (
            report.downloaded,
            report.index_files_read,
            report.published_written
        ),
        (0, 0, 0)
    );
    assert!(
        f.server().requests().is_empty(),
        "a sync with nothing to do asks the server nothing"
    );
    insta::assert_json_snapshot!(f.redact(&report));
}

#[test]
fn sync_after_upstream_adds_a_version_and_yanks_one() {
    let mut f = MirrorFixture::new();
    assert!(sync(&f).is_clean());
    f.add_version("alpha", "1.2.0");
    f.yank("beta", "0.1.0");
    f.commit("alpha 1.2.0 published, beta 0.1.0 yanked");
    f.server().clear_requests();

    let report = sync(&f);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.mode, "incremental");
    assert_eq!((report.added, report.yanked, report.downloaded), (1, 1, 1));
    let fetched: Vec<String> = f.server().requests().into_iter().map(|r| r.path).collect();
    assert_eq!(fetched, [f.version("alpha", "1.2.0").cdn_path()]);
    assert_files(&f, &f.versions().iter().collect::<Vec<_>>());
    // The yanked version stays mirrored and its published line says it is yanked.
    let beta = std::fs::read_to_string(f.dest().join("index/be/ta/beta")).unwrap();
    assert_eq!(
        beta,
        format!(
            "{}\n{}\n",
            f.version("beta", "0.1.0").line(),
            f.version("beta", "0.2.0").line()
        )
    );
    insta::assert_json_snapshot!(f.redact(&report));
}

#[test]
fn a_404_is_a_recorded_failure_and_the_run_is_not_clean() {
    let f = MirrorFixture::new();
    let gone = f.version("c", "0.1.0").clone();
    f.server().inject(&gone.cdn_path(), Fault::Status(404));

    let report = sync(&f);
    assert!(!report.is_clean());
    assert_eq!((report.downloaded, report.failed), (5, 1));
    let failures: Vec<(&str, &str, &str)> = report
        .failures
        .iter()
        .map(|f| (f.name.as_str(), f.vers.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(failures, [("c", "0.1.0", "not_found")]);
    let others: Vec<_> = f.versions().iter().filter(|v| v.name != "c").collect();
    assert_files(&f, &others);
    // The marker did not move: the failed version is not skipped by the next sync.
    let status = mirror_sync::status(f.dest(), None).unwrap();
    assert_eq!((status.synced_commit, status.failed), (None, 1));
    insta::assert_json_snapshot!(f.redact(&report));

    f.server().clear_faults();
    let again = sync(&f);
    assert!(again.is_clean(), "{again:?}");
    assert_eq!((again.downloaded, again.already_present), (1, 5));
    assert_files(&f, &f.versions().iter().collect::<Vec<_>>());
}
