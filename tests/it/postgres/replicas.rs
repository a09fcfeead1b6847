//! Several replicas on one database: a change made through the command line reaches
//! every one of them within a second, and killed connections neither fail a request nor
//! stop later changes from arriving.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::db::Db;
use super::env::{env_body, Env};
use crate::support::jwt::token;
use crate::support::{raw_http, Server};

const WORKLOAD: (&str, &str, &str) = ("p", "service", "api");

/// A migrated database with one secret, `db_password`, granted to project `p` as
/// `DB_PASSWORD`; `store_extra` goes into the config's `[store]`.
fn with_policy(test: &str, store_extra: &str) -> Option<(Db, Env)> {
    let db = Db::create(test)?;
    let env = Env::new(&db.url);
    env.config("envoi.toml", &db.url, store_extra);
    env.envoi(&["db", "migrate"], b"").success();
    env.put("db_password", "value-1");
    grant_app(&env);
    Some((db, env))
}

/// Grants `db_password` to project `p` as `DB_PASSWORD` (the grant `app`).
fn grant_app(env: &Env) {
    env.envoi(
        &[
            "grant",
            "add",
            "app",
            "--project",
            "p",
            "--env",
            "DB_PASSWORD=db_password",
        ],
        b"",
    )
    .success();
}

/// Polls both servers every 50 ms until each serves `want`; how long it took.
fn both_serve(servers: [&Server; 2], want: &serde_json::Value, limit: Duration) -> Duration {
    let started = Instant::now();
    let token = token(WORKLOAD.0, WORKLOAD.1, WORKLOAD.2);
    let mut done = [false, false];
    loop {
        for (n, server) in servers.iter().enumerate() {
            if !done[n] {
                let answer = server.blocking_get("/", Some(&token));
                done[n] = answer.status == 200 && answer.json() == *want;
            }
        }
        if done == [true, true] {
            return started.elapsed();
        }
        if started.elapsed() > limit {
            panic!(
                "replicas {done:?} did not serve {want} within {limit:?}\n--- log 1 ---\n{}\n--- log 2 ---\n{}",
                servers[0].stderr(),
                servers[1].stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_replicas_see_a_change_within_a_second() {
    // The periodic check is left at 30 s: only LISTEN/NOTIFY can be this quick.
    let Some((_db, env)) = with_policy("two_replicas_see_a_change_within_a_second", "refresh_seconds = 30") else {
        return;
    };
    let first = env.serve("envoi.toml");
    let second = env.serve("envoi.toml");
    both_serve(
        [&first, &second],
        &env_body(&[("DB_PASSWORD", "value-1")]),
        Duration::from_secs(10),
    );

    env.put("db_password", "value-2");
    let took = both_serve(
        [&first, &second],
        &env_body(&[("DB_PASSWORD", "value-2")]),
        Duration::from_secs(5),
    );
    assert!(
        took < Duration::from_secs(1),
        "a secret put reached both replicas after {took:?}"
    );

    env.envoi(
        &["grant", "add", "extra", "--project", "p", "--env", "EXTRA=db_password"],
        b"",
    )
    .success();
    both_serve(
        [&first, &second],
        &env_body(&[("DB_PASSWORD", "value-2"), ("EXTRA", "value-2")]),
        Duration::from_secs(5),
    );
    env.envoi(&["grant", "rm", "extra"], b"").success();
    let took = both_serve(
        [&first, &second],
        &env_body(&[("DB_PASSWORD", "value-2")]),
        Duration::from_secs(5),
    );
    assert!(
        took < Duration::from_secs(1),
        "a grant rm reached both replicas after {took:?}"
    );

    for server in [&first, &second] {
        let log = server.stderr();
        assert!(
            !log.contains("value-1") && !log.contains("value-2"),
            "a value in the log\n{log}"
        );
    }
}

#[test]
fn killed_connections_fail_no_request_and_recover() {
    let Some((db, env)) = with_policy("killed_connections_fail_no_request_and_recover", "refresh_seconds = 1") else {
        return;
    };
    let server = env.serve("envoi.toml");
    let want = env_body(&[("DB_PASSWORD", "value-1")]);
    server.blocking_wait_for(WORKLOAD, &want, Duration::from_secs(10));

    // A client asks again and again for ~2 s while every session of envoi is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, address, want) = (stop.clone(), server.address(), want.clone());
        let token = token(WORKLOAD.0, WORKLOAD.1, WORKLOAD.2);
        std::thread::spawn(move || {
            let (mut ok, mut failures) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match raw_http::get(address, "/", Some(&token), Duration::from_secs(2)) {
                    Ok(r)
                        if r.status == 200
                            && serde_json::from_slice::<serde_json::Value>(&r.body).ok() == Some(want.clone()) =>
                    {
                        ok += 1
                    }
                    other => failures.push(format!("{other:?}")),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (ok, failures)
        })
    };
    let mut killed = 0;
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        killed += db.terminate_sessions();
    }
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::SeqCst);
    let (ok, failures) = client.join().expect("the client thread");
    assert!(killed >= 1, "no session of envoi was found to kill");
    assert!(
        failures.is_empty(),
        "{} request(s) failed: {failures:#?}",
        failures.len()
    );
    assert!(ok >= 20, "only {ok} requests in ~2 s");

    // Afterwards changes arrive again.
    env.put("db_password", "value-2");
    server.blocking_wait_for(
        WORKLOAD,
        &env_body(&[("DB_PASSWORD", "value-2")]),
        Duration::from_secs(5),
    );
    assert_eq!(server.blocking_get("/readyz", None).status, 200);
}

/// Rows written behind envoi's back (plain SQL, no compile check) that make a policy
/// that does not load: the replica keeps serving the last good one, whole, and takes
/// the next good one.
#[test]
fn a_bad_change_behind_envoi_s_back_keeps_the_last_good_policy() {
    let Some((db, env)) = with_policy(
        "a_bad_change_behind_envoi_s_back_keeps_the_last_good_policy",
        "refresh_seconds = 1",
    ) else {
        return;
    };
    env.put("other", "other-value");
    let server = env.serve("envoi.toml");
    let good = env_body(&[("DB_PASSWORD", "value-1")]);
    server.blocking_wait_for(WORKLOAD, &good, Duration::from_secs(10));

    // One transaction: a valid new grant `extra`, and `clash`, as specific as `app`,
    // giving DB_PASSWORD another secret.
    db.exec(
        "BEGIN;
         INSERT INTO envoi_grants (name, project, updated_by) VALUES ('extra', 'p', 'sql'), ('clash', 'p', 'sql');
         INSERT INTO envoi_grant_items (grant_name, kind, target, secret)
             VALUES ('extra', 'ENV', 'EXTRA', 'other'), ('clash', 'ENV', 'DB_PASSWORD', 'other');
         COMMIT;",
    );
    let failures_before = server.blocking_metric("load_failures");
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let answer = server.blocking_get("/", Some(&token(WORKLOAD.0, WORKLOAD.1, WORKLOAD.2)));
        assert_eq!(
            (answer.status, answer.json()),
            (200, good.clone()),
            "the last good policy, whole"
        );
        assert_eq!(server.blocking_get("/readyz", None).status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.stderr();
    assert!(log.contains("clash"), "the failed load is not logged\n{log}");
    let failures = server.blocking_metric("load_failures");
    assert!(
        failures > failures_before,
        "the failed load is not counted: {failures_before} → {failures}"
    );

    db.exec("DELETE FROM envoi_grants WHERE name = 'clash'");
    server.blocking_wait_for(
        WORKLOAD,
        &env_body(&[("DB_PASSWORD", "value-1"), ("EXTRA", "other-value")]),
        Duration::from_secs(3),
    );
}

/// SPEC §2: a policy that grants nothing never replaces a good snapshot. The last grant
/// removed, or the database dropped and created again empty (a wrong restore): the
/// replica keeps serving what it served, counts and logs the refusal, and takes the next
/// policy that grants something.
#[test]
fn a_policy_that_grants_nothing_never_replaces_a_good_one() {
    let Some((db, env)) = with_policy(
        "a_policy_that_grants_nothing_never_replaces_a_good_one",
        "refresh_seconds = 1",
    ) else {
        return;
    };
    let server = env.serve("envoi.toml");
    let good = env_body(&[("DB_PASSWORD", "value-1")]);
    server.blocking_wait_for(WORKLOAD, &good, Duration::from_secs(10));
    let token = token(WORKLOAD.0, WORKLOAD.1, WORKLOAD.2);
    // `failures_before` is read before the change: the replica may refuse it at once.
    let holds_for = |what: &str, failures_before: f64| {
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2500) {
            let answer = server.blocking_get("/", Some(&token));
            assert_eq!((answer.status, answer.json()), (200, good.clone()), "after {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let failures = server.blocking_metric("load_failures");
        assert!(failures > failures_before, "{what}: the refusal is not counted");
        let log = server.stderr();
        assert!(
            log.contains("grants nothing"),
            "{what}: the refusal is not logged\n{log}"
        );
        assert!(!log.contains("value-1"), "a value in the log\n{log}");
    };

    let failures = server.blocking_metric("load_failures");
    env.envoi(&["grant", "rm", "app"], b"").success();
    holds_for("the last grant removed", failures);

    // Dropped and created again, migrated, nothing imported.
    let failures = server.blocking_metric("load_failures");
    db.recreate();
    env.envoi(&["db", "migrate"], b"").success();
    holds_for("the database created again empty", failures);

    env.put("db_password", "value-3");
    grant_app(&env);
    server.blocking_wait_for(
        WORKLOAD,
        &env_body(&[("DB_PASSWORD", "value-3")]),
        Duration::from_secs(10),
    );
}
