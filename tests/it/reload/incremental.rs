//! A reload that compiles only the policy files that changed: what it serves is what a
//! whole compile would, and whatever it cannot tell goes to the whole compile, which
//! names every problem (README, "Live reload").

use std::time::Instant;

use serde_json::json;

use crate::support::jwt::token;
use crate::support::Workspace;

use super::*;

const SECRETS: &str = "[secrets.shared]\nvalue = \"shared-1-c4\"\n";
const TEAM_A: &str =
    "[[grants]]\nname = \"a\"\nproject = \"a\"\nenv = { SHARED = \"shared\", OWN = { value = \"a-own-c4\" } }\n";
const TEAM_B: &str = "[[grants]]\nname = \"b\"\nproject = \"b\"\nenv = { OWN = { value = \"b-1-c4\" } }\n";

/// Waits for a `policy reloaded` line whose `compiled` field is `want`, and returns it.
async fn compiled_field(server: &Server, what: &str, want: &str) -> Value {
    server
        .wait_for_log(WITHIN, what, |l| {
            message(l) == "policy reloaded"
                && (l["compiled"].as_str().or_else(|| l["fields"]["compiled"].as_str()) == Some(want))
        })
        .await
}

/// The parsed answer for project `project`, with a 200 asserted.
async fn answer_of(server: &Server, project: &str) -> Value {
    let (status, body) = server.get(&token(project, "service", "api")).await;
    assert_eq!(status, 200, "{body}\n{}", server.diagnostics());
    serde_json::from_str(&body).unwrap()
}

/// Polls until `project`'s answer is `want`.
async fn wait_for(server: &Server, project: &str, want: &Value, since: Instant) {
    loop {
        if answer_of(server, project).await == *want {
            return;
        }
        if since.elapsed() > WITHIN {
            panic!(
                "{project} not served {want} within {WITHIN:?}; last: {}\n{}",
                answer_of(server, project).await,
                server.diagnostics()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_edit_of_one_file_compiles_that_file_and_serves_what_a_whole_compile_would() {
    let ws = Workspace::new();
    ws.write("policy.d/00-secrets.toml", SECRETS);
    ws.write("policy.d/10-a.toml", TEAM_A);
    let team_b = ws.write("policy.d/20-b.toml", TEAM_B);
    let server = serve(&ws, "policy.d");
    let a = |shared: &str| {
        json!({"secrets": [
            {"type": "ENV", "key": "OWN", "value": "a-own-c4"},
            {"type": "ENV", "key": "SHARED", "value": shared},
        ]})
    };
    assert_eq!(answer_of(&server, "a").await, a("shared-1-c4"));

    // Team b's file only: its grant changes, and a new grant uses the other file's secret.
    let at = Instant::now();
    write_by_rename(
        &team_b,
        ".20-b.toml.tmp",
        &format!("{TEAM_B}\n[[grants]]\nproject = \"c\"\nenv = {{ FROM_SHARED = \"shared\" }}\n")
            .replace("b-1-c4", "b-2-c4"),
    );
    wait_for(
        &server,
        "b",
        &json!({"secrets": [{"type": "ENV", "key": "OWN", "value": "b-2-c4"}]}),
        at,
    )
    .await;
    let line = compiled_field(&server, "a reload that compiled one file", "1 of 3 file(s)").await;
    let changes = line["changes"]
        .as_str()
        .or_else(|| line["fields"]["changes"].as_str())
        .unwrap_or_default();
    assert!(
        changes.starts_with("1 grant(s) added: ") && changes.ends_with("; 1 grant(s) changed: b"),
        "what changed is told: {line}"
    );
    assert_eq!(
        answer_of(&server, "c").await,
        json!({"secrets": [{"type": "ENV", "key": "FROM_SHARED", "value": "shared-1-c4"}]})
    );
    assert_eq!(
        answer_of(&server, "a").await,
        a("shared-1-c4"),
        "a kept grant serves as before"
    );

    // An edit that conflicts with a kept file's grant is refused, with the conflict named,
    // and the last good policy keeps serving.
    write_by_rename(
        &team_b,
        ".20-b.toml.tmp",
        "[[grants]]\nproject = \"a\"\nenv = { OWN = { value = \"stolen-c4\" } }\n",
    );
    let failure = wait_for_failures(&server, 1).await;
    assert!(
        failure.to_string().contains("equal specificity"),
        "the conflict is named: {failure}"
    );
    keeps_serving_a(&server, &a("shared-1-c4")).await;

    // An edit that names a secret nobody defines is refused too.
    write_by_rename(
        &team_b,
        ".20-b.toml.tmp",
        "[[grants]]\nproject = \"b\"\nenv = { OWN = \"nowhere\" }\n",
    );
    let failure = wait_for_failures(&server, 2).await;
    assert!(failure.to_string().contains("`nowhere`"), "{failure}");

    // The file that defines the secret: compiled whole, and every grant follows it.
    let at = Instant::now();
    ws.write("policy.d/20-b.toml", TEAM_B);
    write_by_rename(
        &ws.join("policy.d/00-secrets.toml"),
        ".00-secrets.toml.tmp",
        &SECRETS.replace("shared-1-c4", "shared-2-c4"),
    );
    wait_for(&server, "a", &a("shared-2-c4"), at).await;
    compiled_field(&server, "a whole compile", "3 of 3 file(s)").await;
    let logs = server.stderr();
    for value in ["shared-1-c4", "shared-2-c4", "b-2-c4", "stolen-c4", "a-own-c4"] {
        assert!(!logs.contains(value), "`{value}` was logged\n{logs}");
    }
}

/// Project `a` keeps being served `want` for a while.
async fn keeps_serving_a(server: &Server, want: &Value) {
    let until = Instant::now() + std::time::Duration::from_millis(300);
    while Instant::now() < until {
        assert_eq!(answer_of(server, "a").await, *want, "{}", server.diagnostics());
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
}
