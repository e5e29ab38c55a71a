//! Index and crate files: bodies, headers, validators, `HEAD`, `+` versions, replacement by rename.

use std::time::{Duration, SystemTime};

use crate::{Mirror, client, read};

const INDEX: &str = "index/se/rd/serde";
const INDEX_LINE: &[u8] =
    br#"{"name":"serde","vers":"1.0.0","deps":[],"cksum":"00","features":{},"yanked":false}
"#;

#[tokio::test]
async fn serves_index_files_for_every_prefix_shape() {
    let mirror = Mirror::new();
    let server = mirror.serve().await;
    for rel in ["index/1/a", "index/2/ab", "index/3/a/abc", INDEX] {
        let body = format!("{{\"name\":\"{rel}\"}}\n");
        mirror.write(rel, body.as_bytes());
        let response = server.get(&format!("/{rel}")).await;
        assert_eq!(response.status(), 200, "{rel}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
        assert_eq!(headers["content-length"], body.len().to_string());
        assert_eq!(headers["cache-control"], "no-cache");
        assert!(headers["etag"].to_str().unwrap().starts_with('"'), "strong");
        assert!(headers.contains_key("last-modified"));
        assert_eq!(response.text().await.unwrap(), body);
    }
}

#[tokio::test]
async fn if_none_match_answers_304() {
    let mirror = Mirror::new();
    mirror.write(INDEX, INDEX_LINE);
    let server = mirror.serve().await;
    let first = server.get(&format!("/{INDEX}")).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let last_modified = first.headers()["last-modified"].clone();

    let check = async |if_none_match: &str, expected: u16| {
        let response = client()
            .get(server.url(&format!("/{INDEX}")))
            .header("if-none-match", if_none_match)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            expected,
            "If-None-Match: {if_none_match}"
        );
        if expected == 304 {
            assert_eq!(response.headers()["etag"], etag.as_str());
            assert_eq!(response.headers()["last-modified"], last_modified);
            assert!(response.bytes().await.unwrap().is_empty());
        }
    };
    check(&etag, 304).await;
    check(&format!("W/{etag}"), 304).await;
    check(&format!("\"other\", {etag}"), 304).await;
    check("*", 304).await;
    check("\"other\"", 200).await;

    // A renamed-over file is a new one, even with the same size and within the same second.
    mirror.replace(INDEX, INDEX_LINE);
    check(&etag, 200).await;
}

#[tokio::test]
async fn if_modified_since_answers_304() {
    let mirror = Mirror::new();
    let path = mirror.write(INDEX, INDEX_LINE);
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let server = mirror.serve().await;
    let first = server.get(&format!("/{INDEX}")).await;
    assert_eq!(
        first.headers()["last-modified"],
        "Tue, 14 Nov 2023 22:13:20 GMT"
    );

    let check = async |headers: &[(&str, &str)], expected: u16| {
        let mut request = client().get(server.url(&format!("/{INDEX}")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), expected, "{headers:?}");
    };
    check(
        &[("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")],
        304,
    )
    .await;
    check(
        &[("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")],
        304,
    )
    .await;
    check(
        &[("if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT")],
        200,
    )
    .await;
    check(&[("if-modified-since", "not a date")], 200).await;
    // If-None-Match wins over If-Modified-Since when both are sent (RFC 9110 13.2.2).
    check(
        &[
            ("if-none-match", "\"other\""),
            ("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT"),
        ],
        200,
    )
    .await;
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let mirror = Mirror::new();
    mirror.write(INDEX, INDEX_LINE);
    mirror.write("crates/se/rd/serde/serde-1.0.0.crate", &[7; 1000]);
    let server = mirror.serve().await;
    for (path, content_type) in [
        (format!("/{INDEX}"), "text/plain; charset=utf-8"),
        (
            "/crates/se/rd/serde/serde-1.0.0.crate".to_owned(),
            "application/octet-stream",
        ),
        ("/index/config.json".to_owned(), "application/json"),
    ] {
        let get = server.get(&path).await;
        let get_length = get.headers()["content-length"].clone();
        let get_etag = get.headers()["etag"].clone();
        let get_body = get.bytes().await.unwrap();
        assert_eq!(get_length, get_body.len().to_string());

        let head = client().head(server.url(&path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(head.headers()["content-type"], content_type);
        assert_eq!(head.headers()["content-length"], get_length, "{path}");
        assert_eq!(head.headers()["etag"], get_etag);
        assert!(head.bytes().await.unwrap().is_empty());
    }
    assert_eq!(
        client()
            .head(server.url("/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn plus_in_a_version_is_literal_or_percent_encoded() {
    let mirror = Mirror::new();
    let path = mirror.write("crates/3/f/foo/foo-1.0.0+build.1.crate", b"plus");
    mirror.write("crates/3/f/foo/foo-1.0.0 build.1.crate", b"space");
    let server = mirror.serve().await;
    for url in [
        "/crates/3/f/foo/foo-1.0.0+build.1.crate",
        "/crates/3/f/foo/foo-1.0.0%2Bbuild.1.crate",
        "/crates/3/f/foo/foo-1.0.0%2bbuild.1.crate",
    ] {
        let response = server.get(url).await;
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        assert_eq!(response.bytes().await.unwrap(), read(&path), "{url}");
    }
    assert_eq!(
        server
            .get("/crates/3/f/foo/foo-1.0.0%20build.1.crate")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn crate_names_keep_their_case_under_a_lowercase_prefix() {
    let mirror = Mirror::new();
    mirror.write("crates/se/rd/Serde/Serde-1.0.0.crate", b"upper");
    mirror.write("crates/3/a/Abc/Abc-0.1.0-rc.1.crate", b"three");
    let server = mirror.serve().await;
    for (url, status) in [
        ("/crates/se/rd/Serde/Serde-1.0.0.crate", 200),
        ("/crates/3/a/Abc/Abc-0.1.0-rc.1.crate", 200),
        ("/crates/Se/rd/Serde/Serde-1.0.0.crate", 404),
        ("/crates/se/rd/serde/serde-1.0.0.crate", 404),
        ("/crates/3/A/Abc/Abc-0.1.0-rc.1.crate", 404),
    ] {
        assert_eq!(server.get(url).await.status(), status, "{url}");
    }
}

#[tokio::test]
async fn a_file_replaced_by_rename_is_served_new() {
    let mirror = Mirror::new();
    mirror.write(INDEX, b"old\n");
    let server = mirror.serve().await;
    assert_eq!(
        server.get(&format!("/{INDEX}")).await.text().await.unwrap(),
        "old\n"
    );
    mirror.replace(INDEX, b"new and longer\n");
    let response = server.get(&format!("/{INDEX}")).await;
    assert_eq!(response.headers()["content-length"], "15");
    assert_eq!(response.text().await.unwrap(), "new and longer\n");
}

#[tokio::test]
async fn a_download_in_flight_finishes_with_the_file_it_opened() {
    let mirror = Mirror::new();
    let rel = "crates/bi/g-/big-file/big-file-1.0.0.crate";
    // Large enough that the response cannot sit in socket buffers before the rename.
    let old: Vec<u8> = (0..32 << 20).map(|i: u32| (i % 251) as u8).collect();
    mirror.write(rel, &old);
    let server = mirror.serve().await;

    let mut response = server.get(&format!("/{rel}")).await;
    assert_eq!(response.headers()["content-length"], old.len().to_string());
    let mut received = response.chunk().await.unwrap().unwrap().to_vec();
    mirror.replace(rel, b"new");
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert!(
        received == old,
        "got {} bytes, not the old file",
        received.len()
    );

    assert_eq!(
        server.get(&format!("/{rel}")).await.bytes().await.unwrap(),
        "new"
    );
}
