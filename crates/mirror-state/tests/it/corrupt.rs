//! Corrupt data on disk gives errors naming the key, never a panic.

use mirror_state::{
    Error, MAX_KIND_LEN, MAX_MESSAGE_LEN, Record, Status, decode_record, encode_record,
};

use crate::{ck, name, open, proof, raw_db, vers};

#[test]
fn corrupt_records_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    state
        .mark_verified(&name("good"), &vers("1.0.0"), &proof(1, 1))
        .unwrap();
    state.tombstone(&name("gone"), None, 1).unwrap();
    drop(state);
    {
        let db = raw_db(dir.path());
        let records = db.open_tree("records").unwrap();
        records
            .insert("serde\x001.0.0", &b"\xff\x00garbage"[..])
            .unwrap();
        records.insert("nonul", encode_record(&verified())).unwrap();
        records
            .insert("a\x00not-semver", encode_record(&verified()))
            .unwrap();
        db.open_tree("tombstones")
            .unwrap()
            .insert("gone\x00", &b"\x01\x02"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let state = open(dir.path());
    let err = state.get(&name("serde"), &vers("1.0.0")).unwrap_err();
    assert!(matches!(err, Error::CorruptRecord { .. }));
    assert_eq!(
        err.to_string(),
        "corrupt state record serde 1.0.0: unknown record encoding version 255"
    );

    // Iteration reports each bad record and goes on.
    let results: Vec<String> = state
        .iter()
        .map(|r| match r {
            Ok((n, v, _)) => format!("ok {n} {v}"),
            Err(e) => e.to_string(),
        })
        .collect();
    assert_eq!(results.len(), 4, "{results:#?}");
    assert!(
        results[0].starts_with("corrupt state record a not-semver: "),
        "{results:#?}"
    );
    assert_eq!(results[1], "ok good 1.0.0");
    assert_eq!(
        results[2],
        "corrupt state record nonul: key has no NUL separator"
    );
    assert!(results[3].starts_with("corrupt state record serde 1.0.0"));

    assert!(state.counts().is_err());
    assert_eq!(
        state.tombstones().next().unwrap().unwrap_err().to_string(),
        "corrupt state record gone: tombstone: value ends early: needed 8 more bytes, 1 left"
    );
    // A failure over a corrupt record starts afresh rather than failing.
    let r = state
        .mark_failed(&name("serde"), &vers("1.0.0"), ck(3), "x", "y")
        .unwrap();
    assert!(matches!(r.status, Status::Failed { attempts: 1, .. }));
}

fn verified() -> Record {
    Record {
        cksum: ck(9),
        size: 3,
        status: Status::Verified { at: 3 },
    }
}

/// Every truncation and every single-byte change of valid encodings decodes or errs; none panics.
#[test]
fn decoding_mangled_bytes_never_panics() {
    let failed = Record {
        cksum: ck(5),
        size: 99,
        status: Status::Failed {
            kind: "not_found".into(),
            message: "gone é".into(),
            attempts: 3,
            last_attempt: 4,
        },
    };
    let key = b"k\x001.0.0";
    for record in [verified(), failed] {
        let bytes = encode_record(&record);
        for len in 0..bytes.len() {
            assert!(
                decode_record(key, &bytes[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_record(key, &longer).is_err());
        for i in 0..bytes.len() {
            for value in [0, 1, 0x7f, 0x80, 0xff] {
                let mut mangled = bytes.clone();
                mangled[i] = value;
                let _ = decode_record(key, &mangled);
            }
        }
    }
    for key in [
        &b""[..],
        b"\x00",
        b"\xff\x00\xff",
        b"a\x00\x00",
        b"a\x001.0.0\x00",
    ] {
        assert!(
            decode_record(key, &encode_record(&verified())).is_err(),
            "{key:?}"
        );
    }
}

/// Found by `cargo xtask fuzz` (target `state_record`): a `kind` or `message` longer than the
/// encoder ever writes decoded, and re-encoding the record cut it, so the record did not
/// round-trip. Such a value is corrupt.
#[test]
fn texts_longer_than_the_encoder_writes_are_corrupt() {
    let failed = |kind: &str, message: &str| Record {
        cksum: ck(5),
        size: 1,
        status: Status::Failed {
            kind: kind.into(),
            message: message.into(),
            attempts: 3,
            last_attempt: 4,
        },
    };
    let key = b"k\x001.0.0";
    let kind = "k".repeat(MAX_KIND_LEN);
    let message = "m".repeat(MAX_MESSAGE_LEN);
    // The longest texts the encoder writes decode, and round-trip.
    let longest = failed(&kind, &message);
    let bytes = encode_record(&longest);
    assert_eq!(decode_record(key, &bytes).unwrap().2, longest);

    // Layout after the tag: u32 attempts, u64 last_attempt, u8 kind length, kind, u16 message
    // length, message.
    let kind_len_at = 1 + 32 + 8 + 1 + 4 + 8;
    let mut long_kind = bytes.clone();
    long_kind[kind_len_at] += 1;
    long_kind.insert(kind_len_at + 1, b'k');
    let err = decode_record(key, &long_kind).unwrap_err().to_string();
    assert!(err.ends_with("kind is 65 bytes, more than 64"), "{err}");

    let message_len_at = kind_len_at + 1 + MAX_KIND_LEN;
    let mut long_message = bytes;
    long_message[message_len_at..message_len_at + 2]
        .copy_from_slice(&u16::try_from(MAX_MESSAGE_LEN + 1).unwrap().to_le_bytes());
    long_message.push(b'm');
    let err = decode_record(key, &long_message).unwrap_err().to_string();
    assert!(
        err.ends_with("message is 4097 bytes, more than 4096"),
        "{err}"
    );
}
