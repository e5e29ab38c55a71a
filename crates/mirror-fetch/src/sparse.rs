//! The sparse HTTP index protocol for named crates, with an optional ETag / Last-Modified cache.
//!
//! The sparse protocol has no listing: a crate's file is fetched by its name, so this source reads
//! only the crates it is asked for. Bodies are kept byte for byte (no transparent decompression:
//! the client never sends `Accept-Encoding`, and refuses an encoded body).
//!
//! It lives in this crate, not in `mirror-index`, because every request it sends goes through a
//! [`Fetcher`]: the same rate limit, in-flight cap, attempts, backoff with jitter, `Retry-After`
//! and `User-Agent` as downloads (`docs/politeness.md`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mirror_core::{CrateName, DlTemplate, Error, IndexConfig, IndexFile, index_path};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};

use crate::page::Page;
use crate::{FetchError, FetchOptions, Fetcher};

/// Largest index file body accepted (256 MiB). The largest crates.io index files are a few MB; a
/// body much larger than that is hostile, and is refused before it fills memory.
const MAX_BODY_LEN: usize = 256 << 20;

/// The `dl` of the [`FetchOptions`] a sparse source is built from: never used, since index
/// requests name their URL (the downloads' template comes from the index's `config.json`).
const UNUSED_DL: &str = "http://unused.invalid/";

/// First line of a cache file; a file that does not start with it is ignored.
const CACHE_MAGIC: &[u8] = b"mirror-index sparse cache 1\n";

/// How to talk to a sparse index.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SparseOptions {
    /// The politeness of every request: rate, in flight, attempts, backoff, `Retry-After`,
    /// timeouts and the `User-Agent` (tool and contact), exactly as for downloads. Its `dl` and
    /// CDN fields are not used.
    pub fetch: FetchOptions,
    /// Where to keep index files with their `ETag` and `Last-Modified`, so that a repeated fetch
    /// is a conditional request. `None` (the default) fetches everything afresh.
    pub cache_dir: Option<PathBuf>,
}

impl SparseOptions {
    /// Default options whose `User-Agent` is `user_agent` exactly (no contact is appended).
    pub fn new(user_agent: impl Into<String>) -> Self {
        let mut options = SparseOptions::default();
        options.fetch.user_agent = Some(user_agent.into());
        options
    }

    /// Options with the politeness of `fetch` (the downloads' options, typically).
    pub fn from_fetch(fetch: FetchOptions) -> Self {
        SparseOptions {
            fetch,
            cache_dir: None,
        }
    }
}

impl Default for SparseOptions {
    fn default() -> Self {
        let dl = DlTemplate::new(UNUSED_DL).expect("a constant valid template");
        SparseOptions::from_fetch(FetchOptions::new(dl))
    }
}

/// What a [`SparseIndex::fetch`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SparseFile {
    /// The server sent the file (`200 OK`).
    Fresh(IndexFile),
    /// The server answered `304 Not Modified`; the file is the cached copy.
    NotModified(IndexFile),
    /// The registry has no such crate (`404`, `410` or `451`, as Cargo reads them). Any cached copy
    /// has been removed.
    NotFound,
}

impl SparseFile {
    /// The index file, unless the crate was not found.
    pub fn file(&self) -> Option<&IndexFile> {
        match self {
            SparseFile::Fresh(file) | SparseFile::NotModified(file) => Some(file),
            SparseFile::NotFound => None,
        }
    }

    /// The index file, unless the crate was not found.
    pub fn into_file(self) -> Option<IndexFile> {
        match self {
            SparseFile::Fresh(file) | SparseFile::NotModified(file) => Some(file),
            SparseFile::NotFound => None,
        }
    }
}

/// A registry index read over the sparse HTTP protocol, one named crate at a time.
///
/// Each fetched file is parsed with [`IndexFile::parse`] under its index path; skipped lines name
/// the URL they came from. Cloning is cheap and clones share connections and limits.
///
/// ```no_run
/// # async fn run() -> Result<(), mirror_core::Error> {
/// use mirror_fetch::{SparseIndex, SparseOptions};
/// use mirror_core::CrateName;
/// let mut options = SparseOptions::new("my-mirror/1.0 (admin@example.org)");
/// options.cache_dir = Some("cache/index".into());
/// let index = SparseIndex::new("https://index.example/", options)?;
/// let dl = index.config().await?.dl;
/// let name: CrateName = "serde".parse()?;
/// match index.fetch(&name).await?.into_file() {
///     Some(file) => {
///         for entry in &file.entries {
///             println!("{} {} from {dl}", entry.name(), entry.vers());
///         }
///     }
///     None => println!("no crate {name}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SparseIndex {
    base: Url,
    fetcher: Fetcher,
    cache_dir: Option<PathBuf>,
}

impl SparseIndex {
    /// A client for the index at `base_url` (`http://` or `https://`, without the `sparse+`
    /// prefix; a missing final `/` is added).
    pub fn new(base_url: &str, options: SparseOptions) -> Result<Self, Error> {
        let unsupported = |reason: String| Error::UnsupportedSource {
            source_str: base_url.into(),
            reason,
        };
        let mut base = Url::parse(base_url).map_err(|e| unsupported(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(unsupported(
                "a sparse index must be http:// or https://".into(),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(unsupported(
                "a sparse index URL cannot have a query or fragment".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let fetcher = Fetcher::new(options.fetch).map_err(|e| http_error(base.as_str(), &e))?;
        Ok(SparseIndex {
            base,
            fetcher,
            cache_dir: options.cache_dir,
        })
    }

    /// The most requests in flight at once (the fetcher's `max_in_flight`): starting more
    /// fetches than this at a time only makes them wait.
    pub fn max_in_flight(&self) -> usize {
        self.fetcher.options().max_in_flight
    }

    /// The index URL, ending with `/`.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The URL of a crate's index file.
    pub fn file_url(&self, name: &CrateName) -> String {
        self.url_of(&index_path(name)).into()
    }

    /// Fetches and parses the index's `config.json`. Any status but `200` is an error.
    pub async fn config(&self) -> Result<IndexConfig, Error> {
        let url = self.url_of("config.json");
        tracing::debug!(%url, "fetching sparse index config");
        let response = self.get(&url, HeaderMap::new()).await?;
        let status = response.status;
        tracing::debug!(%url, status = status.as_u16(), "sparse index config response");
        if status != StatusCode::OK {
            return Err(status_error(&url, status));
        }
        let body = read_body(response, &url)?;
        IndexConfig::parse(&body, url.as_str())
    }

    /// Fetches a crate's index file.
    ///
    /// With a cache directory, the request carries the cached copy's `ETag` and `Last-Modified`
    /// as `If-None-Match` and `If-Modified-Since`; a `304` answer is served from the cache, a new
    /// body replaces it atomically, and a missing crate removes it. Statuses other than `200`,
    /// `304`, `404`, `410` and `451` are [`Error::Http`] naming the URL.
    pub async fn fetch(&self, name: &CrateName) -> Result<SparseFile, Error> {
        let path = index_path(name);
        let url = self.url_of(&path);
        let cache_file = self.cache_dir.as_deref().map(|dir| cache_path(dir, &path));
        let cached = match &cache_file {
            Some(file) => read_cache(file.clone()).await?,
            None => None,
        };

        let mut request = HeaderMap::new();
        if let Some(cached) = &cached {
            if let Some(etag) = cached.etag.as_deref().and_then(header_value) {
                request.insert(header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = cached.last_modified.as_deref().and_then(header_value) {
                request.insert(header::IF_MODIFIED_SINCE, modified);
            }
        }
        tracing::debug!(%url, crate_name = %name, conditional = cached.is_some(), "fetching sparse index file");
        let response = self.get(&url, request).await?;
        let status = response.status;
        tracing::debug!(%url, status = status.as_u16(), "sparse index file response");

        match status {
            StatusCode::OK => {
                let etag = header_string(&response.headers, header::ETAG);
                let last_modified = header_string(&response.headers, header::LAST_MODIFIED);
                let body = read_body(response, &url)?;
                if let Some(file) = cache_file {
                    let entry = CacheEntry {
                        etag,
                        last_modified,
                        body,
                    };
                    if entry.etag.is_some() || entry.last_modified.is_some() {
                        write_cache(file, &entry).await?;
                    } else {
                        // Without validators the copy could never be revalidated; keeping an
                        // older one would make a later 304 serve stale bytes.
                        remove_cache(file).await?;
                    }
                    Ok(SparseFile::Fresh(parse(&path, &url, &entry.body)))
                } else {
                    Ok(SparseFile::Fresh(parse(&path, &url, &body)))
                }
            }
            StatusCode::NOT_MODIFIED => match cached {
                Some(cached) => {
                    tracing::debug!(%url, "serving sparse index file from the cache");
                    Ok(SparseFile::NotModified(parse(&path, &url, &cached.body)))
                }
                None => Err(Error::Http {
                    url: url.into(),
                    message: "304 Not Modified to an unconditional request".into(),
                }),
            },
            StatusCode::NOT_FOUND
            | StatusCode::GONE
            | StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS => {
                if let Some(file) = cache_file {
                    remove_cache(file).await?;
                }
                Ok(SparseFile::NotFound)
            }
            _ => Err(status_error(&url, status)),
        }
    }

    /// One polite request (see [`Fetcher`]); a failure after the last attempt is an
    /// [`Error::Http`] naming `url`.
    async fn get(&self, url: &Url, headers: HeaderMap) -> Result<Page, Error> {
        self.fetcher
            .get_page(url, &headers, MAX_BODY_LEN)
            .await
            .map_err(|e| http_error(url.as_str(), &e))
    }

    fn url_of(&self, path: &str) -> Url {
        // `path` is `config.json` or an index path built from a valid crate name: only
        // `[a-z0-9_-]` and `/`, so joining it to a base that ends with `/` always succeeds.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }
}

/// Parses a body under its index path, and points skipped lines at the URL they came from.
fn parse(path: &str, url: &Url, body: &[u8]) -> IndexFile {
    let mut file = IndexFile::parse(path, body);
    for problem in &mut file.problems {
        tracing::debug!(%url, line = problem.line, kind = %problem.kind, "skipping a bad index line");
        problem.file = url.to_string();
    }
    file
}

/// The body of a response, refusing an encoded one (bodies over [`MAX_BODY_LEN`] were refused
/// while reading).
fn read_body(response: Page, url: &Url) -> Result<Vec<u8>, Error> {
    if let Some(encoding) = header_string(&response.headers, header::CONTENT_ENCODING)
        && !encoding.eq_ignore_ascii_case("identity")
    {
        return Err(Error::Http {
            url: url.to_string(),
            message: format!("unexpected content-encoding {encoding:?} (none was asked for)"),
        });
    }
    Ok(response.body)
}

fn status_error(url: &Url, status: StatusCode) -> Error {
    Error::Http {
        url: url.to_string(),
        message: format!("unexpected status {status}"),
    }
}

/// An [`Error::Http`] naming `url`, with the fetch error's message, causes and attempts.
fn http_error(url: &str, error: &FetchError) -> Error {
    let mut message = error.message().to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.attempts() > 1 {
        message.push_str(&format!(" (after {} attempts)", error.attempts()));
    }
    Error::Http {
        url: url.into(),
        message,
    }
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn header_value(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(value).ok()
}

/// A cached index file and the validators it was served with.
struct CacheEntry {
    etag: Option<String>,
    last_modified: Option<String>,
    body: Vec<u8>,
}

impl CacheEntry {
    /// The file format: [`CACHE_MAGIC`], `etag: …` and `last-modified: …` lines, an empty line,
    /// then the body exactly as received. One file holds validators and body, so a single rename
    /// replaces both together.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 160);
        out.extend_from_slice(CACHE_MAGIC);
        for (key, value) in [("etag", &self.etag), ("last-modified", &self.last_modified)] {
            if let Some(value) = value {
                out.extend_from_slice(format!("{key}: {value}\n").as_bytes());
            }
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(mut data: Vec<u8>) -> Option<CacheEntry> {
        let mut rest = data.strip_prefix(CACHE_MAGIC)?;
        let mut entry = CacheEntry {
            etag: None,
            last_modified: None,
            body: Vec::new(),
        };
        loop {
            let end = memchr::memchr(b'\n', rest)?;
            let line = std::str::from_utf8(&rest[..end]).ok()?;
            rest = &rest[end + 1..];
            if line.is_empty() {
                break;
            }
            match line.split_once(": ")? {
                ("etag", value) => entry.etag = Some(value.to_owned()),
                ("last-modified", value) => entry.last_modified = Some(value.to_owned()),
                _ => return None,
            }
        }
        let start = data.len() - rest.len();
        data.drain(..start);
        entry.body = data;
        Some(entry)
    }
}

/// The cache file of an index path. Index paths come from valid crate names (`[a-z0-9_-]`
/// components), so the result is always inside `dir`.
fn cache_path(dir: &Path, index_path: &str) -> PathBuf {
    let mut path = dir.to_path_buf();
    path.extend(index_path.split('/'));
    path
}

/// Runs blocking file work off the async worker threads.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::io("accessing cache", path, std::io::Error::other(e)))?
}

async fn read_cache(file: PathBuf) -> Result<Option<CacheEntry>, Error> {
    blocking(&file.clone(), move || match std::fs::read(&file) {
        Ok(data) => {
            let entry = CacheEntry::decode(data);
            if entry.is_none() {
                tracing::debug!(path = %file.display(), "ignoring a malformed sparse cache file");
            }
            Ok(entry)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", file, e)),
    })
    .await
}

async fn remove_cache(file: PathBuf) -> Result<(), Error> {
    blocking(&file.clone(), move || match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", file, e)),
    })
    .await
}

/// Writes a cache file atomically: a uniquely named temporary file in the same directory,
/// flushed to disk, then renamed over the old one. Readers see the old file or the new one,
/// never a mix, even after a crash.
async fn write_cache(file: PathBuf, entry: &CacheEntry) -> Result<(), Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let data = entry.encode();
    blocking(&file.clone(), move || {
        let dir = file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let file_name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Crate names have no dot, so a name with dots never collides with a cache file.
        let temp = dir.join(format!(
            ".{file_name}.{}.{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            out.write_all(&data)?;
            out.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(Error::io("writing", temp, e));
        }
        if let Err(e) = std::fs::rename(&temp, &file) {
            let _ = std::fs::remove_file(&temp);
            return Err(Error::io("renaming", temp, e));
        }
        tracing::debug!(path = %file.display(), "stored sparse index file in the cache");
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_entry_round_trips() {
        let entry = CacheEntry {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            body: b"line one\n\nline: two\n".to_vec(),
        };
        let back = CacheEntry::decode(entry.encode()).expect("a fresh encoding decodes");
        assert_eq!(back.etag, entry.etag);
        assert_eq!(back.last_modified, entry.last_modified);
        assert_eq!(back.body, entry.body);

        let bare = CacheEntry {
            etag: None,
            last_modified: None,
            body: Vec::new(),
        };
        let back = CacheEntry::decode(bare.encode()).expect("an empty entry decodes");
        assert_eq!((back.etag, back.last_modified), (None, None));
        assert!(back.body.is_empty());
    }

    #[test]
    fn malformed_cache_files_are_ignored() {
        for data in [
            &b""[..],
            b"some other file\n\nbody",
            b"mirror-index sparse cache 1\netag: x",
            b"mirror-index sparse cache 1\nunknown: x\n\nbody",
        ] {
            assert!(CacheEntry::decode(data.to_vec()).is_none(), "{data:?}");
        }
    }

    #[test]
    fn cache_paths_stay_inside_the_cache() {
        let name: CrateName = "Serde_JSON".parse().expect("valid name");
        let path = cache_path(Path::new("/cache"), &index_path(&name));
        assert_eq!(path, Path::new("/cache/se/rd/serde_json"));
    }

    #[test]
    fn base_urls_are_checked_and_normalised() {
        let ok = SparseIndex::new("http://127.0.0.1:1/index", SparseOptions::default())
            .expect("an http URL is accepted");
        assert_eq!(ok.base_url(), "http://127.0.0.1:1/index/");
        let name: CrateName = "Abc".parse().expect("valid name");
        assert_eq!(ok.file_url(&name), "http://127.0.0.1:1/index/3/a/abc");
        for bad in ["file:///srv/index", "not a url", "http://h/index/?q=1"] {
            assert!(
                matches!(
                    SparseIndex::new(bad, SparseOptions::default()),
                    Err(Error::UnsupportedSource { .. })
                ),
                "{bad}"
            );
        }
    }
}
