//! A reload's log line says what changed: counts and names of the grants added, removed
//! and changed, and of the secrets whose value changed, never a value.

use std::time::Instant;

use serde_json::json;

use crate::support::Workspace;

use super::*;

const BEFORE: &str = r#"[secrets.stripe_key]
value = "stripe-before-5e1d"

[[grants]]
name = "api"
project = "p"
env = { STRIPE_KEY = "stripe_key" }

[[grants]]
name = "retired"
project = "old"
env = { X = { value = "retired-5e1d" } }
"#;

const AFTER: &str = r#"[secrets.stripe_key]
value = "stripe-after-5e1d"

[[grants]]
name = "api"
project = "p"
env = { STRIPE_KEY = "stripe_key" }

[[grants]]
name = "fresh"
project = "new"
env = { Y = { value = "fresh-5e1d" } }
"#;

#[tokio::test]
async fn a_reload_logs_the_names_of_what_changed_and_no_value() {
    let ws = Workspace::new();
    let path = ws.write("policy.toml", BEFORE);
    let server = serve(&ws, "policy.toml");
    let edited = Instant::now();
    write_by_rename(&path, ".policy.toml.tmp", AFTER);
    let want = json!({"secrets": [{"type": "ENV", "key": "STRIPE_KEY", "value": "stripe-after-5e1d"}]});
    wait_for_p(&server, &want, edited).await;
    let line = server
        .wait_for_log(WITHIN, "`policy reloaded` naming its changes", |l| {
            message(l) == "policy reloaded"
        })
        .await;
    let changes = line["changes"]
        .as_str()
        .or_else(|| line["fields"]["changes"].as_str())
        .unwrap_or_else(|| panic!("no `changes` field: {line}"));
    assert_eq!(
        changes,
        "1 grant(s) added: fresh; 1 grant(s) removed: retired; 1 grant(s) changed: api; values changed of secret(s): stripe_key"
    );
    let logs = server.stderr() + &server.stdout();
    for value in ["stripe-before-5e1d", "stripe-after-5e1d", "retired-5e1d", "fresh-5e1d"] {
        assert!(!logs.contains(value), "`{value}` was logged\n{logs}");
    }
}
