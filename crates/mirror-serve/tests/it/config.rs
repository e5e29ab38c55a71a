//! `config.json`: served from disk with `dl` pointing at this server and upstream's API removed.

use serde_json::{Value, json};

use crate::{Mirror, Server};

async fn config(server: &Server) -> Value {
    let response = server.get("/index/config.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn dl_defaults_to_the_listener_address() {
    let mirror = Mirror::new();
    let server = mirror.serve().await;
    let expected = format!(
        "http://{}/crates/{{lowerprefix}}/{{crate}}/{{crate}}-{{version}}.crate",
        server.addr
    );
    assert_eq!(
        config(&server).await,
        json!({ "dl": expected, "future-field": 7 }),
        "dl rewritten, api and auth-required dropped, other fields kept"
    );
}

#[tokio::test]
async fn dl_uses_the_given_base_url() {
    let mirror = Mirror::new();
    for (base, dl) in [
        (
            "https://mirror.example",
            "https://mirror.example/crates/{lowerprefix}/{crate}/{crate}-{version}.crate",
        ),
        (
            "http://proxy.example:8080/cargo/",
            "http://proxy.example:8080/cargo/crates/{lowerprefix}/{crate}/{crate}-{version}.crate",
        ),
    ] {
        let server = mirror.serve_with(Some(base)).await;
        assert_eq!(config(&server).await["dl"], dl, "{base}");
        server.stop().await;
    }
}

#[tokio::test]
async fn served_dl_leads_to_the_crate_file() {
    let mirror = Mirror::new();
    let path = mirror.write(
        "crates/fo/o-/foo-bar/foo-bar-1.0.0+build.1.crate",
        b"crate bytes",
    );
    let server = mirror.serve().await;
    let dl = config(&server).await["dl"].as_str().unwrap().to_owned();
    // What cargo does with the template: it substitutes the markers, leaving `+` as is.
    let url = dl
        .replace("{lowerprefix}", "fo/o-")
        .replace("{crate}", "foo-bar")
        .replace("{version}", "1.0.0+build.1");
    let response = crate::client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), crate::read(&path));
}

#[tokio::test]
async fn config_has_an_entity_tag() {
    let mirror = Mirror::new();
    let server = mirror.serve().await;
    let first = server.get("/index/config.json").await;
    let etag = first.headers()["etag"].clone();
    assert!(first.headers().get("last-modified").is_none());
    assert_eq!(first.headers()["cache-control"], "no-cache");

    let again = crate::client()
        .get(server.url("/index/config.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);

    // Another base URL is another representation of the same file.
    let other = mirror.serve_with(Some("https://elsewhere.example")).await;
    let response = crate::client()
        .get(other.url("/index/config.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn config_is_read_at_request_time() {
    let mirror = Mirror::new();
    let server = mirror.serve().await;
    assert_eq!(config(&server).await["future-field"], 7);
    mirror.replace(
        "index/config.json",
        br#"{"dl":"https://x.example","future-field":8}"#,
    );
    assert_eq!(config(&server).await["future-field"], 8);
}

#[tokio::test]
async fn missing_config_is_404_and_broken_config_is_500() {
    let mirror = Mirror::new();
    let server = mirror.serve().await;
    std::fs::remove_file(mirror.root().join("index/config.json")).unwrap();
    assert_eq!(server.get("/index/config.json").await.status(), 404);
    mirror.write("index/config.json", b"[1, 2]");
    assert_eq!(server.get("/index/config.json").await.status(), 500);
}

#[tokio::test]
async fn bad_options_fail_before_serving() {
    let mirror = Mirror::new();
    for (dest, base_url, message) in [
        (
            mirror.root().join("nope"),
            None,
            "mirror directory {dest}: No such file or directory (os error 2)",
        ),
        (
            mirror.root().join("index/config.json"),
            None,
            "mirror directory {dest}: not a directory",
        ),
        (
            mirror.root(),
            Some("ftp://mirror.example"),
            r#"invalid base url "ftp://mirror.example": only http:// and https:// URLs are supported"#,
        ),
        (
            mirror.root(),
            Some("mirror.example"),
            r#"invalid base url "mirror.example": only http:// and https:// URLs are supported"#,
        ),
        (
            mirror.root(),
            Some("https://{crate}.example"),
            r#"invalid base url "https://{crate}.example": contains a brace"#,
        ),
        (
            mirror.root(),
            Some("https://user:pw@mirror.example"),
            r#"invalid base url "https://user:pw@mirror.example": may not hold a user name or password"#,
        ),
        (
            mirror.root(),
            Some("http://mirror.example:99999"),
            r#"invalid base url "http://mirror.example:99999": invalid port number"#,
        ),
        (
            mirror.root(),
            Some("http://mirror.example:0"),
            r#"invalid base url "http://mirror.example:0": port 0 is no port a client can connect to"#,
        ),
        (
            mirror.root(),
            Some("http://[::1"),
            r#"invalid base url "http://[::1": invalid IPv6 address"#,
        ),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let options = mirror_serve::ServeOptions {
            dest: dest.clone(),
            base_url: base_url.map(str::to_owned),
        };
        let error = mirror_serve::serve(listener, options, std::future::pending())
            .await
            .unwrap_err();
        let expected = message.replace("{dest}", &dest.display().to_string());
        assert_eq!(error.to_string(), expected);
    }
}
