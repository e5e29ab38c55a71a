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
