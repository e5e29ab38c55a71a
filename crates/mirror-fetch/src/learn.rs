//! Learning a CDN template from a download-API redirect.
//!
//! A registry whose `dl` has no markers serves `{dl}/{crate}/{version}/download` from an API that
//! counts downloads, is strictly rate limited, and redirects to a CDN. From one redirect we derive
//! the CDN's template by putting the markers back where the name, version and checksum appear in
//! the `Location`, and accept it only when nothing is ambiguous and it reproduces that `Location`
//! exactly. No registry host is written in code: the template comes from the registry itself.

use mirror_index::{Checksum, CrateName, DlTemplate, Version};
use reqwest::Url;

/// Characters that may stand next to a name or version in a path: a name or version is only
/// replaced where it stands alone between them, never in the middle of a word.
fn is_delimiter(b: u8) -> bool {
    matches!(b, b'/' | b'-' | b'.' | b'_' | b'~' | b'=')
}

/// The CDN template that `location` (where the API redirected the download of `name` `vers`)
/// follows, or why it cannot be told from this one redirect.
///
/// Refused: schemes other than `http` / `https`; a query or fragment (typically a per-file
/// signature); a name or version in the host or port; a name that also appears in `api` (as
/// `crates` appears in `…/api/v1/crates`: the CDN path may use the same word, and one sample cannot
/// tell which occurrence is which) or is the file extension (crate `crate`, file `….crate`); a
/// name or version that appears other than as a whole word;
/// no name and version (or checksum) at all; and a template that does not expand back to
/// `location` exactly.
pub(crate) fn derive_template(
    location: &Url,
    api: &DlTemplate,
    name: &CrateName,
    vers: &Version,
    cksum: &Checksum,
) -> Result<DlTemplate, &'static str> {
    if !matches!(location.scheme(), "http" | "https") {
        return Err("the redirect is not to http or https");
    }
    if location.query().is_some() || location.fragment().is_some() {
        return Err("the redirect has a query or fragment");
    }
    let full = location.as_str();
    // Without query and fragment the serialisation ends with the path.
    let path_start = full.len() - location.path().len();
    let (head, path) = full.split_at(path_start);

    let name_str = name.as_str();
    let name_lower = name.to_lowercase();
    let vers_enc = vers.url_encoded();
    let cksum_hex = cksum.to_string();
    if head.to_ascii_lowercase().contains(&name_lower) || head.contains(&vers_enc) {
        return Err("the name or version appears in the host");
    }
    let api_words = format!("{api}/download").to_ascii_lowercase();
    if api_words.contains(&name_lower) {
        return Err("the name is also a word of the download API URL");
    }
    let extension = path
        .rsplit('/')
        .next()
        .and_then(|file| file.rsplit_once('.'));
    if extension.is_some_and(|(_, ext)| ext.eq_ignore_ascii_case(name_str)) {
        return Err("the name is also the file extension");
    }
    if vers.as_str().contains('+') && path.contains(vers.as_str()) {
        return Err("the redirect has a literal '+' in the version");
    }

    // Longest first, so that a name that is a prefix of the version (or the reverse) is not
    // replaced inside it.
    let mut markers = [
        (cksum_hex.as_str(), "{sha256-checksum}"),
        (vers_enc.as_str(), "{version}"),
        (name_str, "{crate}"),
    ];
    markers.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));

    let bytes = path.as_bytes();
    let mut template = String::with_capacity(full.len());
    template.push_str(head);
    let mut replaced = [0usize; 3];
    let mut i = 0;
    while i < bytes.len() {
        let delimited_before = i == 0 || is_delimiter(bytes[i - 1]);
        let found = delimited_before
            .then(|| {
                markers.iter().position(|(text, _)| {
                    let end = i + text.len();
                    path[i..].starts_with(text) && (end == bytes.len() || is_delimiter(bytes[end]))
                })
            })
            .flatten();
        match found {
            Some(m) => {
                template.push_str(markers[m].1);
                replaced[m] += 1;
                i += markers[m].0.len();
            }
            None => {
                // Paths of a parsed URL are ASCII (anything else is percent-encoded).
                template.push(char::from(bytes[i]));
                i += 1;
            }
        }
    }

    let count = |m: &str| {
        markers
            .iter()
            .zip(replaced)
            .find(|((_, marker), _)| *marker == m)
            .map_or(0, |(_, n)| n)
    };
    // Every occurrence must have been replaced; one left inside a word makes the sample ambiguous.
    if path.to_ascii_lowercase().matches(&name_lower).count() != count("{crate}")
        || path.matches(&vers_enc).count() != count("{version}")
    {
        return Err("the name or version appears inside another word");
    }
    let keyed = count("{crate}") > 0 && count("{version}") > 0;
    if !keyed && count("{sha256-checksum}") == 0 {
        return Err("the redirect does not name the crate and version");
    }
    let template = DlTemplate::new(&template).map_err(|_| "the derived template is invalid")?;
    if template.expand(name, vers, cksum) != full {
        return Err("the derived template does not reproduce the redirect");
    }
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Derives a template from `location` for `name` `vers`, with the API at `http://h/api/v1/crates`.
    fn check(name: &str, vers: &str, location: &str) -> Result<String, &'static str> {
        let api = DlTemplate::new("http://h/api/v1/crates").expect("valid template");
        let name: CrateName = name.parse().expect("valid name");
        let vers: Version = vers.parse().expect("valid version");
        let cksum = Checksum::from_bytes([0xab; 32]);
        let location = Url::parse(location).expect("valid URL");
        derive_template(&location, &api, &name, &vers, &cksum).map(|t| t.to_string())
    }

    #[test]
    fn templates_are_derived_from_redirects() {
        let cdn = "http://cdn:8080/crates/{crate}/{crate}-{version}.crate";
        assert_eq!(
            check("Foo", "1.0.0", "http://cdn:8080/crates/Foo/Foo-1.0.0.crate"),
            Ok(cdn.into())
        );
        assert_eq!(
            check(
                "serde_json",
                "1.0.0+wasi-0.2",
                "http://cdn:8080/crates/serde_json/serde_json-1.0.0%2Bwasi-0.2.crate"
            ),
            Ok(cdn.into())
        );
        assert_eq!(
            check("z", "0.1.0", "https://h.example/z/files/z/z-0.1.0.crate"),
            Ok("https://h.example/{crate}/files/{crate}/{crate}-{version}.crate".into())
        );
        assert_eq!(
            check(
                "x",
                "2.0.0",
                &format!("https://cdn/by-sum/{}", "ab".repeat(32))
            ),
            Ok("https://cdn/by-sum/{sha256-checksum}".into())
        );
    }

    #[test]
    fn ambiguous_or_unsafe_redirects_are_refused() {
        for (name, vers, location) in [
            // The name is a word of the API URL, and may be one of the CDN's too.
            (
                "crates",
                "1.0.0",
                "http://cdn/crates/crates/crates-1.0.0.crate",
            ),
            // The name is a word of the host.
            ("cdn", "1.0.0", "http://cdn/crates/cdn/cdn-1.0.0.crate"),
            // The version is part of the host.
            (
                "foo",
                "0.0.1",
                "http://127.0.0.1/crates/foo/foo-0.0.1.crate",
            ),
            // The name is the file extension.
            ("crate", "1.0.0", "http://cdn/f/crate/crate-1.0.0.crate"),
            // The name inside another word: `/fi/files/` could be `/{crate}/{crate}les/`.
            ("fi", "1.0.0", "http://cdn/fi/files/fi/fi-1.0.0.crate"),
            ("foo", "1.0.0", "http://cdn/foo/foo-1.0.0.crate?sig=1"),
            ("foo", "1.0.0", "ftp://cdn/foo/foo-1.0.0.crate"),
            ("foo", "1.0.0", "http://cdn/blob/42"),
            ("foo", "1.0.0", "http://cdn/foo/latest.crate"),
            ("foo", "1.0.0+a", "http://cdn/foo/foo-1.0.0+a.crate"),
        ] {
            assert!(check(name, vers, location).is_err(), "{location}");
        }
    }
}
