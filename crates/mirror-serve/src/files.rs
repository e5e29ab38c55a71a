//! Opening a file under the mirror root for one request, and its validators (`ETag`,
//! `Last-Modified`).

use std::io;
use std::path::{Component, Path};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::fs::File;

/// A regular file opened for one request. Everything about it (length, validators) comes from the
/// open handle, so it describes exactly the bytes that will be sent even if the path is replaced.
pub(crate) struct Opened {
    pub(crate) file: File,
    pub(crate) len: u64,
    pub(crate) modified: Option<SystemTime>,
    pub(crate) etag: String,
}

/// Opens `rel` (already checked by [`crate::path::parse`]) under `root`, which must be canonical.
///
/// `None` when there is no such regular file, or when its canonical path is not inside the public
/// tree `rel` names (`crates/` or `index/`), or passes through a dot-directory: a symlink in the
/// mirror may only point elsewhere in the same public tree, never at `.mirror/`, at anything else
/// kept beside the trees, or outside the mirror. (A symlink swapped in between the check and the
/// open could still be followed, but only by someone who can already write to the mirror.)
pub(crate) async fn open(root: &Path, rel: &str) -> io::Result<Option<Opened>> {
    let canonical = match tokio::fs::canonicalize(root.join(rel)).await {
        Ok(path) => path,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    // `rel` comes from `path::parse`, so its first segment is `crates` or `index`.
    let tree = root.join(rel.split('/').next().unwrap_or_default());
    let inside = canonical.strip_prefix(&tree).is_ok_and(|inner| {
        inner.components().all(|c| match c {
            Component::Normal(part) => !part.as_encoded_bytes().starts_with(b"."),
            _ => false,
        })
    });
    if !inside {
        tracing::warn!(
            path = rel,
            target = %canonical.display(),
            "refusing to serve a symlink that leads outside its public tree (crates/ or index/)"
        );
        return Ok(None);
    }
    let file = match File::open(&canonical).await {
        Ok(file) => file,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Ok(None);
    }
    let modified = meta.modified().ok();
    let etag = etag(&meta, modified);
    Ok(Some(Opened {
        file,
        len: meta.len(),
        modified,
        etag,
    }))
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A strong entity tag from the file's identity, size and modification time. A sync replaces a
/// file by renaming a new one over it, which changes the inode, so a replaced file never keeps its
/// tag even when written within the file system's timestamp resolution.
fn etag(meta: &std::fs::Metadata, modified: Option<SystemTime>) -> String {
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let ino = 0u64;
    let nanos = modified
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{ino:x}-{:x}-{nanos:x}\"", meta.len())
}

/// Whether a `GET` or `HEAD` with these request headers may be answered `304 Not Modified`, per
/// RFC 9110 section 13.2.2: `If-None-Match` when present, otherwise `If-Modified-Since`.
pub(crate) fn not_modified(
    headers: &axum::http::HeaderMap,
    etag: &str,
    modified: Option<SystemTime>,
) -> bool {
    use axum::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};

    let mut inm = headers.get_all(IF_NONE_MATCH).iter().peekable();
    if inm.peek().is_some() {
        // Weak comparison: `W/"x"` matches `"x"`.
        return inm
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|tag| tag.trim())
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
    }
    let Some(modified) = modified else {
        return false;
    };
    let Some(since) = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    // HTTP dates have whole seconds: compare the file's time truncated the same way.
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    secs(modified) <= secs(since)
}

/// The `Last-Modified` value for a modification time.
pub(crate) fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}
