//! `envoi fetch` through the built binary against a real `envoi serve` (SPEC §8): each
//! format with hostile values, the token sources, and the retry rules.

use std::time::{Duration, Instant};

use crate::support::{free_port, jwt, raw_http, Ran, Server, Workspace};

const KEY: &str = "fetch-test-shared-secret";

/// Values that break naive quoting: every one must come back exactly.
const VALUES: &[(&str, &str)] = &[
    ("QUOTES", "it's \"quoted\" ''"),
    ("NEWLINES", "line one\nline two\n\n"),
    ("DOLLAR", "$HOME $(touch pwned) `touch pwned` ${X:-y} $"),
    ("BACKSLASH", "a\\b\\\\n\\"),
    ("MIXED", "\t'\\'\"$\r\n é ∑ 🦀 \\'"),
    ("EMPTY", ""),
];

fn policy() -> String {
    let mut env = String::new();
    for (key, value) in VALUES {
        env.push_str(&format!(
            "{key} = {{ value = {} }}, ",
            crate::support::toml_string(value)
        ));
    }
    format!(
        r#"
[secrets.blob]
file = "blob.bin"

[[grants]]
name = "web"
project = "shop"
type = "service"
id = "web"
env = {{ {} }}

[[grants.files]]
path = "/etc/shop/blob.bin"
secret = "blob"
mode = "0400"
"#,
        env.trim_end_matches(", ")
    )
}

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("blob.bin", [0xff, 0xfe, 0x00, b'\'', b'\n', 0x80]);
    let policy = ws.write("policy.toml", policy());
    ws.config_with_key(KEY, &policy);
    ws
}

fn serve(ws: &Workspace) -> Server {
    Server::start(ws.path(), &["serve", "--config", "envoi.toml"], &[])
}

fn token() -> String {
    let now = jwt::now();
    jwt::sign(KEY, &jwt::claims("shop", "service", "web", now, now + 600))
}

/// `envoi fetch --url URL --token-file token ARGS`, its raw output kept.
fn fetch(ws: &Workspace, url: &str, args: &[&str]) -> std::process::Output {
    ws.write("token", format!("{}\n", token()));
    ws.envoi(["fetch", "--url", url, "--token-file", "token"])
        .args(args)
        .output()
        .expect("envoi runs")
}

#[test]
fn fetch_json_is_the_protocol_body_byte_for_byte() {
    let ws = workspace();
    let server = serve(&ws);
    let direct = raw_http::get(server.address(), "/", Some(&token()), Duration::from_secs(5)).unwrap();
    assert_eq!(direct.status, 200, "{}", server.output());

    let out = fetch(&ws, &server.base, &["--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        out.stdout, direct.body,
        "json is the body as received, FILE items included"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("/etc/shop/blob.bin"));
}

#[test]
fn fetch_shell_round_trips_every_value_through_sh() {
    let ws = workspace();
    let server = serve(&ws);
    let out = fetch(&ws, &format!("{}/", server.base), &["--format", "shell"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(
        !script.contains("blob"),
        "FILE items are not in the shell output:\n{script}"
    );

    for (key, value) in VALUES {
        // As `sh -c "$(envoi fetch --format shell ...); printf %s \"$KEY\""` would run it.
        let shell = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{script}\nprintf %s \"${key}\""))
            .current_dir(ws.path())
            .output()
            .expect("sh runs");
        assert!(
            shell.status.success(),
            "{key}: {}",
            String::from_utf8_lossy(&shell.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&shell.stdout), *value, "{key} round-trips");
    }
    assert!(!ws.join("pwned").exists(), "nothing in a value was executed");
}

#[test]
fn fetch_dotenv_escapes_as_the_readme_says() {
    let ws = workspace();
    let server = serve(&ws);
    let out = fetch(&ws, &server.base, &["--format", "dotenv"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("QUOTES=\"it's \\\"quoted\\\" ''\"\n"), "{text}");
    assert!(text.contains("NEWLINES=\"line one\\nline two\\n\\n\"\n"), "{text}");
    assert!(text.contains("BACKSLASH=\"a\\\\b\\\\\\\\n\\\\\"\n"), "{text}");
    assert!(
        text.contains("DOLLAR=\"\\$HOME \\$(touch pwned) \\`touch pwned\\` \\${X:-y} \\$\"\n"),
        "{text}"
    );
    assert!(text.contains("EMPTY=\"\"\n"), "{text}");
    assert_eq!(text.lines().count(), VALUES.len(), "one line per ENV item:\n{text}");
}

#[test]
fn fetch_mints_a_token_from_the_config_or_reads_one_from_a_variable() {
    let ws = workspace();
    let server = serve(&ws);
    let minted = Ran::of(ws.envoi([
        "fetch",
        "--config",
        "envoi.toml",
        "--url",
        server.base.as_str(),
        "--format",
        "dotenv",
        "--project",
        "shop",
        "--type",
        "service",
        "--id",
        "web",
    ]))
    .success();
    minted.stdout_names("EMPTY=\"\"");

    let from_env = Ran::of(
        ws.envoi(["fetch", "--url", server.base.as_str(), "--token-env", "MY_TOKEN"])
            .env("MY_TOKEN", token()),
    )
    .success();
    from_env.stdout_names("\"secrets\"");

    Ran::of(ws.envoi(["fetch", "--url", server.base.as_str(), "--token-env", "UNSET_TOKEN"]))
        .failure()
        .stderr_names("UNSET_TOKEN");
}

#[test]
fn a_401_is_not_retried_and_names_the_refusal_without_the_token() {
    let ws = workspace();
    let server = serve(&ws);
    let now = jwt::now();
    let forged = jwt::sign("not-the-key", &jwt::claims("shop", "service", "web", now, now + 600));
    ws.write("token", &forged);
    let started = Instant::now();
    let ran = Ran::of(ws.envoi([
        "fetch",
        "--url",
        server.base.as_str(),
        "--token-file",
        "token",
        "--retry-for",
        "20s",
    ]))
    .failure();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a 401 is final: {:?}",
        started.elapsed()
    );
    ran.stderr_names("401").stderr_names("not retried").never_shows(&forged);
    assert!(ran.stdout.is_empty(), "{ran}");
}

#[test]
fn a_server_that_is_down_is_retried_until_retry_for_then_named() {
    let ws = workspace();
    ws.write("token", token());
    let url = format!("http://localhost:{}/", free_port());
    let started = Instant::now();
    let ran = Ran::of(ws.envoi([
        "fetch",
        "--url",
        url.as_str(),
        "--token-file",
        "token",
        "--retry-for",
        "2s",
    ]))
    .failure();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "retried for --retry-for: {took:?}\n{ran}"
    );
    assert!(took < Duration::from_secs(8), "and not much longer: {took:?}\n{ran}");
    ran.stderr_names("localhost")
        .stderr_names("--retry-for")
        .stderr_names("attempt");
    ran.never_shows(&token());
}

#[test]
fn bad_flags_are_refused_before_any_request() {
    let ws = workspace();
    ws.write("token", token());
    Ran::of(ws.envoi(["fetch", "--url", "ftp://example/", "--token-file", "token"]))
        .failure()
        .stderr_names("--url");
    Ran::of(ws.envoi(["fetch", "--url", "http://127.0.0.1:1/"]))
        .failure()
        .stderr_names("--token-file");
    Ran::of(ws.envoi([
        "fetch",
        "--url",
        "https://127.0.0.1:1/",
        "--token-file",
        "token",
        "--cafile",
        "missing.pem",
    ]))
    .failure()
    .stderr_names("missing.pem");
    Ran::of(ws.envoi(["fetch", "--url", "http://127.0.0.1:1/", "--token-file", "absent"]))
        .failure()
        .stderr_names("absent");
}

#[test]
fn a_server_that_comes_up_late_is_retried_and_its_answer_printed() {
    let ws = workspace();
    let port = free_port();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let url = format!("http://127.0.0.1:{port}/");
    std::thread::scope(|scope| {
        let fetching = scope.spawn(|| fetch(&ws, &url, &["--format", "dotenv", "--retry-for", "15s"]));
        std::thread::sleep(Duration::from_millis(1000));
        let server = Server::launch(ws.path())
            .args(["serve", "--config", "envoi.toml"])
            .env("ENVOI__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .ready_when(move |_| {
                raw_http::get(address, "/healthz", None, Duration::from_secs(2))
                    .is_ok_and(|answer| answer.status == 200)
            })
            .start();
        let out = fetching.join().expect("the fetch thread");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.output()
        );
        assert!(stdout.contains("EMPTY=\"\"\n"), "{stdout}");
    });
}
