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
    ws.config(SIGNING_KEY, &policy);
    let mut server = Server::start(
        ws.path(),
        &["serve", "--config", "envoi.toml"],
        &[
            ("ENVOI__LOG__FORMAT", "json"),
            ("ENVOI__LOG__LEVEL", "debug"),
            ("ENVOI_TEST_LEAK_VARIABLE", FROM_ENV),
        ],
    )
    .await;

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

    let status = server.terminate().await;
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
    let given = served["given"].as_str().unwrap_or_default();
    for name in ["ENV_KEY", "INLINE_KEY", "LITERAL_KEY", "/etc/leak/db_password"] {
        assert!(given.contains(name), "the audit line names {name}: {served}");
    }

    let refused = audit.iter().filter(|l| l["status"] == 401).count();
    assert!(
        refused >= 4,
        "one audit line per refused token, {refused} found\n{stderr}"
    );
}
