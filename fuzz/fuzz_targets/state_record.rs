//! `decode_record` on an arbitrary key and value: never panics, and whatever it accepts encodes
//! back to the same bytes and decodes to the same record.
//!
//! Input: one byte giving the key's length, the key, then the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror_state::{decode_record, encode_record};

fuzz_target!(|input: &[u8]| {
    let Some((&len, rest)) = input.split_first() else {
        return;
    };
    let (key, value) = rest.split_at(usize::from(len).min(rest.len()));
    let Ok((name, vers, record)) = decode_record(key, value) else {
        return;
    };
    let mut canonical_key = name.as_str().as_bytes().to_vec();
    canonical_key.push(0);
    canonical_key.extend_from_slice(vers.as_str().as_bytes());
    assert_eq!(key, canonical_key, "the key does not round-trip");
    let encoded = encode_record(&record);
    let (name2, vers2, record2) =
        decode_record(key, &encoded).expect("a re-encoded record decodes");
    assert_eq!((name2, vers2.as_str()), (name, vers.as_str()));
    assert_eq!(record2, record, "the record does not round-trip");
    assert_eq!(encoded, value, "two encodings of one record");
});
