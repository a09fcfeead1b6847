//! Black-box tests of the Postgres store (SPEC §2 "Stores", §4): the real binary against
//! a real Postgres. Each test makes a database of its own (`envoi_t_<random>`) through
//! `DATABASE_URL` and drops it when it ends, even when it fails. Without `DATABASE_URL`
//! the tests that need one say so loudly and return (they fail instead when
//! `ENVOI_REQUIRE_DATABASE=1`).
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test --test it postgres::`

mod cli;
mod db;
mod env;
mod errors;
mod history;
mod import;
mod listing;
mod outage;
mod patches;
mod progress;
mod proxy;
mod replicas;
mod writes;

use crate::support::jwt::SIGNING_KEY;
use crate::support::{clean_command, toml_string, Ran};
use db::Db;
use env::Env;

/// `store.kind = "postgres"` with neither `store.url` nor `DATABASE_URL`: `check` fails
/// and names the setting. With `DATABASE_URL` (and a migrated database) it passes.
#[test]
fn check_without_a_url_names_store_url() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = dir.path().join("envoi.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nsecrets = [{}]\n\n[store]\nkind = \"postgres\"\n",
            toml_string(SIGNING_KEY)
        ),
    )
    .expect("write the config");
    let mut cmd = assert_cmd::Command::from_std(clean_command(dir.path()));
    cmd.args(["check", "--config"])
        .arg(&config)
        .timeout(std::time::Duration::from_secs(20));
    let ran = Ran::of(cmd).failure();
    ran.stderr_names("store.url");
    ran.stderr_names("DATABASE_URL");

    // The same config works once DATABASE_URL names a database.
    let Some(db) = Db::create("check_without_a_url_names_store_url") else {
        return;
    };
    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    let mut cmd = assert_cmd::Command::from_std(clean_command(dir.path()));
    cmd.args(["check", "--config"])
        .arg(&config)
        .env("DATABASE_URL", &db.url)
        .timeout(std::time::Duration::from_secs(20));
    let ran = Ran::of(cmd).success();
    ran.stdout_names("postgres");
}

/// TLS to the database through rustls: with `sslmode=require` in the URL, a serving
/// replica's connections are encrypted (as Postgres itself reports in `pg_stat_ssl`).
/// Skipped, loudly, when the server has TLS off.
#[test]
fn a_replica_talks_tls_to_postgres_when_the_url_asks_for_it() {
    let Some(db) = Db::create("tls") else { return };
    if db.strings("SHOW ssl") != ["on"] {
        eprintln!("SKIPPED: this PostgreSQL has ssl = off; TLS to the database is not tried");
        return;
    }
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let tls_url = format!("{}{separator}sslmode=require", db.url);
    let env = Env::new(&tls_url);
    env.config("envoi.toml", &tls_url, "");
    env.envoi(&["db", "migrate"], b"").success();
    let _server = env.serve("envoi.toml");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let encrypted = db.strings(&format!(
            "SELECT s.ssl::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'envoi' AND a.datname = '{}'",
            db.name
        ));
        if !encrypted.is_empty() {
            assert!(
                encrypted.iter().all(|ssl| ssl == "true"),
                "envoi's connections: {encrypted:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection of envoi's seen in pg_stat_activity"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
