//! Names, versions and checksums: valid by construction, and nothing that could escape a directory.

use mirror_index::{Checksum, CrateName, Version};

fn check_name(input: &str, expect: Result<(), &str>) {
    let got = CrateName::new(input).map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(
        got.as_ref().copied().map_err(String::as_str),
        expect,
        "name {input:?}"
    );
}

#[test]
fn names() {
    check_name("a", Ok(()));
    check_name("Serde_JSON-2", Ok(()));
    check_name("_private", Ok(()));
    check_name(&"a".repeat(64), Ok(()));
    check_name("", Err(r#"invalid crate name "": name is empty"#));
    check_name(
        &"a".repeat(65),
        Err(&format!(
            r#"invalid crate name "{}": name is longer than 64 characters"#,
            "a".repeat(65)
        )),
    );
    check_name("..", Err(r#"invalid crate name "..": name contains a dot"#));
    check_name(
        "a/b",
        Err(r#"invalid crate name "a/b": name contains a path separator"#),
    );
    check_name(
        "/abs",
        Err(r#"invalid crate name "/abs": name contains a path separator"#),
    );
    check_name(
        r"a\b",
        Err(r#"invalid crate name "a\\b": name contains a path separator"#),
    );
    check_name(
        "a\0",
        Err(r#"invalid crate name "a\0": name contains a NUL character"#),
    );
    check_name(
        "a\n",
        Err(r#"invalid crate name "a\n": name contains a control character"#),
    );
    check_name(
        "sеrde",
        Err(r#"invalid crate name "sеrde": name contains a non-ASCII character"#),
    );
    check_name(
        "-x",
        Err(r#"invalid crate name "-x": name starts with '-'"#),
    );
    check_name(
        "a b",
        Err(
            r#"invalid crate name "a b": name contains a character other than ASCII letters, digits, '-' and '_'"#,
        ),
    );
}

#[test]
fn versions() {
    for ok in [
        "0.0.0",
        "1.2.3-alpha.1",
        "1.0.0+build.5",
        "1.0.0-rc.1+x-y.z",
    ] {
        assert_eq!(Version::new(ok).unwrap().as_str(), ok);
    }
    for bad in [
        "", "1.0", "1.0.0/..", "1.0.0+..", "../1.0.0", "1.0.0\0", "01.0.0", " 1.0.0",
    ] {
        assert!(Version::new(bad).is_err(), "{bad:?} accepted");
    }
    assert!(Version::new(&format!("1.0.0+{}", "a".repeat(200))).is_err());
    // Build metadata is part of the identity of a file, though not of semver precedence.
    let a = Version::new("1.0.0+a").unwrap();
    let b = Version::new("1.0.0+b").unwrap();
    assert_ne!(a, b);
    assert!(a < b);
    assert!(Version::new("1.0.0-rc.1").unwrap() < Version::new("1.0.0").unwrap());
}

#[test]
fn checksums() {
    let hex = "0123456789abcdef".repeat(4);
    assert_eq!(Checksum::from_hex(&hex).unwrap().to_string(), hex);
    assert_eq!(
        Checksum::from_hex(&hex.to_uppercase()).unwrap().to_string(),
        hex
    );
    for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"0".repeat(65)] {
        assert!(Checksum::from_hex(bad).is_err(), "{bad:?} accepted");
    }
}
