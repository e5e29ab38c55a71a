//! Learning the CDN template from the download API's redirect, and refusing bad redirects.

use mirror_fetch::{Download, FetchErrorKind, Fetcher};
use mirror_index::{Checksum, CrateName, DlTemplate, Version};

use crate::raw::{RawServer, redirect};
use crate::{Cdn, options};

/// The first two downloads (of two different crates) ask the API and follow its redirect; one
/// redirect only makes a candidate, the second confirms it. The template round-trips, and every
/// later download goes straight to the CDN, `+` versions included.
#[tokio::test]
async fn the_cdn_template_is_learned_from_the_redirects_of_two_crates() {
    let cdn = Cdn::start(&[
        ("Serde_Like", "1.0.0+build.5", 3000),
        ("tokio", "1.47.1", 4000),
        ("tokio", "2.0.0-rc.1+x", 5000),
        ("a-b_c", "0.3.9", 6000),
    ])
    .await;
    let fetcher = Fetcher::new(options(&cdn.server.dl_api())).expect("valid options");
    assert_eq!(fetcher.learned_template(), None);
    for (i, file) in cdn.files.iter().enumerate() {
        if i == 1 {
            // One redirect is not enough: `…/crates/Serde_Like/…` alone cannot tell a folder
            // that holds every crate from one named after this crate.
            assert_eq!(fetcher.learned_template(), None);
        }
        let mut sink = Vec::new();
        let verified = fetcher
            .fetch(&file.download(), &mut sink)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.name));
        assert_eq!(verified.attempts, 1);
        assert!(sink == file.bytes);
    }

    let learned = fetcher.learned_template().expect("a learned template");
    assert_eq!(learned.as_str(), cdn.server.dl_cdn_template());
    for file in &cdn.files {
        let url = learned.expand(&file.name, &file.vers, &file.cksum);
        assert_eq!(
            url,
            cdn.server.url() + &file.path()[1..].replace('+', "%2B")
        );
        assert_eq!(fetcher.url(&file.download()), url);
    }

    let paths: Vec<String> = cdn.server.requests().into_iter().map(|r| r.path).collect();
    let mut expected = Vec::new();
    for first in &cdn.files[..2] {
        expected.extend([first.api_path(), first.path().replace('+', "%2B")]);
    }
    expected.extend(cdn.files[2..].iter().map(|f| f.path().replace('+', "%2B")));
    assert_eq!(paths, expected);
}

/// Many downloads that start together ask the API one at a time, and only until two crates
/// have taught the template.
#[tokio::test]
async fn concurrent_downloads_ask_the_api_twice() {
    let cdn = Cdn::many(16, 1000).await;
    let fetcher = Fetcher::new(options(&cdn.server.dl_api())).expect("valid options");
    let mut tasks = Vec::new();
    for file in cdn.files.clone() {
        let fetcher = fetcher.clone();
        tasks.push(tokio::spawn(async move {
            fetcher.fetch(&file.download(), &mut Vec::new()).await
        }));
    }
    for task in tasks {
        task.await.expect("the task ran").expect("verified");
    }
    let api = cdn
        .server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .count();
    assert_eq!(api, 2);
}

/// A redirect that cannot be told apart from the CDN's own words (crate `crates` under
/// `/crates/`) teaches nothing; the next two do.
#[tokio::test]
async fn ambiguous_redirects_teach_nothing() {
    let cdn = Cdn::start(&[
        ("crates", "1.0.0", 100),
        ("other", "1.0.0", 100),
        ("x", "2.0.0", 100),
    ])
    .await;
    let fetcher = Fetcher::new(options(&cdn.server.dl_api())).expect("valid options");
    for file in &cdn.files {
        fetcher
            .fetch(&file.download(), &mut Vec::new())
            .await
            .expect("verified");
    }
    let learned = fetcher
        .learned_template()
        .expect("learned from the second and third");
    assert_eq!(learned.as_str(), cdn.server.dl_cdn_template());
    let api: Vec<String> = cdn
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .map(|r| r.path)
        .collect();
    let expected: Vec<String> = cdn.files.iter().map(|f| f.api_path()).collect();
    assert_eq!(api, expected);
}

/// A seeded template sends every download straight to the CDN.
#[tokio::test]
async fn a_seeded_template_skips_the_api() {
    let cdn = Cdn::many(3, 100).await;
    let mut options = options(&cdn.server.dl_api());
    let seeded = DlTemplate::new(&cdn.server.dl_cdn_template()).expect("valid template");
    options.cdn_template = Some(seeded.clone());
    let fetcher = Fetcher::new(options).expect("valid options");
    for file in &cdn.files {
        fetcher
            .fetch(&file.download(), &mut Vec::new())
            .await
            .expect("verified");
    }
    assert_eq!(fetcher.learned_template(), Some(seeded));
    assert!(
        cdn.server
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/crates/"))
    );
}

/// A `dl` with markers is used as it is: nothing to learn.
#[tokio::test]
async fn a_dl_with_markers_is_used_directly() {
    let cdn = Cdn::many(2, 100).await;
    let fetcher = Fetcher::new(cdn.options()).expect("valid options");
    for file in &cdn.files {
        fetcher
            .fetch(&file.download(), &mut Vec::new())
            .await
            .expect("verified");
    }
    assert_eq!(fetcher.learned_template(), None);
    assert_eq!(cdn.server.requests().len(), 2);
}

/// Redirects to other schemes, without a location, in a circle or past the limit are refused,
/// and not retried.
#[tokio::test]
async fn bad_redirects_are_refused() {
    let server = RawServer::start(|path| match path {
        "/file" => redirect("file:///etc/passwd"),
        "/none" => b"HTTP/1.1 302 Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
        "/circle" => redirect("/circle2"),
        "/circle2" => redirect("/circle"),
        p if p.starts_with("/hop") => {
            let n: u32 = p[4..].parse().unwrap_or(0);
            redirect(&format!("/hop{}", n + 1))
        }
        _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
    })
    .await;
    let name: CrateName = "x".parse().expect("valid name");
    let vers: Version = "1.0.0".parse().expect("valid version");
    let cksum = Checksum::from_bytes([0; 32]);
    for (path, kind) in [
        ("/file", FetchErrorKind::BadRedirect),
        ("/none", FetchErrorKind::BadRedirect),
        ("/circle", FetchErrorKind::RedirectLoop),
        ("/hop0", FetchErrorKind::RedirectLoop),
    ] {
        let fetcher = Fetcher::new(options(&server.url(&format!("{path}?{{crate}}"))))
            .expect("valid options");
        let error = fetcher
            .fetch(&Download::new(&name, &vers, &cksum), &mut Vec::new())
            .await
            .expect_err(path);
        assert_eq!((error.kind(), error.attempts()), (&kind, 1), "{path}");
    }
}
