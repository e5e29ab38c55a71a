//! The registry of real crates from the local cargo cache.

use std::collections::HashSet;
use std::time::Instant;

use mirror_index::{Checksum, DirIndex, IndexFile, ReadOptions, index_path};
use mirror_testkit::{RealRegistryOptions, git, real_registry};
use sha2::{Digest, Sha256};

#[test]
fn real_registry_invariants() {
    let out = tempfile::tempdir().unwrap();
    let dl = "http://127.0.0.1:1/api/v1/crates";
    let start = Instant::now();
    let registry = real_registry(out.path(), &RealRegistryOptions::with_dl(dl)).unwrap();
    let elapsed = start.elapsed();
    let plus = registry
        .versions
        .iter()
        .filter(|v| v.vers().as_str().contains('+'))
        .count();
    println!(
        "{} versions ({} with build metadata), {} skipped, built in {elapsed:?}",
        registry.versions.len(),
        plus,
        registry.skipped.len()
    );
    // Building this workspace downloads a few hundred crates.
    assert!(
        registry.versions.len() >= 100,
        "{} versions",
        registry.versions.len()
    );

    // Every crate file is there and hashes to its line's checksum.
    let mut seen = HashSet::new();
    for v in &registry.versions {
        let bytes = std::fs::read(&v.crate_file).unwrap();
        assert_eq!(
            Checksum::from_bytes(Sha256::digest(&bytes).into()),
            *v.cksum(),
            "{}",
            v.crate_file.display()
        );
        assert_eq!(bytes.len() as u64, v.size);
        let expected = registry
            .cdn
            .join("crates")
            .join(v.name().as_str())
            .join(format!("{}-{}.crate", v.name(), v.vers()));
        assert_eq!(v.crate_file, expected);
        assert!(
            seen.insert((v.name().to_lowercase(), v.vers().to_string())),
            "duplicate {} {}",
            v.name(),
            v.vers()
        );
    }
    if plus > 0 {
        let v = registry
            .versions
            .iter()
            .find(|v| v.vers().as_str().contains('+'))
            .unwrap();
        assert!(
            v.crate_file.to_str().unwrap().contains('+'),
            "+ is kept literally in file names"
        );
    }

    // The sparse tree holds exactly the lines of the versions, byte for byte, in their order.
    let index = DirIndex::open(&registry.sparse).unwrap();
    assert_eq!(index.config().unwrap().unwrap().dl, dl);
    let mut lines = Vec::new();
    let stats = index
        .read_all(&ReadOptions::default(), &mut |file: IndexFile| {
            assert!(file.problems.is_empty(), "{:?}", file.problems);
            for e in file.entries {
                assert_eq!(index_path(e.name()), file.path);
                lines.push(e.raw().to_vec());
            }
        })
        .unwrap();
    assert_eq!(stats.entries, registry.versions.len());
    let expected: Vec<Vec<u8>> = registry
        .versions
        .iter()
        .map(|v| v.entry.raw().to_vec())
        .collect();
    assert_eq!(lines, expected);

    // The manifest lists the same versions.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&registry.manifest).unwrap()).unwrap();
    let manifest = manifest.as_array().unwrap();
    assert_eq!(manifest.len(), registry.versions.len());
    for (m, v) in manifest.iter().zip(&registry.versions) {
        assert_eq!(m["name"], v.name().as_str());
        assert_eq!(m["vers"], v.vers().as_str());
        assert_eq!(m["cksum"], v.cksum().to_string());
        assert_eq!(out.path().join(m["path"].as_str().unwrap()), v.crate_file);
    }

    // The git index has one commit whose tree is the sparse tree.
    assert_eq!(
        git::head_commit(&registry.git).unwrap().as_deref(),
        Some(registry.commit.as_str())
    );
    assert_eq!(
        git::git(&registry.git, &["rev-list", "--count", "HEAD"]).unwrap(),
        "1"
    );
    let listed = git::git(&registry.git, &["ls-tree", "-r", "--name-only", "HEAD"]).unwrap();
    let mut in_git: Vec<&str> = listed.lines().collect();
    in_git.sort_unstable();
    let mut on_disk = index.list_paths().unwrap();
    on_disk.push("config.json".into());
    on_disk.sort_unstable();
    assert_eq!(in_git, on_disk);

    // Building again gives the same commit: fixtures are reproducible.
    let again = tempfile::tempdir().unwrap();
    let second = real_registry(again.path(), &RealRegistryOptions::with_dl(dl)).unwrap();
    assert_eq!(second.commit, registry.commit);
    assert_eq!(
        std::fs::read(&second.manifest).unwrap(),
        std::fs::read(&registry.manifest).unwrap()
    );
}

#[test]
fn no_cargo_cache_is_an_error() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("registry/index")).unwrap();
    let mut options = RealRegistryOptions::default();
    options.cargo_home = Some(home.path().to_owned());
    let out = tempfile::tempdir().unwrap();
    let err = real_registry(out.path(), &options).unwrap_err();
    assert!(err.to_string().contains("no crate files"), "{err}");
}

/// A fake cargo home with one crate: a good version, one whose file does not match its checksum,
/// one without a file, and a bad line.
#[test]
fn bad_checksums_and_lines_are_skipped() {
    let home = tempfile::tempdir().unwrap();
    let reg = home.path().join("registry");
    let dir = "example.test-0000000000000000";
    let cache = reg.join("index").join(dir).join(".cache/3/a");
    std::fs::create_dir_all(&cache).unwrap();
    let crates = reg.join("cache").join(dir);
    std::fs::create_dir_all(&crates).unwrap();
    let good = b"good crate bytes";
    let good_sum = Checksum::from_bytes(Sha256::digest(good).into());
    std::fs::write(crates.join("abc-1.0.0.crate"), good).unwrap();
    std::fs::write(crates.join("abc-1.0.1.crate"), b"tampered").unwrap();
    std::fs::write(crates.join("abc-2.0.0+meta.crate"), good).unwrap();
    let line = |vers: &str, sum: &str| {
        format!(
            r#"{{"name":"abc","vers":"{vers}","deps":[],"cksum":"{sum}","features":{{}},"yanked":false}}"#
        )
    };
    let mut data = vec![3];
    data.extend(2u32.to_le_bytes());
    data.extend(b"etag\0");
    for (vers, line) in [
        ("2.0.0+meta", line("2.0.0+meta", &good_sum.to_string())),
        ("1.0.0", line("1.0.0", &good_sum.to_string())),
        ("1.0.1", line("1.0.1", &good_sum.to_string())),
        ("1.0.2", line("1.0.2", &good_sum.to_string())),
        ("1.0.3", "{not json".to_owned()),
    ] {
        data.extend(vers.as_bytes());
        data.push(0);
        data.extend(line.as_bytes());
        data.push(0);
    }
    std::fs::write(cache.join("abc"), data).unwrap();

    let mut options = RealRegistryOptions::default();
    options.cargo_home = Some(home.path().to_owned());
    let out = tempfile::tempdir().unwrap();
    let registry = real_registry(out.path(), &options).unwrap();
    let versions: Vec<&str> = registry
        .versions
        .iter()
        .map(|v| v.vers().as_str())
        .collect();
    // Upstream order is kept (2.0.0+meta was published first here), not semver order.
    assert_eq!(versions, ["2.0.0+meta", "1.0.0"]);
    assert_eq!(registry.skipped.len(), 2, "{:?}", registry.skipped);
    assert!(
        registry
            .skipped
            .iter()
            .any(|s| s.contains("abc-1.0.1.crate") && s.contains("sha256"))
    );
    assert!(registry.skipped.iter().any(|s| s.contains("1.0.3")));
    let file = std::fs::read_to_string(registry.sparse.join("3/a/abc")).unwrap();
    assert_eq!(
        file,
        format!(
            "{}\n{}\n",
            line("2.0.0+meta", &good_sum.to_string()),
            line("1.0.0", &good_sum.to_string())
        )
    );
    assert!(
        registry
            .cdn
            .join("crates/abc/abc-2.0.0+meta.crate")
            .is_file()
    );
}
