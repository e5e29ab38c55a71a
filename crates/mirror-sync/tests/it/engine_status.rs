//! `mirror_sync::status` and `republish` at the engine's level after a sync: what the state
//! records and what publishing again does; reports snapshotted.

use mirror_sync::PublishOptions;
use mirror_testkit::mirror::MirrorFixture;

use crate::engine::sync;

#[test]
fn status_after_a_sync_counts_what_the_state_holds() {
    let f = MirrorFixture::new();
    let report = sync(&f);
    assert!(report.is_clean());

    let status = mirror_sync::status(f.dest(), None).unwrap();
    assert_eq!(
        (status.verified, status.failed, status.sync_count),
        (6, 0, 1)
    );
    let bytes: u64 = f.versions().iter().map(|v| v.bytes.len() as u64).sum();
    assert_eq!(status.verified_bytes, bytes);
    assert_eq!(status.synced_commit, report.index_commit);
    assert!(!status.publish_pending && status.full_compare_needed.is_none());
    insta::assert_json_snapshot!(f.redact(&status));
}

#[test]
fn publish_after_a_sync_rewrites_nothing_and_a_new_base_url_only_the_config() {
    let f = MirrorFixture::new();
    assert!(sync(&f).is_clean());

    let report = mirror_sync::republish(f.dest(), &PublishOptions::default()).unwrap();
    // Four index files (alpha, beta, c, gamma-utils), every version in them verified.
    assert_eq!(
        (report.files_read, report.files, report.versions),
        (4, 4, 6)
    );
    assert_eq!(
        (report.written, report.unchanged, report.removed),
        (0, 4, 0)
    );
    assert!(!report.config_written);
    for v in f.versions() {
        let name = mirror_index::CrateName::new(&v.name).unwrap();
        let file = f.dest().join("index").join(mirror_index::index_path(&name));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.lines().any(|line| line == v.line()),
            "{}",
            file.display()
        );
    }
    insta::assert_json_snapshot!("publish_again", f.redact(&report));

    let mut options = PublishOptions::default();
    options.base_url = Some("https://mirror.example.org/cargo".to_owned());
    let report = mirror_sync::republish(f.dest(), &options).unwrap();
    assert!(report.config_written);
    assert_eq!((report.written, report.unchanged), (0, 4));
    let config = std::fs::read_to_string(f.dest().join("index/config.json")).unwrap();
    assert!(
        config.contains("https://mirror.example.org/cargo/crates/"),
        "{config}"
    );
    insta::assert_json_snapshot!("publish_new_base_url", f.redact(&report));
}
