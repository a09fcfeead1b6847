//! A broken edit keeps the last good policy serving; the failure is logged with every
//! problem named, and counted.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::Workspace;

use super::*;

// ---- (b) and (g): a broken edit keeps the last good policy ----

#[tokio::test]
async fn a_syntax_error_keeps_the_old_policy_and_the_fix_is_served() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("one"));
    let server = serve(&ws, "policy.toml");
    let one: Value = serde_json::from_str(&simple_answer("one")).unwrap();
    assert_eq!(answer_p(&server).await, one);

    // An unclosed table header on line 2.
    std::fs::write(&policy, "# broken\n[[grants\nproject = \"p\"\n").unwrap();
    let failure = wait_for_failures(&server, 1).await;
    assert_eq!(failures_field(&failure), Some(1), "the failure is counted: {failure}");
    assert!(
        message(&failure).contains("policy.toml:2"),
        "the failure names the file and line: {failure}"
    );
    keeps_serving(&server, &one, Duration::from_millis(600)).await;

    let fixed_at = Instant::now();
    std::fs::write(&policy, simple_policy("two")).unwrap();
    wait_for_p(&server, &serde_json::from_str(&simple_answer("two")).unwrap(), fixed_at).await;
    // Log lines are written in batches: the line may follow the answer by an interval.
    server
        .wait_for_log(Duration::from_secs(5), "saying the policy reloaded", |l| {
            message(l) == "policy reloaded"
        })
        .await;
}

#[tokio::test]
async fn a_conflict_keeps_the_old_policy_and_the_fix_is_served() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("one"));
    let server = serve(&ws, "policy.toml");
    let one: Value = serde_json::from_str(&simple_answer("one")).unwrap();
    assert_eq!(answer_p(&server).await, one);

    // Two grants of equal specificity give KEY different values.
    std::fs::write(
        &policy,
        "[[grants]]\nname = \"left\"\nproject = \"p\"\nenv = { KEY = { value = \"left-value\" } }\n\n\
         [[grants]]\nname = \"right\"\nproject = \"p\"\nenv = { KEY = { value = \"right-value\" } }\n",
    )
    .unwrap();
    let failure = wait_for_failures(&server, 1).await;
    for name in ["left", "right", "KEY"] {
        assert!(
            message(&failure).contains(name),
            "the conflict names `{name}`: {failure}"
        );
    }
    assert!(
        !server.stderr().contains("left-value") && !server.stderr().contains("right-value"),
        "values are never logged\n{}",
        server.diagnostics()
    );
    keeps_serving(&server, &one, Duration::from_millis(600)).await;

    let fixed_at = Instant::now();
    std::fs::write(&policy, simple_policy("two")).unwrap();
    wait_for_p(&server, &serde_json::from_str(&simple_answer("two")).unwrap(), fixed_at).await;
}

#[tokio::test]
async fn a_failed_load_names_every_problem_and_is_counted() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("one"));
    let server = serve(&ws, "policy.toml");
    let one: Value = serde_json::from_str(&simple_answer("one")).unwrap();

    // Three problems at once.
    std::fs::write(
        &policy,
        "[secrets.from_env]\nenv = \"ENVOI_TEST_SURELY_UNSET_VARIABLE\"\n\n\
         [secrets.from_file]\nfile = \"no-such-file.txt\"\n\n\
         [[grants]]\nname = \"g\"\nproject = \"p\"\nenv = { KEY = \"nosuchsecret\", E = \"from_env\", F = \"from_file\" }\n",
    )
    .unwrap();
    let first = wait_for_failures(&server, 1).await;
    for name in ["ENVOI_TEST_SURELY_UNSET_VARIABLE", "no-such-file.txt", "nosuchsecret"] {
        assert!(message(&first).contains(name), "the failure names `{name}`: {first}");
    }
    assert_eq!(failures_field(&first), Some(1), "{first}");
    keeps_serving(&server, &one, Duration::from_millis(300)).await;

    // Another broken edit: the counter goes on.
    std::fs::write(&policy, "[[grants]]\nproject = \"p\"\nbogus_field = 1\n").unwrap();
    let second = wait_for_failures(&server, 2).await;
    assert_eq!(failures_field(&second), Some(2), "{second}");
    assert!(message(&second).contains("bogus_field"), "{second}");
    keeps_serving(&server, &one, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_broken_file_in_a_policy_folder_never_leaves_half_a_policy_serving() {
    let ws = Workspace::new();
    ws.write(
        "policy.d/10-a.toml",
        "[[grants]]\nname = \"a\"\nproject = \"p\"\nenv = { A = { value = \"a1\" } }\n",
    );
    let b = ws.write(
        "policy.d/20-b.toml",
        "[[grants]]\nname = \"b\"\nproject = \"p\"\nenv = { B = { value = \"b1\" } }\n",
    );
    let server = serve(&ws, "policy.d");
    let both = json!({"secrets": [
        {"type": "ENV", "key": "A", "value": "a1"},
        {"type": "ENV", "key": "B", "value": "b1"},
    ]});
    assert_eq!(answer_p(&server).await, both);

    // One file of two breaks: the whole policy stays as it was, not just file a.
    std::fs::write(
        &b,
        "[[grants]]\nname = \"b\"\nproject = \"p\"\nenv = { B = \"undefined_secret\" }\n",
    )
    .unwrap();
    let failure = wait_for_failures(&server, 1).await;
    assert!(message(&failure).contains("undefined_secret"), "{failure}");
    keeps_serving(&server, &both, Duration::from_millis(600)).await;

    // The file removed altogether is a valid, smaller policy: served.
    let removed_at = Instant::now();
    std::fs::remove_file(&b).unwrap();
    wait_for_p(
        &server,
        &json!({"secrets": [{"type": "ENV", "key": "A", "value": "a1"}]}),
        removed_at,
    )
    .await;
}

#[tokio::test]
async fn a_policy_file_that_disappears_keeps_the_old_policy_serving() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("one"));
    let server = serve(&ws, "policy.toml");
    let one: Value = serde_json::from_str(&simple_answer("one")).unwrap();

    std::fs::remove_file(&policy).unwrap();
    wait_for_failures(&server, 1).await;
    keeps_serving(&server, &one, Duration::from_millis(600)).await;

    // Back, with a new value.
    let back_at = Instant::now();
    std::fs::write(&policy, simple_policy("two")).unwrap();
    wait_for_p(&server, &serde_json::from_str(&simple_answer("two")).unwrap(), back_at).await;
}
