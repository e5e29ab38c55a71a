//! Property tests: index sharding and `dl` template expansion.

use mirror_index::{Checksum, CrateName, DlTemplate, Version, index_path, index_prefix};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = CrateName> {
    "[A-Za-z0-9_][A-Za-z0-9_-]{0,63}".prop_map(|s| CrateName::new(&s).unwrap())
}

fn version() -> impl Strategy<Value = Version> {
    (
        0u64..1000,
        0u64..1000,
        0u64..1000,
        proptest::option::of("[a-z0-9]{1,8}"),
        proptest::option::of("[a-zA-Z0-9]{1,8}"),
    )
        .prop_map(|(a, b, c, pre, build)| {
            let mut v = format!("{a}.{b}.{c}");
            if let Some(pre) = pre {
                v = format!("{v}-x{pre}");
            }
            if let Some(build) = build {
                v = format!("{v}+{build}");
            }
            Version::new(&v).unwrap()
        })
}

proptest! {
    #[test]
    fn sharding_follows_the_layout(name in name()) {
        let path = index_path(&name);
        let lower = name.to_lowercase();
        let expected_dir = match lower.len() {
            1 => "1".to_owned(),
            2 => "2".to_owned(),
            3 => format!("3/{}", &lower[..1]),
            _ => format!("{}/{}", &lower[..2], &lower[2..4]),
        };
        prop_assert_eq!(&path, &format!("{expected_dir}/{lower}"));
        prop_assert_eq!(index_prefix(&name).to_lowercase(), expected_dir);
        prop_assert!(path.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
        // Names that differ only in case share one index file.
        let upper = CrateName::new(&name.as_str().to_uppercase()).unwrap();
        prop_assert_eq!(index_path(&upper), path);
    }

    #[test]
    fn no_marker_template_appends_crate_version_download(name in name(), vers in version(), base in "https?://[a-z]{1,10}\\.example(:[0-9]{1,5})?(/[a-z]{1,5}){0,3}/?") {
        let t = DlTemplate::new(&base).unwrap();
        let url = t.expand(&name, &vers, &Checksum::from_bytes([7; 32]));
        let expected = format!("{}/{}/{}/download", base.trim_end_matches('/'), name, vers.as_str().replace('+', "%2B"));
        prop_assert_eq!(url, expected);
    }

    #[test]
    fn markers_expand_to_their_values(name in name(), vers in version(), sum in any::<[u8; 32]>(), order in Just(["{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}"]).prop_shuffle()) {
        let template = format!("http://cdn.example/{}", order.join("/"));
        let sum = Checksum::from_bytes(sum);
        let url = DlTemplate::new(&template).unwrap().expand(&name, &vers, &sum);
        let value = |m: &str| match m {
            "{crate}" => name.to_string(),
            "{version}" => vers.as_str().replace('+', "%2B"),
            "{prefix}" => index_prefix(&name),
            "{lowerprefix}" => index_prefix(&name).to_lowercase(),
            _ => sum.to_string(),
        };
        let expected = format!("http://cdn.example/{}", order.iter().map(|m| value(m)).collect::<Vec<_>>().join("/"));
        prop_assert!(!url.contains('+'));
        prop_assert_eq!(url, expected);
    }
}

#[test]
fn templates_with_other_schemes_are_refused() {
    for bad in [
        "file:///etc/{crate}",
        "ftp://x/{crate}",
        "/relative/{crate}",
        "",
        "http://a b/",
    ] {
        assert!(DlTemplate::new(bad).is_err(), "{bad:?} accepted");
    }
    // Braces that are not markers stay as they are.
    let t = DlTemplate::new("http://x.example/{unknown}/{crate}").unwrap();
    let url = t.expand(
        &"ab".parse().unwrap(),
        &"1.0.0".parse().unwrap(),
        &Checksum::from_bytes([0; 32]),
    );
    assert_eq!(url, "http://x.example/{unknown}/ab");
}

/// Found by `cargo xtask fuzz` (target `dl_template`): `http://` alone was accepted, and its
/// expansion trimmed the scheme's `//` (`http:/ab/1.0.0/download`). A URL needs a host.
#[test]
fn templates_without_a_host_are_refused() {
    for bad in [
        "http://",
        "HTTP://",
        "https://",
        "https:///crates",
        "http:///{crate}",
        "http://?dl={crate}",
        "http://#",
    ] {
        let err = DlTemplate::new(bad).unwrap_err();
        assert!(
            err.to_string().ends_with("the URL has no host"),
            "{bad:?}: {err}"
        );
    }
    let sum = Checksum::from_bytes([0; 32]);
    let (name, vers) = ("ab".parse().unwrap(), "1.0.0".parse().unwrap());
    for (good, url) in [
        ("http://h", "http://h/ab/1.0.0/download"),
        ("HTTP://h//", "HTTP://h/ab/1.0.0/download"),
        ("https://{crate}.example/", "https://ab.example/"),
    ] {
        let t = DlTemplate::new(good).unwrap();
        assert_eq!(t.expand(&name, &vers, &sum), url, "{good:?}");
    }
}
