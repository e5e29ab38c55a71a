//! The mirror's layout as clients see it: where a crate file lives, the `dl` template that says
//! so in `config.json`, and the reverse (which crate file a path names). Publishing, the walk and
//! `serve` all use these, so there is one set of rules.

use mirror_core::{CrateName, Version, index_prefix};

use crate::BaseUrl;

/// The `dl` template for crate files below `base`: `{base}/crates/{lowerprefix}/{crate}/{crate}-{version}.crate`.
///
/// ```
/// let base = mirror_store::BaseUrl::parse("http://127.0.0.1:8080/").unwrap();
/// assert_eq!(
///     mirror_store::dl_template(&base),
///     "http://127.0.0.1:8080/crates/{lowerprefix}/{crate}/{crate}-{version}.crate"
/// );
/// ```
pub fn dl_template(base: &BaseUrl) -> String {
    format!("{base}/crates/{{lowerprefix}}/{{crate}}/{{crate}}-{{version}}.crate")
}

/// The base URL whose [`dl_template`] is `dl`, if `dl` is one: the inverse, for reading back a
/// `config.json` this mirror wrote.
///
/// ```
/// let base = mirror_store::BaseUrl::parse("https://mirror.example/cargo").unwrap();
/// assert_eq!(mirror_store::base_url_of_dl(&mirror_store::dl_template(&base)), Some(base));
/// assert_eq!(mirror_store::base_url_of_dl("https://cdn.example/{crate}"), None);
/// ```
pub fn base_url_of_dl(dl: &str) -> Option<BaseUrl> {
    let (base, _) = dl.split_once("/crates/{lowerprefix}/")?;
    let base = BaseUrl::parse(base).ok()?;
    (dl_template(&base) == dl).then_some(base)
}

/// The `config.json` a mirror publishes for clients reaching it at `base`: only `dl` (the mirror
/// has no web API), pretty-printed with a final newline.
pub fn config_json(base: &BaseUrl) -> Vec<u8> {
    let config = serde_json::json!({ "dl": dl_template(base) });
    let mut out = serde_json::to_vec_pretty(&config).expect("a JSON object always serialises");
    out.push(b'\n');
    out
}

/// The crate and version whose file belongs at `parts` below `crates/` (as split on `/`), if
/// any: `{lowerprefix…}/{name}/{name}-{version}.crate` with a valid name and version and the
/// prefix of that name. Anything else (another case, another prefix, a temp file) names nothing.
///
/// ```
/// let (name, vers) = mirror_store::parse_crate_path(&["se", "rd", "Serde", "Serde-1.0.0+x.crate"]).unwrap();
/// assert_eq!((name.as_str(), vers.as_str()), ("Serde", "1.0.0+x"));
/// assert!(mirror_store::parse_crate_path(&["SE", "RD", "Serde", "Serde-1.0.0.crate"]).is_none());
/// ```
pub fn parse_crate_path<S: AsRef<str>>(parts: &[S]) -> Option<(CrateName, Version)> {
    let [prefix @ .., dir, file] = parts else {
        return None;
    };
    let dir = dir.as_ref();
    let name = CrateName::new(dir).ok()?;
    let vers = file
        .as_ref()
        .strip_prefix(dir)?
        .strip_prefix('-')?
        .strip_suffix(".crate")?;
    let vers = Version::new(vers).ok()?;
    let expected_prefix = index_prefix(&name).to_lowercase();
    let prefix_matches = expected_prefix
        .split('/')
        .eq(prefix.iter().map(AsRef::as_ref));
    prefix_matches.then_some((name, vers))
}
