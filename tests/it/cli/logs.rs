//! Nothing secret in the logs (SPEC §7), while the audit trail is there (SPEC §6): a
//! server at debug level with JSON logs takes a run of good and hostile requests, and
//! everything it printed is searched afterwards.

use serde_json::Value;

use crate::support::{jwt, Server, Workspace};

const SIGNING_KEY: &str = "signing-key-never-logged-0c7e5d94";
const OTHER_KEY: &str = "attacker-key-1b3f9e";
const LITERAL: &str = "literal-secret-3f9a1c";
const INLINE: &str = "inline-secret-52e8b7";
const FROM_ENV: &str = "env-secret-77d2e0";
const FROM_FILE: &str = "file-secret-b81c44";

const POLICY: &str = r#"
[secrets.literal]
value = "literal-secret-3f9a1c"

[secrets.from_env]
env = "ENVOI_TEST_LEAK_VARIABLE"

[secrets.from_file]
file = "secrets/db_password"

[[grants]]
name = "leaky-api"
project = "leak"
type = "service"
id = "api"
env = { LITERAL_KEY = "literal", ENV_KEY = "from_env", INLINE_KEY = { value = "inline-secret-52e8b7" } }

[[grants.files]]
path = "/etc/leak/db_password"
secret = "from_file"
mode = "0400"
"#;

#[tokio::test]
async fn logs_at_debug_level_carry_the_audit_trail_and_no_secret_token_or_key() {
    let ws = Workspace::new();
    ws.write("secrets/db_password", format!("{FROM_FILE}\n"));
    let policy = ws.write("policy.toml", POLICY);
    ws.config_with_key(SIGNING_KEY, &policy);
    let mut server = Server::start(
        ws.path(),
        &["serve", "--config", "envoi.toml"],
        &[
            ("ENVOI__LOG__FORMAT", "json"),
            ("ENVOI__LOG__LEVEL", "debug"),
            ("ENVOI_TEST_LEAK_VARIABLE", FROM_ENV),
        ],
    );

    let now = jwt::now();
    let valid = jwt::sign(SIGNING_KEY, &jwt::claims("leak", "service", "api", now, now + 600));
    let expired = jwt::sign(
        SIGNING_KEY,
        &jwt::claims("leak", "service", "api", now - 7200, now - 3600),
    );
    let forged = jwt::sign(OTHER_KEY, &jwt::claims("leak", "service", "api", now, now + 600));
    let garbage = "garbage-not-a-jwt-9d0e";
    let tokens = [valid.as_str(), expired.as_str(), forged.as_str(), garbage];

    let client = reqwest::Client::new();
    let base = server.base.clone();
    let cases = [
        ("valid", client.get(format!("{base}/")).bearer_auth(&valid), 200),
        ("expired", client.get(format!("{base}/")).bearer_auth(&expired), 401),
        (
            "bad signature",
            client.get(format!("{base}/")).bearer_auth(&forged),
            401,
        ),
        ("garbage", client.get(format!("{base}/")).bearer_auth(garbage), 401),
        (
            "basic scheme",
            client.get(format!("{base}/")).basic_auth("leak", Some(&valid)),
            401,
        ),
        ("POST", client.post(format!("{base}/")).bearer_auth(&valid), 405),
        // A careless client may put the token in a path or a query string.
        (
            "404 with token in query",
            client.get(format!("{base}/nope?token={valid}")),
            404,
        ),
        ("404 with token in path", client.get(format!("{base}/{valid}")), 404),
    ];
    let mut delivered = String::new();
    for (name, request, expected) in cases {
        let response = request.send().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(response.status().as_u16(), expected, "{name}");
        let body = response.text().await.unwrap();
        if expected == 200 {
            delivered = body;
        } else {
            for token in tokens {
                assert!(!body.contains(token), "{name}: the error body echoes a token: {body}");
            }
        }
    }
    // The values did go out, so their absence from the logs below means something.
    for value in [LITERAL, INLINE, FROM_ENV, FROM_FILE] {
        assert!(delivered.contains(value), "{value} was served: {delivered}");
    }

    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.output());
    let (stdout, stderr) = (server.stdout(), server.stderr());
    let everything = format!("{stdout}\n{stderr}");

    let mut forbidden = vec![
        ("the signing key", SIGNING_KEY.to_owned()),
        ("the attacker's key", OTHER_KEY.to_owned()),
        ("the literal value", LITERAL.to_owned()),
        ("the inline value", INLINE.to_owned()),
        ("the environment value", FROM_ENV.to_owned()),
        ("the file value", FROM_FILE.to_owned()),
    ];
    for (name, token) in [("valid", &valid), ("expired", &expired), ("forged", &forged)] {
        forbidden.push((name, token.clone()));
        // A signature alone is enough to be worried about.
        forbidden.push((name, token.rsplit('.').next().unwrap().to_owned()));
    }
    forbidden.push(("the garbage token", garbage.to_owned()));
    for (what, text) in &forbidden {
        assert!(
            !everything.contains(text.as_str()),
            "{what} appears in the output:\n{everything}"
        );
    }

    // Every log line is JSON, on stderr.
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let audit: Vec<&Value> = lines.iter().filter(|l| l["target"] == "envoi::audit").collect();

    let served = audit
        .iter()
        .find(|l| l["status"] == 200)
        .unwrap_or_else(|| panic!("no audit line for the 200\n{stderr}"));
    assert_eq!(served["project"], "leak", "{served}");
    assert_eq!(served["type"], "service", "{served}");
    assert_eq!(served["id"], "api", "{served}");
    // A JSON array of names, in the answer's order.
    assert_eq!(
        served["given"],
        serde_json::json!([
            "ENV:ENV_KEY",
            "ENV:INLINE_KEY",
            "ENV:LITERAL_KEY",
            "FILE:/etc/leak/db_password"
        ]),
        "{served}"
    );

    let refused = audit.iter().filter(|l| l["status"] == 401).count();
    assert!(
        refused >= 4,
        "one audit line per refused token, {refused} found\n{stderr}"
    );

    // SPEC §6: each request has its span, with the method and its own request id.
    let mut request_ids = std::collections::HashSet::new();
    for line in &audit {
        let span = &line["span"];
        assert_eq!(span["name"], "request", "{line}");
        assert!(span["method"] == "GET" || span["method"] == "POST", "{line}");
        let id = span["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id: {line}"));
        assert_eq!((id.len(), id.matches('-').count()), (36, 4), "a UUID: {line}");
        assert!(request_ids.insert(id.to_owned()), "request ids repeat: {line}");
    }
}

const PRETTY_POLICY: &str = r#"
[[grants]]
name = "acme-api"
project = "acme"
type = "service"
id = "*"
env = { MODE = { value = "production" } }
"#;

/// `envoi serve` on [`PRETTY_POLICY`], with `env` added; the workspace must outlive it.
fn serve_acme(ws: &Workspace, env: &[(&str, &str)]) -> Server {
    let policy = ws.write("policy.toml", PRETTY_POLICY);
    ws.config_with_key(SIGNING_KEY, &policy);
    Server::start(ws.path(), &["serve", "--config", "envoi.toml"], env)
}

/// The status of `GET /` for the workload `acme/service/ID`.
async fn get_acme(server: &Server, id: &str) -> u16 {
    let now = jwt::now();
    let token = jwt::sign(SIGNING_KEY, &jwt::claims("acme", "service", id, now, now + 600));
    let response = reqwest::Client::new()
        .get(format!("{}/", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET / for acme/service/{id}: {e}"));
    response.status().as_u16()
}

/// The text of `stderr` once `done` holds of it, within two seconds.
async fn stderr_when(server: &Server, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let stderr = server.stderr();
        if done(&stderr) || std::time::Instant::now() > deadline {
            return stderr;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Checks one pretty audit line field by field:
/// `2026-11-24T18:41:24.816971Z  INFO request{method=GET request_id=…}: envoi::audit: secrets served …`.
fn assert_pretty_audit_line(line: &str, fields: &str) {
    let (timestamp, rest) = line.split_at(27);
    let digits = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..26];
    for range in digits {
        assert!(
            timestamp[range.clone()].bytes().all(|b| b.is_ascii_digit()),
            "digits at {range:?}: {line}"
        );
    }
    for (at, separator) in [
        (4, '-'),
        (7, '-'),
        (10, 'T'),
        (13, ':'),
        (16, ':'),
        (19, '.'),
        (26, 'Z'),
    ] {
        assert_eq!(timestamp.as_bytes()[at], separator as u8, "separator at {at}: {line}");
    }
    let rest = rest
        .strip_prefix("  INFO request{method=GET request_id=")
        .unwrap_or_else(|| panic!("level and span: {line}"));
    let (request_id, rest) = rest.split_at(36);
    assert_eq!(request_id.matches('-').count(), 4, "a UUID request id: {line}");
    assert_eq!(rest, format!("}}: envoi::audit: secrets served {fields}"), "{line}");
}

/// The pretty format's audit line, and its batching (`log.flush_interval_ms`): answers'
/// lines wait for the interval, a warning is written at once after them, and a normal
/// exit writes whatever still waits. No line is lost or reordered.
#[tokio::test]
async fn pretty_audit_lines_are_batched_kept_in_order_and_written_at_exit() {
    let ws = Workspace::new();
    let mut server = serve_acme(&ws, &[("ENVOI__LOG__FLUSH_INTERVAL_MS", "60000")]);
    // A quote and a backslash in a claim are escaped, so a value cannot fake a field.
    let odd_id = r#"we"ird\id"#;

    assert_eq!(get_acme(&server, "api").await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !server.stderr().contains("secrets served"),
        "the audit line waits for its batch:\n{}",
        server.stderr()
    );

    let refused = reqwest::Client::new()
        .get(format!("{}/", server.base))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let stderr = stderr_when(&server, |s| s.contains("token refused")).await;
    let served_at = stderr
        .find("secrets served")
        .unwrap_or_else(|| panic!("a warning writes the batch:\n{stderr}"));
    let refused_at = stderr.find("token refused").expect("the warning is written at once");
    assert!(served_at < refused_at, "lines keep their order:\n{stderr}");

    assert_eq!(get_acme(&server, odd_id).await, 200);
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.output());
    let stderr = server.stderr();
    let served: Vec<&str> = stderr.lines().filter(|l| l.contains("secrets served")).collect();
    assert_eq!(served.len(), 2, "the exit writes the waiting line:\n{stderr}");
    assert_pretty_audit_line(
        served[0],
        r#"project="acme" type="service" id="api" status=200 given=ENV:MODE"#,
    );
    assert_pretty_audit_line(
        served[1],
        r#"project="acme" type="service" id="we\"ird\\id" status=200 given=ENV:MODE"#,
    );
    assert!(
        stderr.find(served[1]).unwrap() > refused_at,
        "lines keep their order:\n{stderr}"
    );
}

/// With the default interval the batch is written by itself, without another request
/// or an exit to push it out.
#[tokio::test]
async fn batched_audit_lines_are_written_within_the_interval() {
    let ws = Workspace::new();
    let server = serve_acme(&ws, &[]);
    assert_eq!(get_acme(&server, "api").await, 200);
    let stderr = stderr_when(&server, |s| s.contains("secrets served")).await;
    assert!(stderr.contains("secrets served"), "no audit line within 2 s:\n{stderr}");
}

/// JSON lines stay JSON whatever a claim holds, and carry it back exactly.
#[tokio::test]
async fn json_audit_lines_escape_claims_and_parse_back_exactly() {
    let ws = Workspace::new();
    let mut server = serve_acme(&ws, &[("ENVOI__LOG__FORMAT", "json")]);
    let odd_id = r#"we"ird\id é {"x":1}"#;
    assert_eq!(get_acme(&server, odd_id).await, 200);
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.output());
    let stderr = server.stderr();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let served = lines
        .iter()
        .find(|l| l["message"] == "secrets served")
        .unwrap_or_else(|| panic!("no audit line:\n{stderr}"));
    assert_eq!(served["id"], odd_id, "{served}");
    assert_eq!(served["status"], 200, "{served}");
    assert_eq!(served["level"], "INFO", "{served}");
    assert_eq!(served["target"], "envoi::audit", "{served}");
    assert_eq!(served["given"], serde_json::json!(["ENV:MODE"]), "{served}");
    assert_eq!(served["span"]["name"], "request", "{served}");
}

/// The `listening` line of `serve`: `server` started with `env`, stopped, its JSON lines.
fn listening_line(ws: &Workspace, env: &[(&str, &str)]) -> Value {
    let mut server = serve_acme(ws, &[&[("ENVOI__LOG__FORMAT", "json")], env].concat());
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.output());
    let stderr = server.stderr();
    stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .find(|l| l["message"] == "listening")
        .unwrap_or_else(|| panic!("no listening line:\n{stderr}"))
}

/// JSON lines carry values as JSON values: an address or null, not Rust's
/// `Some(127.0.0.1:9090)` or `None`.
#[test]
fn json_lines_write_an_address_or_null_and_never_rusts_debug() {
    let ws = Workspace::new();
    let line = listening_line(&ws, &[]);
    assert_eq!(line["admin"], Value::Null, "{line}");
    assert!(
        line["address"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{line}"
    );

    let admin = format!("127.0.0.1:{}", crate::support::free_port());
    let line = listening_line(&ws, &[("ENVOI__SERVER__ADMIN_LISTEN", &admin)]);
    assert_eq!(line["admin"], Value::String(admin), "{line}");
    assert!(!line.to_string().contains("Some("), "{line}");
}
