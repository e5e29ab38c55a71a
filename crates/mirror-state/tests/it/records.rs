//! Records: every status round-trips, failures count attempts, iteration order, batches.

use mirror_state::{Batch, Counts, Record, Status, decode_record, encode_record};

use crate::{ck, name, open, proof, sum, vers};

#[test]
fn every_status_roundtrips_through_the_database_and_the_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    let records = [
        Record {
            cksum: ck(1),
            size: 0,
            status: Status::Verified { at: 0 },
        },
        Record {
            cksum: ck(2),
            size: u64::MAX,
            status: Status::Verified { at: u64::MAX },
        },
        Record {
            cksum: ck(3),
            size: 17,
            status: Status::Failed {
                kind: "checksum_mismatch".into(),
                message: "expected ab…, got cd… — ünïcödé".into(),
                attempts: u32::MAX,
                last_attempt: 1_700_000_000,
            },
        },
        Record {
            cksum: ck(4),
            size: 0,
            status: Status::Failed {
                kind: String::new(),
                message: String::new(),
                attempts: 0,
                last_attempt: 0,
            },
        },
    ];
    let mut batch = Batch::new();
    for (i, record) in records.iter().enumerate() {
        let v = vers(&format!("{i}.0.0+build.{i}"));
        batch.put(&name("Mixed_Case-1"), &v, record);
        let key = format!("Mixed_Case-1\0{v}");
        let (_, back_v, back) = decode_record(key.as_bytes(), &encode_record(record)).unwrap();
        assert_eq!((&back_v, &back), (&v, record));
    }
    state.apply(batch).unwrap();
    for (i, record) in records.iter().enumerate() {
        let v = vers(&format!("{i}.0.0+build.{i}"));
        assert_eq!(
            state.get(&name("Mixed_Case-1"), &v).unwrap().as_ref(),
            Some(record)
        );
    }
    // Lookups are exact: another case is another key.
    assert_eq!(
        state
            .get(&name("mixed_case-1"), &vers("0.0.0+build.0"))
            .unwrap(),
        None
    );
}

#[test]
fn long_failure_texts_are_cut_at_a_char_boundary() {
    let record = Record {
        cksum: ck(1),
        size: 0,
        status: Status::Failed {
            kind: "é".repeat(100),
            message: "é".repeat(10_000),
            attempts: 1,
            last_attempt: 1,
        },
    };
    let (_, _, back) = decode_record(b"a\x001.0.0", &encode_record(&record)).unwrap();
    let Status::Failed { kind, message, .. } = back.status else {
        panic!("not failed: {back:?}")
    };
    assert_eq!(kind, "é".repeat(32));
    assert_eq!(message, "é".repeat(2048));
}

#[test]
fn mark_failed_counts_attempts_per_checksum_and_keeps_size() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    let (n, v) = (name("serde"), vers("1.0.0"));
    let attempts = |r: &Record| match r.status {
        Status::Failed { attempts, .. } => attempts,
        Status::Verified { .. } => 0,
    };

    let r = state
        .mark_failed(&n, &v, ck(1), "not_found", "404")
        .unwrap();
    assert_eq!((attempts(&r), r.size), (1, 0));
    let r = state
        .mark_failed(&n, &v, ck(1), "server_error", "503")
        .unwrap();
    assert_eq!((attempts(&r), r.size), (2, 0));
    assert_eq!(state.get(&n, &v).unwrap(), Some(r.clone()));
    let Status::Failed {
        kind,
        message,
        last_attempt,
        ..
    } = r.status
    else {
        unreachable!()
    };
    assert_eq!((kind.as_str(), message.as_str()), ("server_error", "503"));
    assert!(last_attempt > 1_600_000_000);

    // Re-published with another checksum: attempts start again.
    let r = state
        .mark_failed(&n, &v, sum(2, 4096), "not_found", "404")
        .unwrap();
    assert_eq!(attempts(&r), 1);

    // Verified, then found corrupt: size kept, attempts from 1.
    state.mark_verified(&n, &v, &proof(2, 4096)).unwrap();
    let got = state.get(&n, &v).unwrap().unwrap();
    assert!(got.is_verified());
    assert_eq!(got.size, 4096);
    let r = state
        .mark_failed(&n, &v, sum(2, 4096), "checksum_mismatch", "bad bytes")
        .unwrap();
    assert_eq!((attempts(&r), r.size), (1, 4096));

    // The same through a batch.
    let mut batch = Batch::new();
    batch.mark_failed(&n, &v, sum(2, 4096), "checksum_mismatch", "again");
    state.apply(batch).unwrap();
    let r = state.get(&n, &v).unwrap().unwrap();
    assert_eq!((attempts(&r), r.size), (2, 4096));

    assert!(state.remove(&n, &v).unwrap());
    assert!(!state.remove(&n, &v).unwrap());
    assert_eq!(state.get(&n, &v).unwrap(), None);
}

#[test]
fn iteration_is_in_key_order_and_iter_crate_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    let keys = [
        ("serde", "1.9.0"),
        ("serde_derive", "1.0.0"),
        ("serde", "1.10.0"),
        ("abc", "0.1.0"),
        ("Zed", "1.0.0"),
        ("serde-json", "1.0.0"),
        ("serde", "1.0.0+a"),
    ];
    let mut batch = Batch::new();
    for (n, v) in keys {
        batch.mark_verified(&name(n), &vers(v), &proof(1, 1));
    }
    state.apply(batch).unwrap();

    let all: Vec<String> = state
        .iter()
        .map(|r| {
            let (n, v, _) = r.unwrap();
            format!("{n} {v}")
        })
        .collect();
    // Name bytes first (uppercase before lowercase, NUL before '-' and '_'), then version
    // strings, not semver.
    assert_eq!(
        all,
        [
            "Zed 1.0.0",
            "abc 0.1.0",
            "serde 1.0.0+a",
            "serde 1.10.0",
            "serde 1.9.0",
            "serde-json 1.0.0",
            "serde_derive 1.0.0",
        ]
    );
    let serde: Vec<String> = state
        .iter_crate(&name("serde"))
        .map(|r| r.unwrap().1.to_string())
        .collect();
    assert_eq!(serde, ["1.0.0+a", "1.10.0", "1.9.0"]);
    assert_eq!(state.iter_crate(&name("ser")).count(), 0);
    assert_eq!(state.iter_crate(&name("SERDE")).count(), 0);
}

#[test]
fn counts_and_batch_last_op_wins() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    assert_eq!(state.counts().unwrap(), Counts::default());
    let mut batch = Batch::new();
    batch.mark_verified(&name("a"), &vers("1.0.0"), &proof(1, 100));
    batch.mark_verified(&name("a"), &vers("2.0.0"), &proof(1, 50));
    batch.mark_verified(&name("b"), &vers("1.0.0"), &proof(1, 7));
    batch.remove(&name("b"), &vers("1.0.0"));
    batch.mark_failed(&name("c"), &vers("1.0.0"), ck(1), "not_found", "404");
    assert_eq!(batch.len(), 5);
    state.apply(batch).unwrap();
    assert_eq!(
        state.counts().unwrap(),
        Counts {
            verified: 2,
            failed: 1,
            verified_bytes: 150
        }
    );
    state.apply(Batch::new()).unwrap();
}
