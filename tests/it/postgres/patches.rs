//! Replicas that patch their snapshot from the change log (SPEC §2, Stores): each change
//! read as the names it changed and the part of the policy they affect, applied in
//! order; a replica behind by several changes catches up in one patch; a log that no
//! longer reaches back makes it read the whole policy; and a patched replica serves
//! byte for byte what one that read the whole policy serves.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::db::Db;
use super::env::{env_body, Env};
use crate::support::jwt::token;
use crate::support::Server;

const POLICY: &str = "[secrets.a]\nvalue = \"alpha-1\"\n[secrets.b]\nvalue = \"beta-1\"\n\
    [secrets.tpl]\ntemplate = \"x-${secret.a}-${projectId}\"\n\
    [[grants]]\nname = \"g1\"\nproject = \"p\"\nenv = { A = \"a\", T = \"tpl\" }\n\
    [[grants]]\nname = \"g3\"\nproject = \"q\"\nenv = { A = \"a\" }\n\
    [[grants.files]]\npath = \"/etc/q/b\"\nsecret = \"b\"\nmode = \"0440\"\n";

/// Sample workloads whose answers a patched replica and a freshly loaded one compare.
const SAMPLES: [(&str, &str, &str); 4] = [
    ("p", "service", "api"),
    ("p", "job", "x"),
    ("q", "service", "y"),
    ("r", "s", "t"),
];

/// A migrated database holding [`POLICY`], and a replica serving it that only
/// LISTEN/NOTIFY brings changes to (the periodic check is left at 30 s).
fn serving(test: &str) -> Option<(Db, Env, Server)> {
    let db = Db::create(test)?;
    let env = Env::new(&db.url);
    env.config("envoi.toml", &db.url, "refresh_seconds = 30");
    env.envoi(&["db", "migrate"], b"").success();
    env.write("policy.toml", POLICY);
    env.envoi(&["db", "import", "policy.toml"], b"").success();
    let server = env.serve("envoi.toml");
    serves(
        &server,
        ("p", "service", "api"),
        &env_body(&[("A", "alpha-1"), ("T", "x-alpha-1-p")]),
    );
    Some((db, env, server))
}

fn answer(server: &Server, (project, kind, id): (&str, &str, &str)) -> (u16, String) {
    let answer = server.blocking_get("/", Some(&token(project, kind, id)));
    (answer.status, answer.body_text())
}

/// Polls `server` until it serves `want` to `workload`.
#[track_caller]
fn serves(server: &Server, workload: (&str, &str, &str), want: &Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = answer(server, workload);
        if status == 200 && serde_json::from_str::<Value>(&body).ok().as_ref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{workload:?} was not served {want} within 10 s (last: {status} {body})\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|line| line.contains(needle)).count()
}

/// The replica's log once it has `lines` lines containing `needle` (log lines are
/// written in batches, a moment after the answer they tell of), or after 5 s.
fn log_with(server: &Server, needle: &str, lines: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = server.stderr();
        if count(&log, needle) >= lines || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_change_is_patched_in_order_and_serves_what_a_whole_load_serves() {
    let Some((_db, env, replica)) = serving("each_change_is_patched_in_order") else {
        return;
    };
    let api = ("p", "service", "api");
    let steps: [(&[&str], &[u8], Value); 6] = [
        (
            &["secret", "put", "a"],
            b"alpha-2",
            env_body(&[("A", "alpha-2"), ("T", "x-alpha-2-p")]),
        ),
        (
            &[
                "grant",
                "put",
                "g2",
                "--project",
                "p",
                "--type",
                "service",
                "--env",
                "B=b",
            ],
            b"",
            env_body(&[("A", "alpha-2"), ("B", "beta-1"), ("T", "x-alpha-2-p")]),
        ),
        (
            &[
                "grant",
                "add",
                "g4",
                "--project",
                "p",
                "--type",
                "service",
                "--id",
                "api",
                "--env",
                "A=b",
            ],
            b"",
            env_body(&[("A", "beta-1"), ("B", "beta-1"), ("T", "x-alpha-2-p")]),
        ),
        (
            &["grant", "rm", "g4"],
            b"",
            env_body(&[("A", "alpha-2"), ("B", "beta-1"), ("T", "x-alpha-2-p")]),
        ),
        (
            &["secret", "put", "b"],
            b"beta-2",
            env_body(&[("A", "alpha-2"), ("B", "beta-2"), ("T", "x-alpha-2-p")]),
        ),
        (&["grant", "rm", "g1"], b"", env_body(&[("B", "beta-2")])),
    ];
    for (args, input, want) in &steps {
        env.envoi(args, input).success();
        serves(&replica, api, want);
    }
    let log = log_with(&replica, "policy patched from postgres", steps.len());
    assert_eq!(
        count(&log, "policy patched from postgres"),
        steps.len(),
        "one patch per change\n{log}"
    );
    assert_eq!(
        count(&log, "policy loaded from postgres"),
        1,
        "only the first load is whole\n{log}"
    );
    assert!(log.contains("changed_grants=g4"), "the log names what changed\n{log}");

    // A replica that reads the whole policy serves the same bytes to every sample.
    let whole = env.serve("envoi.toml");
    serves(&whole, api, &env_body(&[("B", "beta-2")]));
    for workload in SAMPLES {
        assert_eq!(answer(&replica, workload), answer(&whole, workload), "{workload:?}");
    }
    for value in ["alpha-1", "alpha-2", "beta-1", "beta-2"] {
        assert!(!log.contains(value), "a value in the log\n{log}");
    }
}

/// Stopped while three changes commit, a replica catches up with one patch over the
/// three generations.
#[test]
fn a_replica_behind_by_several_changes_catches_up_in_one_patch() {
    let Some((db, env, replica)) = serving("a_replica_behind_catches_up") else {
        return;
    };
    let from = db.int("SELECT generation FROM envoi_policy_state");
    replica.signal("STOP");
    env.put("a", "alpha-3");
    env.envoi(&["grant", "rm", "g3"], b"").success();
    env.envoi(&["grant", "put", "g1", "--project", "p", "--env", "T=tpl"], b"")
        .success();
    replica.signal("CONT");
    serves(&replica, ("p", "service", "api"), &env_body(&[("T", "x-alpha-3-p")]));
    serves(&replica, ("q", "service", "y"), &env_body(&[]));
    let log = log_with(&replica, "policy patched", 1);
    let patched: Vec<&str> = log.lines().filter(|l| l.contains("policy patched")).collect();
    assert_eq!(patched.len(), 1, "one patch\n{log}");
    assert!(
        patched[0].contains(&format!("from={from}")) && patched[0].contains(&format!("generation={}", from + 3)),
        "{}",
        patched[0]
    );
}

/// Changes the log no longer holds (compacted) cannot be patched: the replica reads the
/// whole policy, and serves it.
#[test]
fn a_log_that_no_longer_reaches_back_makes_the_replica_read_the_whole_policy() {
    let Some((db, env, replica)) = serving("a_compacted_log_forces_a_whole_read") else {
        return;
    };
    replica.signal("STOP");
    env.put("a", "alpha-4");
    let generation = db.int("SELECT generation FROM envoi_policy_state");
    // What compaction does: the change's rows are gone (the append-only triggers are
    // bypassed as a superuser's maintenance would).
    db.exec(&format!(
        "SET session_replication_role = replica;
         DELETE FROM envoi_change_items WHERE generation = {generation};
         DELETE FROM envoi_changes WHERE generation = {generation};"
    ));
    replica.signal("CONT");
    serves(
        &replica,
        ("p", "service", "api"),
        &env_body(&[("A", "alpha-4"), ("T", "x-alpha-4-p")]),
    );
    let log = log_with(&replica, "policy loaded from postgres", 2);
    assert_eq!(count(&log, "policy patched from postgres"), 0, "{log}");
    assert_eq!(count(&log, "policy loaded from postgres"), 2, "{log}");
}
