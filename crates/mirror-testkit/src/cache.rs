//! Cargo's index cache files (`registry/index/<dir>/.cache/**`): the raw index lines of one crate.
//!
//! The format, as cargo's `sources/registry/index/cache.rs` writes it: one byte of cache version
//! (3; 2 has the same layout), the index schema version as a little-endian u32, the index file's
//! version string and a NUL, then pairs of `version NUL json-line NUL`, in the order of the
//! upstream index file.

/// One parsed cache file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CacheFile<'a> {
    /// The index file version string (an ETag, a commit id, `Unknown`).
    pub(crate) index_version: &'a str,
    /// `(version, raw line)` pairs, in upstream order.
    pub(crate) lines: Vec<(&'a [u8], &'a [u8])>,
}

/// Parses a cache file, or says why it cannot be used.
pub(crate) fn parse(data: &[u8]) -> Result<CacheFile<'_>, String> {
    let (&cache_version, rest) = data.split_first().ok_or("empty file")?;
    if !matches!(cache_version, 2 | 3) {
        return Err(format!("unknown cache version {cache_version}"));
    }
    let schema = rest.get(..4).ok_or("truncated header")?;
    let schema = u32::from_le_bytes(schema.try_into().expect("four bytes"));
    if !(1..=2).contains(&schema) {
        return Err(format!("unknown index schema version {schema}"));
    }
    let mut fields = rest[4..].split(|b| *b == 0);
    let index_version = fields.next().ok_or("no index version")?;
    let index_version =
        std::str::from_utf8(index_version).map_err(|_| "index version is not UTF-8")?;
    let mut lines = Vec::new();
    // The file ends with a NUL, so the split yields one empty piece at the very end.
    while let Some(version) = fields.next() {
        if version.is_empty() && fields.clone().next().is_none() {
            break;
        }
        let line = fields
            .next()
            .ok_or_else(|| format!("version {} has no line", String::from_utf8_lossy(version)))?;
        lines.push((version, line));
    }
    Ok(CacheFile {
        index_version,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_pairs() {
        let mut data = vec![3];
        data.extend(2u32.to_le_bytes());
        data.extend(b"etag\0" as &[u8]);
        data.extend(b"1.0.0\x00{\"a\":1}\x001.0.1+x\x00{\"b\":2}\x00" as &[u8]);
        let file = parse(&data).expect("valid");
        assert_eq!(file.index_version, "etag");
        assert_eq!(
            file.lines,
            vec![
                (b"1.0.0" as &[u8], b"{\"a\":1}" as &[u8]),
                (b"1.0.1+x", b"{\"b\":2}")
            ]
        );
    }

    #[test]
    fn refuses_other_versions_and_truncation() {
        assert!(parse(&[1, 2, 0, 0, 0]).is_err());
        assert!(parse(&[3, 2]).is_err());
        let mut data = vec![3];
        data.extend(2u32.to_le_bytes());
        data.extend(b"etag\x001.0.0\x00" as &[u8]);
        // A version whose line is missing: the NUL after the version yields an empty "line",
        // which the caller rejects as bad JSON rather than this parser guessing.
        assert_eq!(
            parse(&data).expect("parses").lines,
            vec![(b"1.0.0" as &[u8], b"" as &[u8])]
        );
    }
}
