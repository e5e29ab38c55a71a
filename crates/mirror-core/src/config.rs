//! The index's `config.json` and the `dl` download-URL template.

use serde::Deserialize;

use crate::{Checksum, CrateName, Error, Version, index_prefix};

/// The registry configuration at the root of an index (`config.json`). Unknown fields are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct IndexConfig {
    /// Download URL or template for `.crate` files.
    pub dl: String,
    /// Base URL of the registry's web API, if it has one.
    #[serde(default)]
    pub api: Option<String>,
    /// Whether the registry requires authentication for every request.
    #[serde(default, rename = "auth-required")]
    pub auth_required: bool,
}

impl IndexConfig {
    /// Parses the bytes of a `config.json`. `origin` names where they came from, for the error.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::Config {
            origin: origin.into(),
            reason: e.to_string(),
        })
    }

    /// The `dl` field as a template.
    pub fn dl_template(&self) -> Result<DlTemplate, Error> {
        DlTemplate::new(&self.dl)
    }
}

/// A `dl` value: a URL with optional markers `{crate}`, `{version}`, `{prefix}`, `{lowerprefix}`
/// and `{sha256-checksum}`. With none of them, the URL is `{dl}/{crate}/{version}/download`.
///
/// ```
/// use mirror_core::{DlTemplate, CrateName, Version, Checksum};
/// let name: CrateName = "Foo".parse().unwrap();
/// let vers: Version = "1.0.0+x".parse().unwrap();
/// let sum = Checksum::from_bytes([0; 32]);
///
/// let api = DlTemplate::new("https://registry.example/api/v1/crates").unwrap();
/// assert_eq!(api.expand(&name, &vers, &sum), "https://registry.example/api/v1/crates/Foo/1.0.0%2Bx/download");
///
/// let cdn = DlTemplate::new("https://cdn.example/{lowerprefix}/{crate}-{version}.crate").unwrap();
/// assert_eq!(cdn.expand(&name, &vers, &sum), "https://cdn.example/3/f/Foo-1.0.0%2Bx.crate");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DlTemplate {
    raw: String,
    has_markers: bool,
}

const MARKERS: [&str; 5] = [
    "{crate}",
    "{version}",
    "{prefix}",
    "{lowerprefix}",
    "{sha256-checksum}",
];

impl DlTemplate {
    /// Wraps a `dl` value. It must be an `http://` or `https://` URL with a host: a template that
    /// points anywhere else (`file://`, `ftp://`) is refused, since the mirror only downloads over
    /// HTTP.
    pub fn new(dl: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidTemplate {
            template: dl.into(),
            reason: reason.into(),
        };
        let lower = dl.get(..8).unwrap_or(dl).to_ascii_lowercase();
        let scheme_len = if lower.starts_with("https://") {
            8
        } else if lower.starts_with("http://") {
            7
        } else {
            return Err(invalid("only http:// and https:// URLs are supported"));
        };
        // Without a host the value is no URL, and `expand` would trim the `//` of the scheme away
        // (`http://` became `http:/{crate}/{version}/download`).
        let rest = &dl[scheme_len..];
        if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
            return Err(invalid("the URL has no host"));
        }
        if dl
            .chars()
            .any(|c| c.is_ascii_control() || c.is_whitespace())
        {
            return Err(invalid("contains whitespace or control characters"));
        }
        Ok(DlTemplate {
            raw: dl.into(),
            has_markers: MARKERS.iter().any(|m| dl.contains(m)),
        })
    }

    /// The template as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the template has any marker (if not, URLs are `{dl}/{crate}/{version}/download`).
    pub fn has_markers(&self) -> bool {
        self.has_markers
    }

    /// The download URL of one version. The name keeps its case; `+` in the version is sent as `%2B`.
    pub fn expand(&self, name: &CrateName, version: &Version, cksum: &Checksum) -> String {
        let vers = version.url_encoded();
        if !self.has_markers {
            let base = self.raw.trim_end_matches('/');
            return format!("{base}/{name}/{vers}/download");
        }
        let prefix = index_prefix(name);
        let mut out = String::with_capacity(self.raw.len() + 96);
        let mut rest = self.raw.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            rest = &rest[open..];
            let marker = MARKERS.iter().find(|m| rest.starts_with(**m));
            match marker.copied() {
                Some("{crate}") => out.push_str(name.as_str()),
                Some("{version}") => out.push_str(&vers),
                Some("{prefix}") => out.push_str(&prefix),
                Some("{lowerprefix}") => out.push_str(&prefix.to_ascii_lowercase()),
                Some("{sha256-checksum}") => out.push_str(&cksum.to_string()),
                _ => {
                    out.push('{');
                    rest = &rest[1..];
                    continue;
                }
            }
            rest = &rest[marker.map_or(1, |m| m.len())..];
        }
        out.push_str(rest);
        out
    }
}

impl std::fmt::Display for DlTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}
