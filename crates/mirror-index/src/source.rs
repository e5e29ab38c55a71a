//! Telling which kind of index a source string names.

use std::path::PathBuf;

use crate::Error;

/// Where an index comes from, as parsed from a command-line `--index` value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceSpec {
    /// A git repository URL (`https://`, `http://`, `git://`, `ssh://`, `file://`).
    Git(String),
    /// A local directory: a checkout or a sparse-layout tree.
    Dir(PathBuf),
    /// A sparse HTTP index; the URL is given without the `sparse+` prefix and ends with `/`.
    Sparse(String),
}

impl SourceSpec {
    /// Parses a source string. `sparse+http(s)://…` is a sparse index, other URLs are git, and
    /// anything else must be an existing local directory.
    ///
    /// ```
    /// use mirror_index::SourceSpec;
    /// assert_eq!(SourceSpec::parse("sparse+http://127.0.0.1:1/index").unwrap(),
    ///            SourceSpec::Sparse("http://127.0.0.1:1/index/".into()));
    /// assert!(matches!(SourceSpec::parse("file:///srv/index.git").unwrap(), SourceSpec::Git(_)));
    /// ```
    pub fn parse(src: &str) -> Result<Self, Error> {
        let unsupported = |reason: &str| Error::UnsupportedSource {
            source_str: src.into(),
            reason: reason.into(),
        };
        if let Some(url) = src.strip_prefix("sparse+") {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(unsupported("a sparse index must be http:// or https://"));
            }
            let mut url = url.to_owned();
            if !url.ends_with('/') {
                url.push('/');
            }
            return Ok(SourceSpec::Sparse(url));
        }
        if let Some((scheme, _)) = src.split_once("://") {
            return match scheme {
                "https" | "http" | "git" | "ssh" | "file" => Ok(SourceSpec::Git(src.to_owned())),
                _ => Err(unsupported(
                    "expected a git URL (https, http, git, ssh, file), sparse+http(s)://, or a directory",
                )),
            };
        }
        let path = PathBuf::from(src);
        if path.is_dir() {
            Ok(SourceSpec::Dir(path))
        } else {
            Err(unsupported("no such directory"))
        }
    }
}
