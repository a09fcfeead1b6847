//! The database out of reach, through a proxy that can be taken down or silenced: 503
//! until a first snapshot loads, the last good snapshot served while it is away (within a
//! maximum staleness, when one is set), a silent database noticed within 10 s, and
//! changes picked up again within a second once it is back.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::db::Db;
use super::env::{env_body, Env};
use super::proxy::{with_address, Proxy};
use crate::support::jwt::token;
use crate::support::server::poll_until;
use crate::support::server::Server;

const WORKLOAD: (&str, &str, &str) = ("p", "service", "api");

/// A migrated database with `db_password` granted to project `p`, a proxy to it (up or
/// down), and `proxied.toml`, a config that reaches the database through the proxy.
/// `serve` through the proxy, once it answers the workload with the first value of
/// `db_password`; with that answer.
fn serving_the_first_value(env: &Env) -> (Server, Value) {
    let server = env.serve("proxied.toml");
    let want = env_body(&[("DB_PASSWORD", "value-1")]);
    server.blocking_wait_for(WORKLOAD, &want, Duration::from_secs(10));
    (server, want)
}

fn through_proxy(test: &str, up: bool, store_extra: &str) -> Option<(Db, Env, Proxy)> {
    let db = Db::create(test)?;
    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    env.put("db_password", "value-1");
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
    let proxy = Proxy::start(db.server_address(), up);
    let url = with_address(&db.url, proxy.address);
    env.config(
        "proxied.toml",
        &url,
        &format!("connect_timeout_seconds = 2\nstatement_timeout_seconds = 2\n{store_extra}"),
    );
    Some((db, env, proxy))
}

fn token_for() -> String {
    token(WORKLOAD.0, WORKLOAD.1, WORKLOAD.2)
}

#[test]
fn unreachable_at_start_answers_503_until_it_is_back() {
    let Some((_db, env, proxy)) = through_proxy(
        "unreachable_at_start_answers_503_until_it_is_back",
        false,
        "refresh_seconds = 1",
    ) else {
        return;
    };
    let server = env.serve("proxied.toml");
    let token = token_for();
    for _ in 0..3 {
        let answer = server.blocking_get("/", Some(&token));
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(
            answer.header("Retry-After").is_some(),
            "503 without Retry-After: {answer:?}"
        );
        assert!(!answer.body_text().contains("value-1"), "{answer:?}");
        let ready = server.blocking_get("/readyz", None);
        assert_eq!(ready.status, 503, "{ready:?}");
        std::thread::sleep(Duration::from_millis(300));
    }

    proxy.up();
    let took = server.blocking_wait_for(
        WORKLOAD,
        &env_body(&[("DB_PASSWORD", "value-1")]),
        Duration::from_secs(8),
    );
    eprintln!("served {took:?} after the database came back");
    assert_eq!(server.blocking_get("/readyz", None).status, 200);
}

#[test]
fn snapshot_serves_while_the_database_is_away() {
    let Some((_db, env, proxy)) = through_proxy(
        "snapshot_serves_while_the_database_is_away",
        true,
        "refresh_seconds = 1",
    ) else {
        return;
    };
    let (server, want) = serving_the_first_value(&env);

    proxy.down();
    // A change the replica cannot see while the database is away.
    env.put("db_password", "value-2");
    let token = token_for();
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_millis(2200) {
        // `get` gives up after 2 s: no request may hang on the database.
        let answer = server.blocking_get("/", Some(&token));
        assert_eq!((answer.status, answer.json()), (200, want.clone()), "from the snapshot");
        let ready = server.blocking_get("/readyz", None);
        assert_eq!(ready.status, 200, "{ready:?}");
        assert!(ready.json()["snapshot_age_seconds"].is_u64(), "{ready:?}");
        requests += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(requests >= 10, "only {requests} rounds in 2 s");
    let ready = server.blocking_get("/readyz", None).json();
    assert!(
        ready["snapshot_age_seconds"].as_u64() >= Some(1),
        "the snapshot has not been confirmed for 2 s, yet: {ready}"
    );

    proxy.up();
    let back = Instant::now();
    env.put("db_password", "value-3");
    let took = server.blocking_wait_for(
        WORKLOAD,
        &env_body(&[("DB_PASSWORD", "value-3")]),
        Duration::from_secs(6),
    );
    let since_back = back.elapsed();
    eprintln!("new value served {took:?} after the put, {since_back:?} after the database came back");
    assert!(
        since_back < Duration::from_secs(4),
        "took {since_back:?} after the database came back"
    );
}

#[test]
fn a_snapshot_too_stale_is_not_served() {
    let Some((_db, env, proxy)) = through_proxy(
        "a_snapshot_too_stale_is_not_served",
        true,
        "refresh_seconds = 1\nmax_staleness_seconds = 2",
    ) else {
        return;
    };
    let (server, want) = serving_the_first_value(&env);
    // Confirmed every second, the snapshot stays fresh.
    std::thread::sleep(Duration::from_millis(2500));
    let answer = server.blocking_get("/", Some(&token_for()));
    assert_eq!((answer.status, answer.json()), (200, want.clone()));

    proxy.down();
    let down = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let answer = server.blocking_get("/", Some(&token_for()));
    assert_eq!(
        (answer.status, answer.json()),
        (200, want.clone()),
        "still fresh enough"
    );

    let stale = server.blocking_wait_for_status("/", Some(&token_for()), 503, Duration::from_secs(6));
    eprintln!("stale {:?} after the database went away", down.elapsed());
    assert!(stale.header("Retry-After").is_some(), "{stale:?}");
    assert!(!stale.body_text().contains("value-1"), "{stale:?}");
    let ready = server.blocking_get("/readyz", None);
    assert_eq!(ready.status, 503, "{ready:?}");
    let ready: Value = ready.json();
    assert_eq!(ready["status"], "stale", "{ready}");

    proxy.up();
    server.blocking_wait_for(WORKLOAD, &want, Duration::from_secs(8));
    assert_eq!(server.blocking_get("/readyz", None).status, 200);
}

/// SPEC §2: "while the database is unreachable, replicas serve their last good snapshot
/// and say so in /readyz and the metrics"; §6: `/metrics` gives the snapshot age.
#[test]
fn metrics_tell_the_snapshot_age_while_the_database_is_away() {
    let Some((_db, env, proxy)) = through_proxy(
        "metrics_tell_the_snapshot_age_while_the_database_is_away",
        true,
        "refresh_seconds = 1",
    ) else {
        return;
    };
    let (server, _) = serving_the_first_value(&env);
    // Confirmed every second while the database is there.
    std::thread::sleep(Duration::from_millis(1500));
    let age = server.blocking_metric("snapshot_age_seconds");
    assert!((0.0..=2.0).contains(&age), "snapshot age {age} with the database there");

    proxy.down();
    std::thread::sleep(Duration::from_millis(3500));
    let age = server.blocking_metric("snapshot_age_seconds");
    assert!(age >= 3.0, "snapshot age {age} after 3.5 s away");
    assert_eq!(
        server.blocking_get("/readyz", None).status,
        200,
        "no max staleness: still ready"
    );

    proxy.up();
    let back = Instant::now();
    loop {
        let age = server.blocking_metric("snapshot_age_seconds");
        if age < 2.0 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(6),
            "snapshot age still {age} after the database came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 10, item 12: a database whose network goes silent (connections held open,
/// nothing forwarded) is noticed within 10 s, with the default refresh of 30 s: counted in
/// `/metrics`, and the snapshot age in `/readyz` no longer reset, while the last good
/// snapshot keeps serving. Once the network heals, a change made meanwhile is served
/// within a second.
#[test]
fn a_silent_database_is_noticed_within_10_s_and_caught_up_within_1_s_once_back() {
    let Some((_db, env, proxy)) = through_proxy(
        "a_silent_database_is_noticed_within_10_s_and_caught_up_within_1_s_once_back",
        true,
        "",
    ) else {
        return;
    };
    let (server, want) = serving_the_first_value(&env);
    let failures = server.blocking_metric("envoi_policy_load_failures_total");

    proxy.silence();
    let noticed = poll_until(Duration::from_secs(10), || {
        server.blocking_metric("envoi_policy_load_failures_total") > failures
    })
    .unwrap_or_else(|| {
        panic!(
            "a silent database not noticed within 10 s\n--- log ---\n{}",
            server.stderr()
        )
    });
    eprintln!("the silent database noticed after {noticed:?}");
    assert!(server.stderr().contains("stopped answering"), "{}", server.stderr());
    let ready = server.blocking_get("/readyz", None);
    assert_eq!(ready.status, 200, "no max staleness: still ready {ready:?}");
    assert!(
        ready.json()["snapshot_age_seconds"].as_u64() >= Some(2),
        "the snapshot is not confirmed any more: {ready:?}"
    );
    assert!(server.blocking_metric("envoi_policy_snapshot_age_seconds") >= 2.0);
    assert_eq!(
        ready.json()["source"],
        "unreachable",
        "readyz says the database is away: {ready:?}"
    );
    assert_eq!(server.blocking_metric("envoi_policy_source_up"), 0.0);
    let answer = server.blocking_get("/", Some(&token_for()));
    assert_eq!((answer.status, answer.json()), (200, want), "the last good snapshot");

    // A change the replica cannot see yet (the command line reaches the database directly).
    env.put("db_password", "value-2");
    proxy.up();
    let took = server.blocking_wait_for(
        WORKLOAD,
        &env_body(&[("DB_PASSWORD", "value-2")]),
        Duration::from_secs(10),
    );
    eprintln!("the change made during the silence served {took:?} after the network healed");
    assert!(
        took < Duration::from_secs(1),
        "served {took:?} after the network healed\n--- log ---\n{}",
        server.stderr()
    );
    let ready = server.blocking_get("/readyz", None).json();
    assert!(ready["snapshot_age_seconds"].as_u64() <= Some(1), "{ready}");
    assert_eq!(ready["source"], "reachable", "{ready}");
    assert_eq!(server.blocking_metric("envoi_policy_source_up"), 1.0);
}

/// The same database gone silent, where the silenced connections stay silent even once
/// the network is back (a firewall or NAT that forgot them): only new connections get
/// through. With a maximum staleness, `/readyz` says "stale" within 10 s; once new
/// connections get through, a change made meanwhile is served within a second, and the
/// server sides of the connections given up on are ended.
#[test]
fn a_database_that_forgot_the_old_connections_is_reached_on_new_ones_within_1_s() {
    let Some((db, env, proxy)) = through_proxy(
        "a_database_that_forgot_the_old_connections_is_reached_on_new_ones_within_1_s",
        true,
        "max_staleness_seconds = 4",
    ) else {
        return;
    };
    let (server, _) = serving_the_first_value(&env);

    let before = db.strings(&format!(
        "SELECT format('%L', pid::text || ' ' || backend_start::text) FROM pg_stat_activity \
         WHERE datname = '{}' AND application_name = 'envoi'",
        db.name
    ));
    assert!(!before.is_empty(), "envoi has no connection to the database");

    proxy.silence();
    let stale = server.blocking_wait_for_status("/readyz", None, 503, Duration::from_secs(10));
    assert_eq!(stale.json()["status"], "stale", "{stale:?}");

    env.put("db_password", "value-2");
    proxy.up_for_new_connections();
    let took = server.blocking_wait_for(
        WORKLOAD,
        &env_body(&[("DB_PASSWORD", "value-2")]),
        Duration::from_secs(10),
    );
    eprintln!("the change made during the silence served {took:?} after new connections got through");
    assert!(
        took < Duration::from_secs(1),
        "served {took:?} after new connections got through\n--- log ---\n{}",
        server.stderr()
    );
    assert_eq!(server.blocking_get("/readyz", None).status, 200);

    // The server sides of the connections given up on would otherwise linger, idle, for as
    // long as the server's TCP keepalive lets them: envoi ends them once it is back.
    let lingering = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid::text || ' ' || backend_start::text IN ({})",
        before.join(", ")
    );
    let ended = poll_until(Duration::from_secs(5), || db.int(&lingering) == 0);
    assert!(
        ended.is_some(),
        "{} of envoi's connections from before the silence still on the server\n--- log ---\n{}",
        db.int(&lingering),
        server.stderr()
    );
}
