//! Snapshot tests of index-line parsing over edge cases and hostile lines.

use mirror_index::{IndexEntry, IndexFile};

/// Renders how every line of `data` parses, one line of output per input line.
fn render(path: &str, data: &[u8]) -> String {
    let file = IndexFile::parse(path, data);
    let mut out = String::new();
    for entry in &file.entries {
        out.push_str(&format!(
            "ok   {} {} {} yanked={}\n",
            entry.name(),
            entry.vers(),
            entry.cksum(),
            entry.yanked()
        ));
    }
    for problem in &file.problems {
        out.push_str(&format!("skip {problem}\n"));
    }
    out
}

#[test]
fn edge_cases() {
    let data = include_bytes!("data/edge-cases.jsonl");
    // Parsed with a path that is not an index path, so the wrong-file check stays out of the way.
    insta::assert_snapshot!(render("edge-cases.jsonl", data));
}

#[test]
fn raw_bytes_are_kept_exactly() {
    let data = include_bytes!("data/edge-cases.jsonl");
    let file = IndexFile::parse("edge-cases.jsonl", data);
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    for entry in &file.entries {
        assert!(lines.contains(&entry.raw()), "{entry:?} raw bytes changed");
    }
    // The escaped name is decoded for the name but left alone in the raw line.
    let escaped = file
        .entries
        .iter()
        .find(|e| e.name().as_str() == "escaped-name")
        .unwrap();
    assert!(escaped.raw().windows(6).any(|w| w == br"\u002d"));
}

#[test]
fn full_record_has_every_field() {
    let data = include_bytes!("data/edge-cases.jsonl");
    let file = IndexFile::parse("edge-cases.jsonl", data);
    let v2 = file
        .entries
        .iter()
        .find(|e| e.name().as_str() == "v2feat")
        .unwrap();
    insta::assert_debug_snapshot!(v2.record().unwrap());
}

#[test]
fn lines_in_the_wrong_file_are_skipped() {
    let line = br#"{"name":"other","vers":"1.0.0","deps":[],"cksum":"0000000000000000000000000000000000000000000000000000000000000001","features":{}}"#;
    let file = IndexFile::parse("se/rd/serde", line);
    assert!(file.entries.is_empty());
    assert_eq!(
        file.problems[0].to_string(),
        r#"se/rd/serde:1: crate "other" does not belong in this index file"#
    );
    // The right file, in any case of the name, is fine.
    let line = br#"{"name":"SeRde","vers":"1.0.0","deps":[],"cksum":"0000000000000000000000000000000000000000000000000000000000000001","features":{}}"#;
    assert_eq!(IndexFile::parse("se/rd/serde", line).entries.len(), 1);
}

#[test]
fn duplicate_versions_keep_the_first_line() {
    let a = r#"{"name":"ab","vers":"1.0.0","deps":[],"cksum":"0000000000000000000000000000000000000000000000000000000000000001","features":{}}"#;
    let b = r#"{"name":"ab","vers":"1.0.0","deps":[],"cksum":"0000000000000000000000000000000000000000000000000000000000000002","features":{}}"#;
    let file = IndexFile::parse("2/ab", format!("{a}\n{b}\n").as_bytes());
    assert_eq!(file.entries.len(), 1);
    assert_eq!(file.entries[0].raw(), a.as_bytes());
    assert_eq!(file.problems[0].line, 2);
}

#[test]
fn huge_lines_are_refused_without_parsing() {
    let mut line = br#"{"name":"big","vers":"1.0.0","deps":[],"cksum":"0000000000000000000000000000000000000000000000000000000000000001","features":{},"x":""#.to_vec();
    line.resize(mirror_index::MAX_LINE_LEN + 10, b'a');
    line.extend_from_slice(b"\"}");
    let err = IndexEntry::parse(&line).unwrap_err();
    assert_eq!(err, mirror_index::LineErrorKind::TooLong(line.len()));
}

#[test]
fn crlf_line_endings_parse_and_keep_their_bytes() {
    let line = "{\"name\":\"ab\",\"vers\":\"1.0.0\",\"deps\":[],\"cksum\":\"0000000000000000000000000000000000000000000000000000000000000001\",\"features\":{}}\r";
    let file = IndexFile::parse("2/ab", format!("{line}\n").as_bytes());
    assert_eq!(file.entries[0].raw(), line.as_bytes());
}

/// The reference for the cheap view: serde_json with the four fields and everything else ignored.
#[derive(serde::Deserialize)]
struct Reference {
    name: String,
    vers: String,
    cksum: String,
    #[serde(default)]
    yanked: Option<bool>,
}

/// What serde_json makes of a line, held to the same rules as `IndexEntry::parse`.
fn reference(line: &[u8]) -> Option<(String, String, String, bool)> {
    let text = std::str::from_utf8(line).ok()?;
    // serde_json also takes an array for a struct; an index line is always an object.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let r: Reference = serde_json::from_str(text).ok()?;
    mirror_index::CrateName::new(&r.name).ok()?;
    mirror_index::Version::new(&r.vers).ok()?;
    let sum = mirror_index::Checksum::from_hex(&r.cksum).ok()?;
    Some((r.name, r.vers, sum.to_string(), r.yanked.unwrap_or(false)))
}

fn ours(line: &[u8]) -> Option<(String, String, String, bool)> {
    let e = IndexEntry::parse(line).ok()?;
    Some((
        e.name().to_string(),
        e.vers().to_string(),
        e.cksum().to_string(),
        e.yanked(),
    ))
}

const SEED_LINE: &str = r#"{"name":"se\u0072de","vers":"1.0.0-rc.1+b","deps":[{"name":"x","req":"^1.2","features":["a\"b","\ud83d\ude00"],"optional":false,"default_features":true,"target":null,"kind":"normal","n":-1.5e+3}],"cksum":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","features":{"std":[],"e":[0,1.0,-0,2E5]},"yanked":true,"v":2}"#;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
    /// The hand-written scanner accepts and rejects exactly what serde_json does, and reads the
    /// same values, on lines mutated from a valid one.
    #[test]
    fn scanner_agrees_with_serde_json(
        edits in proptest::collection::vec((0usize..SEED_LINE.len(), 0usize..3, proptest::sample::select(b"{}[],:\"\\ 0-1.eEtfnu\x01\xffabz".to_vec())), 0..4)
    ) {
        let mut line = SEED_LINE.as_bytes().to_vec();
        for (at, op, byte) in edits {
            let at = at.min(line.len().saturating_sub(1));
            match op {
                0 => line[at] = byte,
                1 => line.insert(at, byte),
                _ => { line.remove(at); }
            }
        }
        proptest::prop_assert_eq!(ours(&line), reference(&line), "line {}", String::from_utf8_lossy(&line));
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!(
        r#"{{"name":"a","vers":"1.0.0","cksum":"{}","x":{}{}}}"#,
        "0".repeat(64),
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = IndexEntry::parse(deep.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("nesting too deep"), "{err}");
}
