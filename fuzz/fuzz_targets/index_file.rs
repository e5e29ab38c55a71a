//! `IndexFile::parse` on an arbitrary path and arbitrary bytes: never panics, reports problems on
//! real line numbers, and keeps every entry's line byte for byte.
//!
//! Input: the path, a newline, then the file's bytes (no newline: an empty path).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror_index::IndexFile;

fuzz_target!(|input: &[u8]| {
    let (path, data) = match input.iter().position(|b| *b == b'\n') {
        Some(nl) => (&input[..nl], &input[nl + 1..]),
        None => (&[][..], input),
    };
    let path = String::from_utf8_lossy(path);
    let file = IndexFile::parse(&path, data);
    mirror_fuzz::check_file(&path, data, &file);
});
