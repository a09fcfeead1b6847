//! Live reload of the TOML store, black-box: `envoi serve` runs as a child process and
//! its policy files are edited under it while requests flow.
//!
//! The contract (SPEC §2 "Stores", §7 and the live-reload issue): a changed file or
//! folder, or SIGHUP, reloads the policy; a reload swaps a whole new policy in (a request
//! sees the old one or the new one, never a mix, and is never blocked); a policy that
//! fails to load leaves the last good one serving and the failure is logged with every
//! problem named and counted; rename-over writes, delete-and-recreate and bursts of
//! saves all end in the right policy within 2 s; `file` values are read again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::jwt::token;
use crate::support::server::{last_cpu, BusyLoops};
use crate::support::{toml_string, Server, Workspace};

/// The issue's bound: every kind of edit is served within this.
const WITHIN: Duration = Duration::from_secs(2);

/// A policy for project `p` that gives `A` and `B`, both of which change with `version`,
/// so that a mix of two versions shows as `A` of one and `B` of the other.
fn versioned_policy(version: u32) -> String {
    let mut text = format!(
        "# version {version}\n\
         [secrets.a]\nvalue = \"A-{version}\"\n\n\
         [secrets.b]\nvalue = \"B-{version}\"\n\n\
         [[grants]]\nname = \"both\"\nproject = \"p\"\nenv = {{ A = \"a\", B = \"b\" }}\n\n\
         [[grants.files]]\npath = \"/etc/app/version\"\nvalue = \"v{version}\"\n"
    );
    // Grants for other projects, so that building the new index takes a while.
    for n in 0..300 {
        text.push_str(&format!(
            "\n[[grants]]\nproject = \"other-{n}\"\ntype = \"service\"\nid = \"api\"\nenv = {{ X = {{ value = \"x-{n}-{version}\" }} }}\n"
        ));
    }
    text
}

/// What `versioned_policy(version)` gives project `p`.
fn versioned_answer(version: u32) -> Value {
    json!({"secrets": [
        {"type": "ENV", "key": "A", "value": format!("A-{version}")},
        {"type": "ENV", "key": "B", "value": format!("B-{version}")},
        {"type": "FILE", "path": "/etc/app/version", "data": format!("v{version}")},
    ]})
}

/// A small policy: project `p` gets `KEY` = `value`.
fn simple_policy(value: &str) -> String {
    format!(
        "# a comment\n[[grants]]\nname = \"simple\"\nproject = \"p\"\nenv = {{ KEY = {{ value = {} }} }}\n",
        toml_string(value)
    )
}

/// The answer to project `p` under `simple_policy(value)`, byte for byte.
fn simple_answer(value: &str) -> String {
    format!(
        r#"{{"secrets":[{{"type":"ENV","key":"KEY","value":{}}}]}}"#,
        Value::from(value)
    )
}

/// Starts a server on `policy` (relative to the workspace) with a config file.
fn serve(ws: &Workspace, policy: &str) -> Server {
    let config = ws.config(policy, &[]);
    Server::serve(ws.path(), &config)
}

/// The body `GET /` gives project `p` now, parsed, with a 200 asserted.
async fn answer_p(server: &Server) -> Value {
    let (status, body) = server.get(&token("p", "service", "api")).await;
    assert_eq!(status, 200, "body: {body}\n{}", server.diagnostics());
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Polls `GET /` for project `p` until its parsed body is `want`, for at most `WITHIN`
/// from `since`.
async fn wait_for_p(server: &Server, want: &Value, since: Instant) {
    let token = token("p", "service", "api");
    loop {
        let (status, body) = server.get(&token).await;
        let parsed: Option<Value> = serde_json::from_str(&body).ok();
        if status == 200 && parsed.as_ref() == Some(want) {
            return;
        }
        if since.elapsed() > WITHIN {
            panic!(
                "not served within {WITHIN:?} of the edit\nwanted: {want}\nlast:   {status} {body}\n{}",
                server.diagnostics()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `text` to `path` as editors that save by rename do: a temporary file in the
/// same folder, then a rename over the old one.
fn write_by_rename(path: &Path, temp_name: &str, text: &str) {
    let temp = path.parent().expect("a folder").join(temp_name);
    std::fs::write(&temp, text).expect("write the temporary file");
    std::fs::rename(&temp, path).expect("rename over the policy");
}

/// The log lines that report a failed load.
fn failure_lines(server: &Server) -> Vec<Value> {
    server
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "ERROR" && message(l).contains("does not load"))
        .collect()
}

fn message(line: &Value) -> &str {
    line["message"]
        .as_str()
        .or_else(|| line["fields"]["message"].as_str())
        .unwrap_or("")
}

/// Waits until `n` failed loads have been logged and returns the last one.
async fn wait_for_failures(server: &Server, n: usize) -> Value {
    let started = Instant::now();
    loop {
        let lines = failure_lines(server);
        if lines.len() >= n {
            assert_eq!(lines.len(), n, "more failed loads than edits\n{}", server.diagnostics());
            return lines[n - 1].clone();
        }
        if started.elapsed() > Duration::from_secs(3) {
            panic!("failed load #{n} was not logged within 3 s\n{}", server.diagnostics());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The number in a log line's `failures` field (the failure counter).
fn failures_field(line: &Value) -> Option<u64> {
    line["failures"]
        .as_u64()
        .or_else(|| line["fields"]["failures"].as_u64())
}

/// For `hold`, every answer to project `p` is 200 and exactly `want`; `/readyz` too is 200.
async fn keeps_serving(server: &Server, want: &Value, hold: Duration) {
    let started = Instant::now();
    while started.elapsed() < hold {
        assert_eq!(&answer_p(server).await, want, "the last good policy must keep serving");
        assert_eq!(server.status_of("/readyz").await, 200, "/readyz after a failed load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- the first answer: the watches exist before it ----

/// The issue's case: the server and three busy loops on one core, so that the reload
/// machinery gets the core last; a policy renamed into place as soon as `/healthz`
/// answers must still be served (it was lost for good when the watches were set up
/// after the first answer, on a starved thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_as_soon_as_the_server_answers_is_served_on_a_starved_core() {
    let cpu = last_cpu();
    let _busy = BusyLoops::start(3, Some(cpu));
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("before"));
    let config = ws.config("policy.toml", &[]);
    let server = Server::serve_pinned(ws.path(), &config, cpu);
    write_by_rename(&policy, "policy.toml.new", &simple_policy("after"));
    // The bound is looser than WITHIN: a quarter of one core is all the server gets.
    server
        .wait_for_body(
            &token("p", "service", "api"),
            &simple_answer("after"),
            Duration::from_secs(8),
        )
        .await;
}

// ---- (a) atomic swap under load ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_during_reloads_see_the_old_policy_or_the_new_never_a_mix() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", versioned_policy(1));
    let server = Arc::new(serve(&ws, "policy.toml"));
    assert_eq!(answer_p(&server).await, versioned_answer(1));

    let versions: Arc<Vec<(Value, u32)>> = Arc::new((1..=8).map(|v| (versioned_answer(v), v)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(BTreeMap::<u32, usize>::new()));
    let bodies = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (server, stop, seen, bodies, versions) = (
            server.clone(),
            stop.clone(),
            seen.clone(),
            bodies.clone(),
            versions.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let token = token("p", "service", "api");
            let mut slowest = Duration::ZERO;
            let mut count = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let (status, body) = server.get(&token).await;
                slowest = slowest.max(started.elapsed());
                assert_eq!(status, 200, "a request during a reload failed: {body}");
                let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
                let version = versions
                    .iter()
                    .find(|(answer, _)| *answer == parsed)
                    .map(|(_, version)| *version)
                    .unwrap_or_else(|| panic!("an answer that is no single version of the policy: {body}"));
                *seen.lock().unwrap().entry(version).or_default() += 1;
                bodies.lock().unwrap().insert(body);
                count += 1;
            }
            (count, slowest)
        }));
    }

    // Seven new versions, one every 400 ms, each written whole by a rename.
    for version in 2..=8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        write_by_rename(&policy, ".policy.toml.tmp", &versioned_policy(version));
    }
    let last_write = Instant::now();
    wait_for_p(&server, &versioned_answer(8), last_write).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for task in tasks {
        let (count, slowest) = task.await.expect("a request task panicked");
        total += count;
        assert!(
            slowest < Duration::from_secs(2),
            "a request took {slowest:?}: requests must not wait for a reload"
        );
    }
    let seen = seen.lock().unwrap().clone();
    eprintln!("{total} requests; answers by version: {seen:?}");
    assert!(total > 100, "too few requests to say anything: {total}");
    assert!(
        seen.len() >= 3,
        "reloads under load should have been observed (versions seen: {seen:?})\n{}",
        server.diagnostics()
    );
    // Each version is always written out the same way: no other body ever went out.
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), seen.len(), "distinct bodies vs versions: {bodies:#?}");
    assert!(
        failure_lines(&server).is_empty(),
        "no load failed\n{}",
        server.diagnostics()
    );
}

// ---- in-place writes: an empty or half-written file is never served ----

/// Rewrites `path` in place, as `generator > policy.toml` does: truncate, then `pause`,
/// then write `text` in chunks of 4 KiB.
fn write_in_place(path: &Path, text: &str, pause: Duration) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .expect("open the policy for writing");
    std::thread::sleep(pause);
    for chunk in text.as_bytes().chunks(4096) {
        file.write_all(chunk).expect("write the policy");
    }
}

#[tokio::test]
async fn a_policy_truncated_in_place_keeps_the_old_policy_and_the_rewrite_is_served() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", simple_policy("one"));
    let server = serve(&ws, "policy.toml");
    let one: Value = serde_json::from_str(&simple_answer("one")).unwrap();
    assert_eq!(answer_p(&server).await, one);

    std::fs::write(&policy, "").unwrap();
    let failure = wait_for_failures(&server, 1).await;
    assert!(
        message(&failure).contains("grants nothing"),
        "an empty policy is a failed load: {failure}"
    );
    keeps_serving(&server, &one, Duration::from_millis(400)).await;

    // Comments only: still nothing granted.
    std::fs::write(&policy, "# rewritten\n[secrets.x]\nvalue = \"x\"\n").unwrap();
    wait_for_failures(&server, 2).await;
    keeps_serving(&server, &one, Duration::from_millis(200)).await;

    let fixed_at = Instant::now();
    std::fs::write(&policy, simple_policy("two")).unwrap();
    wait_for_p(&server, &serde_json::from_str(&simple_answer("two")).unwrap(), fixed_at).await;
}

/// A storm of in-place rewrites under requests: every answer must be exactly one version
/// of the policy, never the empty answer of a truncated file nor a half-read one.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_storm_of_in_place_rewrites_never_serves_an_empty_or_partial_policy() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", versioned_policy(0));
    let server = Arc::new(serve(&ws, "policy.toml"));
    let versions: Arc<Vec<(Value, u32)>> = Arc::new((0..=12).map(|v| (versioned_answer(v), v)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (server, stop, versions) = (server.clone(), stop.clone(), versions.clone());
        readers.push(tokio::spawn(async move {
            let token = token("p", "service", "api");
            let mut answers = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = server.get(&token).await;
                assert_eq!(status, 200, "a request during the storm failed: {body}");
                let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
                assert!(
                    versions.iter().any(|(answer, _)| *answer == parsed),
                    "an answer that is no version of the policy: {body}\n{}",
                    server.diagnostics()
                );
                answers += 1;
            }
            answers
        }));
    }
    let writer = {
        let policy = policy.clone();
        tokio::task::spawn_blocking(move || {
            for version in 1..=12u32 {
                // Pauses after truncating longer than the reload's quiet time, and none.
                let pause = Duration::from_millis([0, 300, 40][version as usize % 3]);
                write_in_place(&policy, &versioned_policy(version), pause);
                std::thread::sleep(Duration::from_millis(60));
            }
        })
    };
    writer.await.expect("the writer");
    let at = Instant::now();
    wait_for_p(&server, &versioned_answer(12), at).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = 0;
    for reader in readers {
        answers += reader.await.expect("a reader");
    }
    assert!(answers > 50, "the storm was served under requests ({answers} answers)");
}

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

// ---- (c) SIGHUP ----

#[tokio::test]
async fn sighup_reloads_the_policy() {
    let ws = Workspace::new();
    // The value is read through a symbolic link whose target lives in a folder of its
    // own, which no watcher of the policy's folders needs to see.
    let elsewhere = Workspace::new();
    let target = elsewhere.write("real-value.txt", "hup-before-7f3a");
    std::os::unix::fs::symlink(&target, ws.join("value-link.txt")).unwrap();
    ws.write(
        "policy.toml",
        "[secrets.v]\nfile = \"value-link.txt\"\n\n[[grants]]\nproject = \"p\"\nenv = { V = \"v\" }\n",
    );
    let mut server = serve(&ws, "policy.toml");
    let answer = |v: &str| json!({"secrets": [{"type": "ENV", "key": "V", "value": v}]});
    assert_eq!(answer_p(&server).await, answer("hup-before-7f3a"));

    std::fs::write(&target, "hup-after-7f3a").unwrap();
    let hup_at = Instant::now();
    server.signal("HUP");
    wait_for_p(&server, &answer("hup-after-7f3a"), hup_at).await;
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
    std::fs::write(&target, "hup-ignored-7f3a").unwrap();
    server.signal("HUP");
    let failure = wait_for_failures(&server, 1).await;
    assert!(
        failure.to_string().contains("Signal"),
        "the failure names its trigger: {failure}"
    );
    keeps_serving(&server, &answer("hup-after-7f3a"), Duration::from_millis(300)).await;
    assert!(
        server.is_running(),
        "SIGHUP must not stop the server\n{}",
        server.diagnostics()
    );
    assert!(
        !server.stderr().contains("7f3a"),
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
