//! Files read by `file` values, and policy files reached through symlinks, are
//! watched too.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{toml_string, Workspace};

use super::*;

// ---- (f) files read by `file` values ----

#[tokio::test]
async fn a_changed_value_file_is_served_within_two_seconds() {
    let ws = Workspace::new();
    let mounts = Workspace::new();
    ws.write("value.txt", "local-1");
    let mounted = mounts.write("secret", "mounted-1");
    ws.write(
        "policy.toml",
        format!(
            "[secrets.local]\nfile = \"value.txt\"\n\n[secrets.mounted]\nfile = {}\n\n\
             [secrets.both]\ntemplate = \"${{secret.local}}+${{secret.mounted}}@${{projectId}}\"\n\n\
             [[grants]]\nproject = \"p\"\nenv = {{ LOCAL = \"local\", MOUNTED = \"mounted\", BOTH = \"both\" }}\n",
            toml_string(&mounted.display().to_string())
        ),
    );
    let server = serve(&ws, "policy.toml");
    // A template that splices both follows them.
    let answer = |local: &str, mounted: &str| {
        json!({"secrets": [
            {"type": "ENV", "key": "BOTH", "value": format!("{local}+{mounted}@p")},
            {"type": "ENV", "key": "LOCAL", "value": local},
            {"type": "ENV", "key": "MOUNTED", "value": mounted},
        ]})
    };
    assert_eq!(answer_p(&server).await, answer("local-1", "mounted-1"));

    // Next to the policy.
    let at = Instant::now();
    ws.write("value.txt", "local-2");
    wait_for_p(&server, &answer("local-2", "mounted-1"), at).await;

    // In a folder of its own, absolute.
    let at = Instant::now();
    std::fs::write(&mounted, "mounted-2").unwrap();
    wait_for_p(&server, &answer("local-2", "mounted-2"), at).await;

    // A Kubernetes-style swap: the new content renamed over the file.
    let at = Instant::now();
    write_by_rename(&mounted, "..2024_01_01_tmp", "mounted-3");
    wait_for_p(&server, &answer("local-2", "mounted-3"), at).await;
}

#[tokio::test]
async fn a_value_file_named_only_by_a_newer_policy_is_watched_too() {
    let ws = Workspace::new();
    let later = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("literal"));
    let server = serve(&ws, "policy.toml");

    // The new policy reads a file in a folder nothing watched before.
    let file = later.write("late.txt", "late-1");
    let at = Instant::now();
    std::fs::write(
        &policy,
        format!(
            "[[grants]]\nproject = \"p\"\nenv = {{ KEY = {{ file = {} }} }}\n",
            toml_string(&file.display().to_string())
        ),
    )
    .unwrap();
    let want = |v: &str| -> Value { serde_json::from_str(&simple_answer(v)).unwrap() };
    wait_for_p(&server, &want("late-1"), at).await;

    let at = Instant::now();
    std::fs::write(&file, "late-2").unwrap();
    wait_for_p(&server, &want("late-2"), at).await;

    // A value file that goes missing fails the load; the last good value serves on.
    std::fs::remove_file(&file).unwrap();
    let failure = wait_for_failures(&server, 1).await;
    assert!(
        message(&failure).contains("late.txt"),
        "the failure names the file: {failure}"
    );
    keeps_serving(&server, &want("late-2"), Duration::from_millis(400)).await;
    assert!(
        !server.stderr().contains("late-2"),
        "values are never logged\n{}",
        server.diagnostics()
    );
}

// ---- edits that envoi must notice too ----

#[tokio::test]
async fn a_policy_file_reached_through_a_symlink_is_reloaded_when_its_target_changes() {
    let ws = Workspace::new();
    let repo = Workspace::new();
    let target = repo.write("checkout/policy.toml", simple_policy("one"));
    std::os::unix::fs::symlink(&target, ws.join("policy.toml")).unwrap();
    let server = serve(&ws, "policy.toml");
    let want = |v: &str| -> Value { serde_json::from_str(&simple_answer(v)).unwrap() };
    assert_eq!(answer_p(&server).await, want("one"));

    // `git pull` in the checkout the link points into.
    let at = Instant::now();
    std::fs::write(&target, simple_policy("two")).unwrap();
    wait_for_p(&server, &want("two"), at).await;
}

#[tokio::test]
async fn a_missing_value_file_created_after_a_failed_load_is_picked_up() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("one"));
    let server = serve(&ws, "policy.toml");

    // The policy names a file that is not there yet: the load fails...
    std::fs::write(
        &policy,
        "[[grants]]\nproject = \"p\"\nenv = { KEY = { file = \"arrives-later.txt\" } }\n",
    )
    .unwrap();
    let failure = wait_for_failures(&server, 1).await;
    assert!(message(&failure).contains("arrives-later.txt"), "{failure}");

    // ...and the file arriving (a secret mounted late) is the fix.
    let at = Instant::now();
    ws.write("arrives-later.txt", "arrived");
    wait_for_p(&server, &serde_json::from_str(&simple_answer("arrived")).unwrap(), at).await;
}

/// A policy file broken, then put back byte for byte: the reload finds nothing changed,
/// and the files the serving policy reads are still watched (the failed load, which
/// never got as far as its `file` values, had left only its own inputs watched).
#[tokio::test]
async fn value_files_stay_watched_after_a_failed_load_is_undone() {
    let ws = Workspace::new();
    let mounts = Workspace::new();
    let mounted = mounts.write("secret", "mounted-1");
    let text = format!(
        "[[grants]]\nproject = \"p\"\nenv = {{ KEY = {{ file = {} }} }}\n",
        toml_string(&mounted.display().to_string())
    );
    let policy = ws.write("policy.toml", &text);
    let server = serve(&ws, "policy.toml");
    let want = |v: &str| -> Value { serde_json::from_str(&simple_answer(v)).unwrap() };
    assert_eq!(answer_p(&server).await, want("mounted-1"));

    std::fs::write(&policy, format!("{text}oops = [\n")).unwrap();
    let says = |needle: &'static str| move |line: &Value| line.to_string().contains(needle);
    server
        .wait_for_log(
            Duration::from_secs(10),
            "of the failed load",
            says("the last good policy keeps serving"),
        )
        .await;
    std::fs::write(&policy, &text).unwrap();
    server
        .wait_for_log(
            Duration::from_secs(10),
            "of the unchanged reload",
            says("none: every file holds"),
        )
        .await;

    let at = Instant::now();
    std::fs::write(&mounted, "mounted-2").unwrap();
    wait_for_p(&server, &want("mounted-2"), at).await;
}

// ---- a policy folder replaced whole ----

/// Another folder renamed in at the policy folder's path: it is read, and watched from
/// then on (envoi kept watching the folder renamed away, and missed every later edit).
#[tokio::test]
async fn a_policy_folder_renamed_in_place_of_another_is_read_and_watched() {
    let ws = Workspace::new();
    ws.write("pol/a.toml", simple_policy("one"));
    let server = serve(&ws, "pol");
    let want = |v: &str| -> Value { serde_json::from_str(&simple_answer(v)).unwrap() };
    assert_eq!(answer_p(&server).await, want("one"));

    ws.write("pol.new/a.toml", simple_policy("two"));
    let at = Instant::now();
    std::fs::rename(ws.join("pol"), ws.join("pol.old")).unwrap();
    std::fs::rename(ws.join("pol.new"), ws.join("pol")).unwrap();
    wait_for_p(&server, &want("two"), at).await;

    let at = Instant::now();
    write_by_rename(&ws.join("pol/a.toml"), ".a.tmp", &simple_policy("three"));
    wait_for_p(&server, &want("three"), at).await;
}

/// A release-folder deploy: `current` is a symlink flipped to a new release by rename.
#[tokio::test]
async fn a_symlinked_policy_folder_flipped_to_a_new_release_is_read_and_watched() {
    let ws = Workspace::new();
    ws.write("rel/v1/a.toml", simple_policy("one"));
    ws.write("rel/v2/a.toml", simple_policy("two"));
    std::os::unix::fs::symlink("rel/v1", ws.join("current")).unwrap();
    let server = serve(&ws, "current");
    let want = |v: &str| -> Value { serde_json::from_str(&simple_answer(v)).unwrap() };
    assert_eq!(answer_p(&server).await, want("one"));

    let at = Instant::now();
    std::os::unix::fs::symlink("rel/v2", ws.join("current.new")).unwrap();
    std::fs::rename(ws.join("current.new"), ws.join("current")).unwrap();
    wait_for_p(&server, &want("two"), at).await;

    let at = Instant::now();
    write_by_rename(&ws.join("rel/v2/a.toml"), ".a.tmp", &simple_policy("three"));
    wait_for_p(&server, &want("three"), at).await;
}
