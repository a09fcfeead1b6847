//! The edits that reload: SIGHUP, the ways editors save, and policy folders (a file
//! added, a Kubernetes volume swapped, a file moved in).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{toml_string, Workspace};

use super::*;

// ---- (c) SIGHUP ----

#[tokio::test]
async fn sighup_reloads_the_policy() {
    let ws = Workspace::new();
    // The value is read through a symbolic link whose target lives in a folder of its
    // own, which no watcher of the policy's folders needs to see.
    let elsewhere = Workspace::new();
    let target = elsewhere.write("real-value.txt", "hup-before-q7zx");
    std::os::unix::fs::symlink(&target, ws.join("value-link.txt")).unwrap();
    ws.write(
        "policy.toml",
        "[secrets.v]\nfile = \"value-link.txt\"\n\n[[grants]]\nproject = \"p\"\nenv = { V = \"v\" }\n",
    );
    let mut server = serve(&ws, "policy.toml");
    let answer = |v: &str| json!({"secrets": [{"type": "ENV", "key": "V", "value": v}]});
    assert_eq!(answer_p(&server).await, answer("hup-before-q7zx"));

    std::fs::write(&target, "hup-after-q7zx").unwrap();
    let hup_at = Instant::now();
    server.signal("HUP");
    wait_for_p(&server, &answer("hup-after-q7zx"), hup_at).await;
    let line = server
        .wait_for_log(WITHIN, "`policy reloaded` with trigger Signal", |l| {
            message(l) == "policy reloaded" && (l["trigger"] == "Signal" || l["fields"]["trigger"] == "Signal")
        })
        .await;
    assert!(line.to_string().contains("Signal"), "{line}");
    assert!(
        server.is_running(),
        "SIGHUP must not stop the server\n{}",
        server.diagnostics()
    );

    // A HUP with a broken policy: the failure is logged, the old policy serves on.
    ws.write("policy.toml", "[[grants]\n");
    std::fs::write(&target, "hup-ignored-q7zx").unwrap();
    server.signal("HUP");
    let failure = wait_for_failures(&server, 1).await;
    assert!(
        failure.to_string().contains("Signal"),
        "the failure names its trigger: {failure}"
    );
    keeps_serving(&server, &answer("hup-after-q7zx"), Duration::from_millis(300)).await;
    assert!(
        server.is_running(),
        "SIGHUP must not stop the server\n{}",
        server.diagnostics()
    );
    assert!(
        !server.stderr().contains("q7zx"),
        "values are never logged\n{}",
        server.diagnostics()
    );
}

/// A reload that finds every file holding what the serving policy was compiled from
/// keeps that policy without compiling it again, and says so in its line and in
/// `/metrics`. What decides is what the files hold, not their timestamps: a value file
/// rewritten to another value of the same length, its modification time then put back,
/// is served at the next reload.
#[tokio::test]
async fn a_reload_that_finds_every_file_as_it_was_keeps_the_policy_and_bytes_decide_not_timestamps() {
    let ws = Workspace::new();
    let value = ws.write("value.txt", "same-length-1");
    ws.write(
        "policy.toml",
        "[secrets.v]\nfile = \"value.txt\"\n\n[[grants]]\nproject = \"p\"\nenv = { V = \"v\" }\n",
    );
    let server = serve(&ws, "policy.toml");
    let answer = |v: &str| json!({"secrets": [{"type": "ENV", "key": "V", "value": v}]});
    assert_eq!(answer_p(&server).await, answer("same-length-1"));

    server.signal("HUP");
    let line = server
        .wait_for_log(WITHIN, "a `policy reloaded` line", |l| message(l) == "policy reloaded")
        .await;
    let changes = line["changes"]
        .as_str()
        .or_else(|| line["fields"]["changes"].as_str())
        .unwrap_or_else(|| panic!("no `changes` field: {line}"));
    assert!(changes.starts_with("none:"), "an unchanged reload says so: {line}");
    let metrics = server
        .client()
        .get(format!("http://{}/metrics", server.address()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name}\n{metrics}"))
    };
    // The first load swapped a policy in; every reload since found the files unchanged
    // (one more than the SIGHUP's where the first load came within a clock tick of the
    // writes, which then asks for a reload to be sure).
    let unchanged = counter("envoi_policy_loads_unchanged_total");
    assert!(unchanged >= 1, "{metrics}");
    assert_eq!(counter("envoi_policy_loads_total"), 1 + unchanged, "{metrics}");

    let modified = std::fs::metadata(&value).unwrap().modified().unwrap();
    std::fs::write(&value, "same-length-2").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&value)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let at = Instant::now();
    server.signal("HUP");
    wait_for_p(&server, &answer("same-length-2"), at).await;
    assert!(
        !server.stderr().contains("same-length"),
        "values are never logged\n{}",
        server.diagnostics()
    );
}

// ---- (d) editors ----

#[tokio::test]
async fn a_save_by_rename_is_served_within_two_seconds() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("one"));
    let server = serve(&ws, "policy.toml");
    let want = |v: &str| -> Value { serde_json::from_str(&simple_answer(v)).unwrap() };
    assert_eq!(answer_p(&server).await, want("one"));

    // VS Code / JetBrains style: a temporary file, renamed over the policy.
    let at = Instant::now();
    write_by_rename(&policy, ".policy.toml.tmp-1234", &simple_policy("two"));
    wait_for_p(&server, &want("two"), at).await;

    // Again: the new file has a new inode, and it is watched all the same.
    let at = Instant::now();
    write_by_rename(&policy, "policy.toml.new", &simple_policy("three"));
    wait_for_p(&server, &want("three"), at).await;

    // Vim style: the old file renamed to a backup, a new one written, the backup removed.
    let at = Instant::now();
    let backup = ws.join("policy.toml~");
    std::fs::rename(&policy, &backup).unwrap();
    std::fs::write(&policy, simple_policy("four")).unwrap();
    std::fs::remove_file(&backup).unwrap();
    wait_for_p(&server, &want("four"), at).await;
}

#[tokio::test]
async fn a_file_deleted_and_created_again_is_served_within_two_seconds() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("one"));
    let server = serve(&ws, "policy.toml");
    let want = |v: &str| -> Value { serde_json::from_str(&simple_answer(v)).unwrap() };

    // Deleted, then created again a little later: the old policy serves in between.
    std::fs::remove_file(&policy).unwrap();
    keeps_serving(&server, &want("one"), Duration::from_millis(400)).await;
    let at = Instant::now();
    std::fs::write(&policy, simple_policy("two")).unwrap();
    wait_for_p(&server, &want("two"), at).await;

    // Deleted and created again at once.
    let at = Instant::now();
    std::fs::remove_file(&policy).unwrap();
    std::fs::write(&policy, simple_policy("three")).unwrap();
    wait_for_p(&server, &want("three"), at).await;
}

#[tokio::test]
async fn a_burst_of_saves_ends_in_the_last_version() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("v0"));
    let server = serve(&ws, "policy.toml");
    let want = |v: &str| -> Value { serde_json::from_str(&simple_answer(v)).unwrap() };

    // 20 saves in about 200 ms, in place.
    for n in 1..=20 {
        std::fs::write(&policy, simple_policy(&format!("v{n}"))).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let at = Instant::now();
    wait_for_p(&server, &want("v20"), at).await;
    // ...and stays there once every delayed reload has run.
    keeps_serving(&server, &want("v20"), Duration::from_millis(1200)).await;
    assert!(failure_lines(&server).is_empty(), "{}", server.diagnostics());
}

// ---- (e) a policy folder ----

#[tokio::test]
async fn a_file_added_to_a_policy_folder_is_picked_up() {
    let ws = Workspace::new();
    ws.write(
        "policy.d/10-base.toml",
        "[secrets.base]\nvalue = \"base-value\"\n\n[[grants]]\nname = \"base\"\nproject = \"p\"\nenv = { BASE = \"base\" }\n",
    );
    let server = serve(&ws, "policy.d");
    let base = json!({"type": "ENV", "key": "BASE", "value": "base-value"});
    assert_eq!(answer_p(&server).await, json!({"secrets": [base]}));

    // A file that is not *.toml changes nothing.
    ws.write("policy.d/README.md", "[[grants]] not a policy\n");
    // A new file with a grant that uses a secret of the other file.
    let at = Instant::now();
    let extra = ws.write(
        "policy.d/20-extra.toml",
        "[[grants]]\nname = \"extra\"\nproject = \"p\"\nenv = { EXTRA = { value = \"extra-value\" }, EXTRA_BASE = \"base\" }\n",
    );
    let with_extra = json!({"secrets": [
        base,
        {"type": "ENV", "key": "EXTRA", "value": "extra-value"},
        {"type": "ENV", "key": "EXTRA_BASE", "value": "base-value"},
    ]});
    wait_for_p(&server, &with_extra, at).await;
    assert!(failure_lines(&server).is_empty(), "{}", server.diagnostics());

    // Renamed to a name that is not *.toml: its grant goes.
    let at = Instant::now();
    let disabled = ws.join("policy.d/20-extra.toml.disabled");
    std::fs::rename(&extra, &disabled).unwrap();
    wait_for_p(&server, &json!({"secrets": [base.clone()]}), at).await;

    // Back by rename, then removed.
    let at = Instant::now();
    std::fs::rename(&disabled, &extra).unwrap();
    wait_for_p(&server, &with_extra, at).await;
    let at = Instant::now();
    std::fs::remove_file(&extra).unwrap();
    wait_for_p(&server, &json!({"secrets": [base]}), at).await;
}

/// Lays out `files` as a Kubernetes ConfigMap or Secret volume does: each file a link
/// to `..data/NAME`, `..data` a link to a timestamped folder that holds the files. A
/// second call swaps a new folder in by renaming a new `..data` link over the old.
fn kubernetes_volume(dir: &Path, generation: u32, files: &[(&str, &str)]) {
    let folder = format!("..2024_01_01_00_00_0{generation}.12345");
    std::fs::create_dir_all(dir.join(&folder)).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(&folder).join(name), text).unwrap();
    }
    let temp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&folder, &temp).unwrap();
    std::fs::rename(&temp, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link).unwrap();
        }
    }
    if generation > 1 {
        let old = format!("..2024_01_01_00_00_0{}.12345", generation - 1);
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

#[tokio::test]
async fn a_kubernetes_volume_swap_of_the_policy_folder_and_of_a_secret_is_served() {
    let ws = Workspace::new();
    let secrets = Workspace::new();
    let policy = |n: u32| {
        format!(
            "[secrets.pw]\nfile = {}\n\n[[grants]]\nproject = \"p\"\nenv = {{ KEY = {{ value = \"config-{n}\" }}, PW = \"pw\" }}\n",
            toml_string(&secrets.join("password").display().to_string())
        )
    };
    std::fs::create_dir(ws.join("policy.d")).unwrap();
    kubernetes_volume(&ws.join("policy.d"), 1, &[("policy.toml", &policy(1))]);
    kubernetes_volume(secrets.path(), 1, &[("password", "pw-1")]);
    let server = serve(&ws, "policy.d");
    let answer = |config: &str, pw: &str| {
        json!({"secrets": [
            {"type": "ENV", "key": "KEY", "value": config},
            {"type": "ENV", "key": "PW", "value": pw},
        ]})
    };
    assert_eq!(answer_p(&server).await, answer("config-1", "pw-1"));

    let at = Instant::now();
    kubernetes_volume(&ws.join("policy.d"), 2, &[("policy.toml", &policy(2))]);
    wait_for_p(&server, &answer("config-2", "pw-1"), at).await;

    let at = Instant::now();
    kubernetes_volume(secrets.path(), 2, &[("password", "pw-2")]);
    wait_for_p(&server, &answer("config-2", "pw-2"), at).await;
}

#[tokio::test]
async fn a_policy_file_moved_in_from_another_folder_is_served() {
    let ws = Workspace::new();
    let elsewhere = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("one"));
    let server = serve(&ws, "policy.toml");

    let staged = elsewhere.write("staged.toml", simple_policy("two"));
    let at = Instant::now();
    std::fs::rename(&staged, &policy).unwrap();
    wait_for_p(&server, &serde_json::from_str(&simple_answer("two")).unwrap(), at).await;
}

/// A SIGHUP that arrives while `serve` is still loading its first policy (a config
/// reloader, an operator, a second deploy step) is held until the server listens for it,
/// then taken as a reload; its default action used to end the process before it served.
#[tokio::test]
async fn a_sighup_during_the_first_load_is_a_reload_once_serving_not_the_end() {
    let ws = Workspace::new();
    // Large enough that loading takes a while: the signal is sent during it.
    let mut policy =
        String::from("[secrets.v]\nvalue = \"held-hup-5c1e\"\n\n[[grants]]\nproject = \"p\"\nenv = { V = \"v\" }\n");
    for n in 0..20_000 {
        policy.push_str(&format!(
            "\n[[grants]]\nproject = \"q{n}\"\nid = \"w{n}\"\nenv = {{ A = \"v\", B = {{ value = \"b{n}\" }} }}\n"
        ));
    }
    ws.write("policy.toml", &policy);
    let config = ws.config("policy.toml", &[]);
    let healthy = |server: &Server| {
        crate::support::raw_http::get(server.address(), "/healthz", None, Duration::from_secs(1))
            .is_ok_and(|answer| answer.status == 200)
    };
    let started = Instant::now();
    let sent = std::cell::Cell::new(false);
    let mut server = Server::launch(ws.path())
        .args(["serve", "--config"])
        .arg(&config)
        .env("ENVOI__LOG__FORMAT", "json")
        .env("ENVOI__LOG__LEVEL", "info")
        .ready_when(|server| {
            if !sent.get() && started.elapsed() >= Duration::from_millis(150) {
                // Only meaningful while the first policy is still loading.
                assert!(!healthy(server), "the policy loaded within 150 ms: make it larger");
                server.signal("HUP");
                sent.set(true);
            }
            sent.get() && healthy(server)
        })
        .start();
    assert!(server.is_running(), "{}", server.diagnostics());
    assert_eq!(
        answer_p(&server).await,
        json!({"secrets": [{"type": "ENV", "key": "V", "value": "held-hup-5c1e"}]})
    );
    server
        .wait_for_log(Duration::from_secs(60), "the held SIGHUP taken as a reload", |l| {
            message(l) == "policy reloaded" && (l["trigger"] == "Signal" || l["fields"]["trigger"] == "Signal")
        })
        .await;
}
