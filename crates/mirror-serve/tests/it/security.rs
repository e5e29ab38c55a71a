//! What is never served: unknown paths, traversal in every spelling, `.mirror`, dot-files, and
//! symlinks that lead outside the mirror's public files.

use crate::{Mirror, Server};

/// Sends each request target raw and checks that it is refused without leaking a private byte.
/// hyper passes all of these to the router as they are, so each is the router's 404.
async fn check_refused(server: &Server, targets: &[&str]) {
    for target in targets {
        let (status, body) = server.raw_get(target).await;
        assert_eq!(status, 404, "{target}");
        let body = String::from_utf8_lossy(&body);
        assert!(
            !body.contains("private") && !body.contains("outside") && !body.contains("dl"),
            "{target}: leaked {body:?}"
        );
    }
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let mirror = Mirror::new();
    mirror.write("index/se/rd/serde", b"{}\n");
    mirror.write("crates/se/rd/serde/serde-1.0.0.crate", b"crate");
    mirror.write("index/se/rd/serde.tmp", b"half written");
    mirror.write(
        "crates/se/rd/serde/serde-1.0.0.crate.part",
        b"half downloaded",
    );
    mirror.write("README", b"readme");
    let server = mirror.serve().await;
    for path in [
        "/",
        "/README",
        "/index",
        "/index/",
        "/index/se",
        "/index/se/rd",
        "/index/se/rd/",
        "/index/se/rd/serde/",
        "/index/se/rd/serde.tmp",
        "/index/se/rd/nope",
        "/index/config.json/x",
        "/crates",
        "/crates/se/rd/serde",
        "/crates/se/rd/serde/",
        "/crates/se/rd/serde/serde-1.0.0.crate.part",
        "/crates/se/rd/serde/serde-2.0.0.crate",
        "/api/v1/crates",
        "/crates/serde/1.0.0/download",
    ] {
        assert_eq!(server.get(path).await.status(), 404, "{path}");
    }
    assert_eq!(server.get("/index/se/rd/serde").await.status(), 200);
    assert_eq!(
        server
            .get("/crates/se/rd/serde/serde-1.0.0.crate")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn traversal_is_refused_in_every_spelling() {
    let mirror = Mirror::new();
    mirror.write("index/se/rd/serde", b"{}\n");
    let server = mirror.serve().await;
    check_refused(
        &server,
        &[
            "/crates/../.mirror/state",
            "/index/../.mirror/state",
            "/index/../../secret",
            "/index/%2e%2e/.mirror/state",
            "/index/%2E%2E/%2E%2E/secret",
            "/crates/%2e%2e/%2e%2e/secret",
            "/index/..%2F..%2Fsecret",
            "/index/..%2f.mirror%2fstate",
            "/index/se/rd/..%5C..%5C..%5Csecret",
            "/index\\..\\..\\secret",
            "/index/se/rd/serde%00",
            "/index/./se/rd/serde",
            "/index/se/./rd/serde",
            "/index//se/rd/serde",
            "//.mirror/state",
            "/%2e%2e/secret",
            "/index/%252e%252e/secret",
            "http://localhost/index/../.mirror/state",
            "*",
        ],
    )
    .await;
    // The same file through a clean path, to show the server answers raw requests at all.
    assert_eq!(
        server.raw_get("/index/se/rd/serde").await,
        (200, b"{}\n".to_vec())
    );
}

#[tokio::test]
async fn private_data_and_dot_files_are_never_served() {
    let mirror = Mirror::new();
    mirror.write(".mirror/tmp/serde-1.0.0.crate", b"private download");
    mirror.write("index/.mirror/state", b"private");
    mirror.write("index/se/rd/.serde", b"private");
    mirror.write("crates/se/rd/serde/.serde-1.0.0.crate", b"private");
    let server = mirror.serve().await;
    check_refused(
        &server,
        &[
            "/.mirror/state",
            "/.mirror/tmp/serde-1.0.0.crate",
            "/%2emirror/state",
            "/index/.mirror/state",
            "/index/se/rd/.serde",
            "/crates/.mirror/state",
            "/crates/se/rd/serde/.serde-1.0.0.crate",
        ],
    )
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_may_not_lead_outside_the_public_files() {
    use std::os::unix::fs::symlink;

    let mirror = Mirror::new();
    let root = mirror.root();
    let link = |target: &std::path::Path, rel: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    };
    let outside = mirror.parent.path().join("secret");
    link(&outside, "crates/ev/il/evil/evil-1.0.0.crate");
    link(&outside, "index/ev/il/evil");
    link(mirror.parent.path(), "crates/ou/ts/outside");
    link(&root.join(".mirror/state"), "index/st/at/state");
    link(&root.join(".mirror"), "crates/1/m/m-1.0.0.crate");
    // Files under the mirror but outside its public trees: the private state, anything else an
    // operator keeps beside them, and files of the other tree.
    mirror.write(".mirror/quarantine/conf", b"private state");
    link(
        &root.join(".mirror/quarantine/conf"),
        "crates/co/nf/conf/conf-1.0.0.crate",
    );
    mirror.write("notes/private.txt", b"private notes");
    link(
        &root.join("notes/private.txt"),
        "crates/pr/iv/private/private-1.0.0.crate",
    );
    link(&root.join("notes/private.txt"), "index/pr/iv/private");
    link(
        &root.join("index/config.json"),
        "crates/2/co/co-1.0.0.crate",
    );
    // A symlink to another public file of the mirror is fine.
    let real = mirror.write("crates/re/al/real/real-1.0.0.crate", b"real");
    link(&real, "crates/al/ia/alias/alias-1.0.0.crate");

    let server = mirror.serve().await;
    check_refused(
        &server,
        &[
            "/crates/ev/il/evil/evil-1.0.0.crate",
            "/index/ev/il/evil",
            "/crates/ou/ts/outside/secret",
            "/index/st/at/state",
            "/crates/1/m/m-1.0.0.crate",
            "/crates/co/nf/conf/conf-1.0.0.crate",
            "/crates/pr/iv/private/private-1.0.0.crate",
            "/index/pr/iv/private",
            "/crates/2/co/co-1.0.0.crate",
        ],
    )
    .await;
    assert_eq!(
        server
            .raw_get("/crates/al/ia/alias/alias-1.0.0.crate")
            .await,
        (200, b"real".to_vec())
    );
}
