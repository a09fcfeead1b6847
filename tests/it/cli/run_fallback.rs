//! `envoi run --fallback` through the built binary (SPEC §8): the last good answer kept
//! sealed, used when the server is down, refused when too old, copied to another
//! workload, or after a 401.

use std::time::Duration;

use crate::support::{jwt, FakeServer, Ran, Server, Workspace};

const POLICY: &str = r#"
[[grants]]
project = "shop"
type = "service"
id = "*"
env = { DB_PASSWORD = { value = "correct horse battery" } }

[[grants.files]]
path = "/conf"
value = "kept file"
"#;

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("policy.toml", POLICY);
    ws.config("policy.toml", &[]);
    let key = ws.run(&["keygen"], b"").success();
    ws.write("fallback.key", key.last_line());
    ws
}

/// `envoi run` as `id` of shop/service, keeping its fallback in `fallback.sealed`.
fn run(ws: &Workspace, url: &str, id: &str, extra: &[&str], marker: &str) -> Ran {
    ws.write("token", jwt::token("shop", "service", id));
    Ran::of(
        ws.envoi(["run", "--url", url, "--token-file", "token", "--retry-for", "1s"])
            .args(["--root", "root", "--fallback", "fallback.sealed"])
            .args(["--fallback-key-file", "fallback.key"])
            .args(extra)
            .args(["--", "sh", "-c", &format!(r#"printf %s "$DB_PASSWORD" > {marker}"#)]),
    )
}

#[test]
fn the_fallback_is_used_when_the_server_is_down_and_refused_when_too_old_or_another_workloads() {
    let ws = workspace();
    let mut server = Server::start(ws.path(), &["serve", "--config", "envoi.toml"], &[]);
    let url = format!("{}/", server.base);
    run(&ws, &url, "web", &[], "first").success();
    assert_eq!(ws.read("first"), "correct horse battery");
    let sealed = ws.read("fallback.sealed");
    assert!(
        !sealed.contains("correct horse") && !sealed.contains("kept file"),
        "sealed"
    );

    server.terminate();
    std::fs::remove_file(ws.join("root/conf")).unwrap();
    let ran = run(&ws, &url, "web", &[], "second").success();
    ran.stderr_names("fallback").stderr_names("--retry-for");
    ran.never_shows("correct horse");
    assert_eq!(ws.read("second"), "correct horse battery");
    assert_eq!(ws.read("root/conf"), "kept file", "its files are written too");

    // Another workload with the same key file: the copy does not open.
    let ran = run(&ws, &url, "api", &[], "third").failure();
    ran.stderr_names("shop/service/api").stderr_names("does not open");
    assert_eq!(ran.code, Some(1));
    assert!(!ws.join("third").exists());

    // Older than --fallback-max-age: refused. (The age is counted in whole seconds.)
    std::thread::sleep(Duration::from_millis(2100));
    let ran = run(&ws, &url, "web", &["--fallback-max-age", "1s"], "fourth").failure();
    ran.stderr_names("--fallback-max-age");
    assert!(!ws.join("fourth").exists());
}

#[test]
fn the_fallback_is_never_used_after_a_401_nor_without_its_key() {
    let ws = workspace();
    let server = Server::start(ws.path(), &["serve", "--config", "envoi.toml"], &[]);
    let url = format!("{}/", server.base);
    run(&ws, &url, "web", &[], "first").success();

    let refusing = FakeServer::answering(401, "{}");
    let ran = run(&ws, &refusing.url, "web", &[], "second").failure();
    ran.stderr_names("401");
    assert!(!ws.join("second").exists(), "a 401 is final, fallback or not");

    let failing = FakeServer::answering(503, "{}");
    run(&ws, &failing.url, "web", &[], "third").success();
    assert_eq!(
        ws.read("third"),
        "correct horse battery",
        "a 5xx after every retry is 'cannot be reached'"
    );

    ws.write("fallback.key", "not a key");
    let ran = run(&ws, &url, "web", &[], "fourth").failure();
    ran.stderr_names("--fallback-key-file");
    assert!(!ws.join("fourth").exists());
}
