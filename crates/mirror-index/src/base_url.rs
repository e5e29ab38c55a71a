//! The URL clients reach a mirror at: the one check `publish`, `sync` and `serve` share.

use std::fmt;
use std::str::FromStr;

use crate::{DlTemplate, Error};

/// The URL clients reach a mirror's root at, such as `https://mirror.example.org/cargo`: the base
/// of the `dl` a published `config.json` carries. Valid by construction: an `http://` or `https://`
/// URL that the `url` crate parses (so a port is 1 to 65535 and a bracketed IPv6 host is closed),
/// with a host, a port other than 0, no user name or password, no query or fragment, no braces
/// (they would read as `dl` template markers) and no whitespace, control or non-ASCII characters.
/// Trailing slashes are dropped; the rest is kept as given.
///
/// ```
/// use mirror_index::BaseUrl;
/// let url = BaseUrl::parse("https://mirror.example.org/cargo/").unwrap();
/// assert_eq!(url.as_str(), "https://mirror.example.org/cargo");
/// let err = BaseUrl::parse("http://mirror.example.org:99999").unwrap_err();
/// assert_eq!(err.to_string(), r#"invalid base url "http://mirror.example.org:99999": invalid port number"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Checks `url` (see the type's documentation) and drops its trailing slashes.
    pub fn parse(url: &str) -> Result<BaseUrl, Error> {
        let invalid = |reason: &str| Error::InvalidBaseUrl {
            url: url.into(),
            reason: reason.into(),
        };
        if url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
        {
            // The `url` crate would quietly strip or encode these, so the URL kept would not be
            // the one checked.
            return Err(invalid(
                "contains whitespace, control or non-ASCII characters",
            ));
        }
        let scheme_len = ["http://", "https://"]
            .iter()
            .find(|scheme| {
                url.get(..scheme.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
            })
            .ok_or_else(|| invalid("only http:// and https:// URLs are supported"))?
            .len();
        let rest = url[scheme_len..].trim_end_matches('/');
        let trimmed = &url[..scheme_len + rest.len()];
        // Checked on the text: the `url` crate skips extra slashes, reading `http:///path` as the
        // host `path`.
        if rest.split(['/', '?', '#']).next().is_none_or(str::is_empty) {
            return Err(invalid("has no host"));
        }
        if trimmed.contains(['{', '}']) {
            return Err(invalid("contains a brace"));
        }
        if trimmed.contains(['?', '#']) {
            return Err(invalid("has a query or fragment"));
        }
        let parsed = url::Url::parse(trimmed).map_err(|e| invalid(&e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid("may not hold a user name or password"));
        }
        if parsed.port() == Some(0) {
            return Err(invalid("port 0 is no port a client can connect to"));
        }
        DlTemplate::new(&format!("{trimmed}/crates/{{crate}}"))
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(BaseUrl(trimmed.to_owned()))
    }

    /// The URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BaseUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BaseUrl::parse(s)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::BaseUrl;

    #[track_caller]
    fn check(url: &str, expect: Result<&str, &str>) {
        let got = BaseUrl::parse(url);
        match expect {
            Ok(kept) => assert_eq!(got.expect("valid").as_str(), kept, "{url}"),
            Err(reason) => assert_eq!(
                got.expect_err("invalid").to_string(),
                format!("invalid base url {url:?}: {reason}"),
            ),
        }
    }

    #[test]
    fn accepts_http_urls_with_a_host() {
        check("http://127.0.0.1:8080", Ok("http://127.0.0.1:8080"));
        check("https://mirror.example/", Ok("https://mirror.example"));
        check(
            "HTTPS://mirror.example/a/b//",
            Ok("HTTPS://mirror.example/a/b"),
        );
        check("http://[::1]:65535", Ok("http://[::1]:65535"));
        check("http://x:1", Ok("http://x:1"));
    }

    #[test]
    fn refuses_everything_else_saying_why() {
        check("http://x:99999", Err("invalid port number"));
        check("http://x:65536", Err("invalid port number"));
        check(
            "http://x:0",
            Err("port 0 is no port a client can connect to"),
        );
        check("http://[::1", Err("invalid IPv6 address"));
        check("http://[::1]x", Err("invalid IPv6 address"));
        check("http://x:8a", Err("invalid port number"));
        check(
            "http://a b",
            Err("contains whitespace, control or non-ASCII characters"),
        );
        check(
            "http://m\u{e9}",
            Err("contains whitespace, control or non-ASCII characters"),
        );
        check(
            "ftp://x",
            Err("only http:// and https:// URLs are supported"),
        );
        check(
            "mirror.example",
            Err("only http:// and https:// URLs are supported"),
        );
        check("http://", Err("has no host"));
        check("http:///path", Err("has no host"));
        check("http://?x", Err("has no host"));
        check("https://{crate}.example", Err("contains a brace"));
        check("https://x/?a=1", Err("has a query or fragment"));
        check("https://x/#top", Err("has a query or fragment"));
        check("https://u:p@x", Err("may not hold a user name or password"));
        check("https://u@x", Err("may not hold a user name or password"));
    }
}
