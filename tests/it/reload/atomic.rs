//! What a request sees during a reload: the old policy or the new, never a mix and
//! never an empty or half-written file, from the first answer on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::jwt::token;
use crate::support::server::{last_cpu, BusyLoops};
use crate::support::{Server, Workspace};

use super::*;

// ---- the first answer: the watches exist before it ----

/// The case: the server and three busy loops on one core, so that the reload
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
