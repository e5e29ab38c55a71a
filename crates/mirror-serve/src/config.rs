//! Rewriting `config.json` so cargo downloads crate files from this server.

use mirror_store::{BaseUrl, dl_template};
use serde_json::{Map, Value};

/// The largest `config.json` read. Real ones are under 200 bytes; anything near this is not one.
pub(crate) const MAX_CONFIG_LEN: u64 = 64 * 1024;

/// The `config.json` to serve: the object on disk with `dl` pointing below `base`, and without
/// `api` and `auth-required`. This server has no web API (publish, yank, search, owners), and
/// keeping upstream's would send such commands, and the user's token, to a registry the user did
/// not name; it does no authentication either, and `auth-required` would make cargo send a token
/// on every request. Any other field is kept as on disk.
pub(crate) fn rewrite(on_disk: &[u8], base: &BaseUrl) -> Result<Vec<u8>, String> {
    let mut config: Map<String, Value> =
        serde_json::from_slice(on_disk).map_err(|e| format!("not a JSON object: {e}"))?;
    config.insert("dl".into(), Value::String(dl_template(base)));
    config.remove("api");
    config.remove("auth-required");
    let mut out = serde_json::to_vec_pretty(&config).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// A strong entity tag for a rewritten `config.json`, from its bytes: the same file served with
/// another base URL is another representation.
pub(crate) fn etag(body: &[u8]) -> String {
    use std::hash::{DefaultHasher, Hasher};

    // `DefaultHasher::new` is fixed-key SipHash: stable within one build, which is all a tag needs
    // (after an upgrade, clients just download the few bytes once more).
    let mut hasher = DefaultHasher::new();
    hasher.write(body);
    format!("\"cfg-{:016x}-{:x}\"", hasher.finish(), body.len())
}
