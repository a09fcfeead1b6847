//! A database that cannot be reached, or that refuses the connection, is named with its
//! cause (refused, a name that does not resolve, authentication), never with the URL's
//! password, and never as a bare "pool timed out".

use super::db::Db;
use super::env::Env;
use crate::support::free_port;

const PASSWORD: &str = "pw-that-must-never-show";

/// `envoi db migrate` on `url`, with a 1 s connection timeout.
fn migrate(url: &str) -> crate::support::Ran {
    let env = Env::new(url);
    env.run_with(
        &["--config", "envoi.toml", "db", "migrate"],
        b"",
        &[("ENVOI__STORE__CONNECT_TIMEOUT_SECONDS", "1")],
    )
}

#[test]
fn a_closed_port_is_named_connection_refused() {
    let port = free_port();
    let ran = migrate(&format!("postgres://envoi:{PASSWORD}@127.0.0.1:{port}/envoi"));
    assert_eq!(ran.code, Some(1), "{ran}");
    ran.stderr_names(&format!("127.0.0.1:{port}"))
        .stderr_names("Connection refused")
        .never_shows(PASSWORD);
    assert!(!ran.stderr.contains("pool timed out"), "the cause, not the pool\n{ran}");
}

#[test]
fn a_host_name_that_does_not_resolve_is_named() {
    let ran = migrate(&format!("postgres://envoi:{PASSWORD}@envoi-db.invalid:5432/envoi"));
    assert_eq!(ran.code, Some(1), "{ran}");
    ran.stderr_names("envoi-db.invalid:5432").never_shows(PASSWORD);
    assert!(
        ran.stderr.contains("lookup") || ran.stderr.contains("resolve") || ran.stderr.contains("not known"),
        "says the name does not resolve\n{ran}"
    );
}

#[test]
fn check_names_the_cause_too() {
    let port = free_port();
    let env = Env::new(&format!("postgres://envoi:{PASSWORD}@127.0.0.1:{port}/envoi"));
    let ran = env.run_with(
        &["--config", "envoi.toml", "check"],
        b"",
        &[("ENVOI__STORE__CONNECT_TIMEOUT_SECONDS", "1")],
    );
    assert_eq!(ran.code, Some(1), "{ran}");
    ran.stderr_names("Connection refused").never_shows(PASSWORD);
}

#[test]
fn a_role_the_server_refuses_is_named_without_the_password() {
    let Some(db) = Db::create("a_role_the_server_refuses_is_named_without_the_password") else {
        return;
    };
    let address = db.server_address();
    let url = format!("postgres://envoi_no_such_role:{PASSWORD}@{address}/{}", db.name);
    let ran = migrate(&url);
    assert_eq!(ran.code, Some(1), "{ran}");
    ran.stderr_names("envoi_no_such_role").never_shows(PASSWORD);
    assert!(
        ran.stderr.contains("does not exist") || ran.stderr.contains("authentication failed"),
        "says why the server refused\n{ran}"
    );
}
