//! Request paths: which file under the mirror root a URL path names, if any.
//!
//! Only the exact shapes cargo asks for are accepted: `/index/config.json`, `/index/{index path of
//! a valid lowercase crate name}` and `/crates/{lowerprefix}/{name}/{name}-{valid version}.crate`.
//! Everything else (`..`, `.`, dot-files such as `.mirror`, backslashes, NUL, encoded slashes,
//! empty segments, unknown files) names nothing, so no such path ever reaches the file system.

use mirror_index::{CrateName, index_path};

/// A file a request may name, as a `/`-separated path relative to the mirror root.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `index/config.json`, served rewritten.
    Config,
    /// A sparse index file, such as `index/se/rd/serde`.
    Index(String),
    /// A crate file, such as `crates/se/rd/Serde/Serde-1.0.0+build.1.crate`.
    Crate(String),
}

impl Target {
    /// The file's path relative to the mirror root.
    pub(crate) fn relative(&self) -> &str {
        match self {
            Target::Config => "index/config.json",
            Target::Index(rel) | Target::Crate(rel) => rel,
        }
    }
}

/// The file a URL path (as sent, still percent-encoded) names, or `None`.
///
/// `+` is literal (URL paths are not form data), and `%XX` is decoded once per segment, so `%2B`
/// is `+` too. A decoded segment may hold only ASCII letters, digits, `-`, `_`, `.` and `+`, and may
/// not start with `.`: that alone rules out traversal, encoded slashes and dot-files, before the
/// shape check below makes sure the path is one cargo could ask for.
pub(crate) fn parse(raw: &str) -> Option<Target> {
    let rest = raw.strip_prefix('/')?;
    let segments = rest
        .split('/')
        .map(decode)
        .collect::<Option<Vec<String>>>()?;
    if !segments.iter().all(|s| is_safe_segment(s)) {
        return None;
    }
    match segments.split_first()? {
        (root, tail) if root == "index" => index(tail),
        (root, tail) if root == "crates" => krate(tail),
        _ => None,
    }
}

fn index(tail: &[String]) -> Option<Target> {
    if let [file] = tail
        && file == "config.json"
    {
        return Some(Target::Config);
    }
    let name = CrateName::new(tail.last()?).ok()?;
    let joined = tail.join("/");
    // Index paths are all lowercase, so a request in any other case names nothing.
    (index_path(&name) == joined).then(|| Target::Index(format!("index/{joined}")))
}

fn krate(tail: &[String]) -> Option<Target> {
    // The store's own rule for where a crate file lives, read backwards.
    mirror_store::parse_crate_path(tail)?;
    Some(Target::Crate(format!("crates/{}", tail.join("/"))))
}

/// Percent-decodes one path segment; `None` for a malformed escape or bytes that are not UTF-8.
fn decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn is_safe_segment(segment: &str) -> bool {
    !segment.is_empty()
        && !segment.starts_with('.')
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
}

#[cfg(test)]
mod tests {
    use super::{Target, parse};

    #[track_caller]
    fn check(raw: &str, expect: Option<&str>) {
        let got = parse(raw);
        assert_eq!(got.as_ref().map(Target::relative), expect, "{raw}");
    }

    #[test]
    fn accepts_the_shapes_cargo_asks_for() {
        check("/index/config.json", Some("index/config.json"));
        check("/index/1/a", Some("index/1/a"));
        check("/index/2/ab", Some("index/2/ab"));
        check("/index/3/a/abc", Some("index/3/a/abc"));
        check("/index/se/rd/serde_json", Some("index/se/rd/serde_json"));
        check(
            "/crates/1/a/a-0.1.0.crate",
            Some("crates/1/a/a-0.1.0.crate"),
        );
        check(
            "/crates/se/rd/Serde/Serde-1.0.0-rc.1+x.crate",
            Some("crates/se/rd/Serde/Serde-1.0.0-rc.1+x.crate"),
        );
        check(
            "/crates/fo/o-/foo-bar/foo-bar-1.0.0%2Bbuild.1.crate",
            Some("crates/fo/o-/foo-bar/foo-bar-1.0.0+build.1.crate"),
        );
        check(
            "/crates/fo/o-/foo-bar/foo-bar-1.0.0%2bbuild.1.crate",
            Some("crates/fo/o-/foo-bar/foo-bar-1.0.0+build.1.crate"),
        );
        check("/index/se/rd/%73erde", Some("index/se/rd/serde"));
    }

    #[test]
    fn rejects_everything_else() {
        for raw in [
            "",
            "/",
            "index/1/a",
            "/index",
            "/index/",
            "/index/1/a/",
            "/index//1/a",
            "/index/config.json/",
            "/index/1/b/a",
            "/index/1/A",
            "/index/Se/rd/serde",
            "/index/se/rd/Serde",
            "/index/3/a/abcd",
            "/index/ab/cd/abcd.tmp",
            "/index/../.mirror/state",
            "/index/%2e%2e/%2e%2e/secret",
            "/index/..%2F..%2Fsecret",
            "/index/se%2Frd/serde",
            "/index/se\\rd\\serde",
            "/index/1/a%00",
            "/index/1/%61%",
            "/index/1/%zz",
            "/index/1/%ff",
            "/index/./1/a",
            "/index/.mirror",
            "/.mirror/state",
            "/crates/../.mirror/state",
            "/crates/.mirror/state",
            "/crates/1/a/.a-0.1.0.crate",
            "/crates/1/a/a-0.1.0.crate.part",
            "/crates/1/a/a-0.1.crate",
            "/crates/1/a/a-.crate",
            "/crates/1/a/b-0.1.0.crate",
            "/crates/SE/RD/Serde/Serde-1.0.0.crate",
            "/crates/se/rd/serde/Serde-1.0.0.crate",
            "/crates/se/rd/Serde/Serde-1.0.0 x.crate",
            "/crates/se/rd/Serde/Serde-1.0.0%20x.crate",
            "/crates/a-0.1.0.crate",
            "//etc/passwd",
            "/etc/passwd",
        ] {
            check(raw, None);
        }
    }
}
