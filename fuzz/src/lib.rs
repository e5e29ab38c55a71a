//! Oracles shared by the fuzz targets: what must hold of every index line, index file, `dl`
//! template and state record the libraries accept, whatever bytes they were made from.
//!
//! Each check panics with the offending value when it fails; libFuzzer turns the panic into a
//! crash artifact. The targets in `fuzz_targets/` only split the fuzzer's bytes into arguments.

use std::path::{Component, Path};
use std::sync::OnceLock;

use mirror_index::{
    Checksum, CrateName, DlTemplate, IndexEntry, IndexFile, Version, index_path, index_prefix,
};
use mirror_store::Store;

/// What the cheap view of a line holds: name, version, checksum (lowercase hex) and yanked.
pub type Fields = (String, String, String, bool);

/// The reference reading of an index line: serde_json with the four fields of the cheap view and
/// everything else ignored.
#[derive(serde::Deserialize)]
struct Reference {
    name: String,
    vers: String,
    cksum: String,
    #[serde(default)]
    yanked: Option<bool>,
}

/// What serde_json makes of `line`, held to the same rules as `IndexEntry::parse`. This is the
/// oracle of the differential proptest in `crates/mirror-index/tests/it/lines.rs`, plus the length
/// limit (which the proptest's short lines never reach).
pub fn reference(line: &[u8]) -> Option<Fields> {
    if line.len() > mirror_index::MAX_LINE_LEN {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    // serde_json also takes an array for a struct; an index line is always an object.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let r: Reference = serde_json::from_str(text).ok()?;
    CrateName::new(&r.name).ok()?;
    Version::new(&r.vers).ok()?;
    let sum = Checksum::from_hex(&r.cksum).ok()?;
    Some((r.name, r.vers, sum.to_string(), r.yanked.unwrap_or(false)))
}

/// The cheap view of an entry in the reference's shape.
pub fn fields(entry: &IndexEntry) -> Fields {
    (
        entry.name().to_string(),
        entry.vers().to_string(),
        entry.cksum().to_string(),
        entry.yanked(),
    )
}

/// Everything that must hold of an entry the scanner accepted.
pub fn check_entry(entry: &IndexEntry) {
    let (name, vers) = (entry.name(), entry.vers());
    let name_again = CrateName::new(name.as_str()).expect("an accepted name is valid again");
    assert_eq!(&name_again, name);
    let vers_again = Version::new(vers.as_str()).expect("an accepted version is valid again");
    assert_eq!(vers_again.as_str(), vers.as_str());
    assert_eq!(
        Checksum::from_hex(&entry.cksum().to_string()).ok(),
        Some(*entry.cksum()),
        "checksum does not round-trip through hex"
    );
    // The full schema need not parse (a line may have `deps` of the wrong shape and still be a
    // valid cheap view), but when it does it must read the same four fields.
    if let Ok(record) = entry.record() {
        assert_eq!(record.name, name.as_str(), "record() reads another name");
        assert_eq!(record.vers, vers.as_str(), "record() reads another version");
        assert_eq!(
            Checksum::from_hex(&record.cksum).ok(),
            Some(*entry.cksum()),
            "record() reads another checksum"
        );
        assert_eq!(
            record.yanked,
            entry.yanked(),
            "record() reads another yanked"
        );
    }
    check_index_path(name);
    check_crate_path(name, vers);
}

/// A path component that is safe on every platform we care about: not empty, not `.` or `..`, no
/// separator of either kind, no NUL or other control character.
fn assert_plain_component(part: &str, whole: &str) {
    assert!(
        !part.is_empty()
            && part != "."
            && part != ".."
            && !part.contains(['/', '\\'])
            && !part.chars().any(|c| c.is_control()),
        "unsafe component {part:?} in {whole:?}"
    );
}

/// The index path is relative, lowercase, made of plain components, and ends with the name.
fn check_index_path(name: &CrateName) {
    let path = index_path(name);
    assert!(!path.starts_with('/'), "index path {path:?} is absolute");
    assert!(!path.contains(".."), "index path {path:?} holds '..'");
    for part in path.split('/') {
        assert_plain_component(part, &path);
    }
    assert_eq!(
        path,
        path.to_ascii_lowercase(),
        "index path is not lowercase"
    );
    assert_eq!(
        path,
        format!(
            "{}/{}",
            index_prefix(name).to_lowercase(),
            name.to_lowercase()
        )
    );
}

/// A store to ask for crate paths. `Store::open` creates its directories, so it lives in one fixed
/// place under the temp dir, made once per process and reused by every run.
fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        Store::open(&std::env::temp_dir().join("mirror-fuzz-store")).expect("opening a temp store")
    })
}

/// The crate file's path is `crates/{lowerprefix}/{name}/{name}-{vers}.crate`, relative, of
/// plain components only.
fn check_crate_path(name: &CrateName, vers: &Version) {
    let rel = store().relative_crate_path(name, vers);
    let whole = rel.to_str().expect("a crate path is UTF-8");
    assert!(rel.is_relative(), "crate path {whole:?} is absolute");
    assert!(!whole.contains(".."), "crate path {whole:?} holds '..'");
    assert!(!whole.contains(['\\', '\0']), "crate path {whole:?}");
    // `components()` drops inner `.` components, so count the parts of the string as well.
    let parts: Vec<&str> = whole.split('/').collect();
    let components: Vec<&str> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str().expect("UTF-8"),
            other => panic!("component {other:?} in crate path {whole:?}"),
        })
        .collect();
    assert_eq!(parts, components, "crate path {whole:?} is not plain");
    for part in &parts {
        assert_plain_component(part, whole);
    }
    let n = parts.len();
    assert!(n >= 4, "crate path {whole:?} is too short");
    assert_eq!(parts[0], "crates");
    assert_eq!(parts[1..n - 2].join("/"), index_prefix(name).to_lowercase());
    assert_eq!(parts[n - 2], name.as_str());
    assert_eq!(parts[n - 1], format!("{name}-{vers}.crate"));
    let absolute = store().crate_path(name, vers);
    assert!(absolute.starts_with(store().crates_dir()));
    assert_eq!(
        absolute.strip_prefix(store().root()).ok(),
        Some(Path::new(whole))
    );
}

/// Everything that must hold of a parsed index file, given the bytes it was parsed from.
pub fn check_file(path: &str, data: &[u8], file: &IndexFile) {
    assert_eq!(file.path, path);
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let mut entries = file.entries.iter().peekable();
    let mut problems = file.problems.iter().peekable();
    for problem in &file.problems {
        assert_eq!(problem.file, path);
        assert!(
            (1..=lines.len()).contains(&problem.line),
            "problem on line {} of a file of {} lines",
            problem.line,
            lines.len()
        );
    }
    // Walk the lines: every non-blank line is either the next entry (its raw bytes exactly) or
    // the next problem (its line number), never both, and nothing is left over.
    for (i, line) in lines.iter().enumerate() {
        let is_problem = problems.peek().is_some_and(|p| p.line == i + 1);
        if is_problem {
            problems.next();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            assert!(!is_problem, "blank line {} reported", i + 1);
            continue;
        }
        if !is_problem {
            let entry = entries
                .next()
                .unwrap_or_else(|| panic!("line {} is neither an entry nor a problem", i + 1));
            assert_eq!(
                entry.raw(),
                *line,
                "entry for line {} has other bytes",
                i + 1
            );
        }
    }
    assert!(
        entries.next().is_none(),
        "entries left over after the last line"
    );
    assert!(
        problems.next().is_none(),
        "problems out of order or beyond the last line"
    );

    // A file at a proper index path holds only its own crate, once per version.
    let own = path
        .rsplit_once('/')
        .and_then(|(_, last)| CrateName::new(last).ok())
        .filter(|n| index_path(n) == path);
    let mut seen = std::collections::HashSet::new();
    for entry in &file.entries {
        check_entry(entry);
        if let Some(own) = &own {
            assert_eq!(entry.name().to_lowercase(), own.to_lowercase());
        }
        assert!(
            seen.insert((entry.name().to_lowercase(), entry.vers().to_string())),
            "{} {} appears twice",
            entry.name(),
            entry.vers()
        );
    }
}

/// Everything that must hold of a template `DlTemplate::new` accepted, and of its expansion.
pub fn check_template(
    raw: &str,
    template: &DlTemplate,
    name: &CrateName,
    vers: &Version,
    cksum: &Checksum,
) {
    assert_eq!(template.as_str(), raw);
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let scheme = if lower.starts_with("https://") {
        &raw[..8]
    } else if lower.starts_with("http://") {
        &raw[..7]
    } else {
        panic!("accepted a template that is not http(s): {raw:?}")
    };
    let bad = |c: char| c.is_ascii_control() || c.is_whitespace();
    assert!(
        !raw.chars().any(bad),
        "accepted whitespace or a control character: {raw:?}"
    );
    let url = template.expand(name, vers, cksum);
    assert!(
        url.starts_with(scheme),
        "{raw:?} expands to {url:?}, which does not start with {scheme:?}"
    );
    assert!(!url.chars().any(bad), "{raw:?} expands to {url:?}");
    // The version's `+` is sent as `%2B`, and nothing else brings a `+`: every `+` in the URL
    // comes from the template.
    assert_eq!(
        url.matches('+').count(),
        raw.matches('+').count(),
        "{raw:?} -> {url:?}"
    );
    if !template.has_markers() {
        let expected = format!(
            "{}/{}/{}/download",
            raw.trim_end_matches('/'),
            name,
            vers.url_encoded()
        );
        assert_eq!(url, expected);
    }
}
