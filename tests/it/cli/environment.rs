//! A hostile environment: variables whose bytes are not UTF-8. envoi reads only its own
//! (`ENVOI__…`, `DATABASE_URL`, a policy's `env` sources); any other is left alone, and
//! one of its own that is not UTF-8 is named, never shown, and never a panic.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;

use crate::support::{example_policy, jwt, Ran, Server, Workspace};

const SECRET: &str = "secret-bytes-4e1d7a";

/// `SECRET` after a byte that no UTF-8 text holds.
fn not_utf8(text: &str) -> OsString {
    let mut bytes = vec![0xff];
    bytes.extend_from_slice(text.as_bytes());
    OsString::from_vec(bytes)
}

#[track_caller]
fn assert_no_panic(ran: &Ran) {
    assert_ne!(ran.code, Some(101), "envoi panicked\n{ran}");
    assert!(!ran.stderr.contains("panicked"), "envoi panicked\n{ran}");
}

#[test]
fn a_variable_that_is_not_utf8_and_not_envois_changes_no_command() {
    let ws = Workspace::new();
    ws.config_with_key("environment-test-key", &example_policy());
    let workload = ["--project", "billing", "--type", "service", "--id", "api"];
    let commands: [&[&str]; 3] = [&["check"], &["token"], &["explain"]];
    for command in commands {
        let mut cmd = ws.envoi(command);
        if command != ["check"] {
            cmd.args(workload);
        }
        cmd.args(["--config", "envoi.toml"]).env("SOME_TOKEN", not_utf8(SECRET));
        let ran = Ran::of(cmd);
        assert_no_panic(&ran);
        ran.never_shows(SECRET);
        assert_eq!(ran.code, Some(0), "envoi {command:?} as without the variable\n{ran}");
    }
}

#[tokio::test]
async fn serve_starts_and_answers_beside_a_variable_that_is_not_utf8() {
    let ws = Workspace::new();
    ws.config_with_key("environment-test-key", &example_policy());
    let value = not_utf8(SECRET);
    let mut server = Server::start_with(
        ws.path(),
        &["serve", "--config", "envoi.toml"],
        &[("SOME_TOKEN", value.as_os_str())],
    );
    let now = jwt::now();
    let token = jwt::sign(
        "environment-test-key",
        &jwt::claims("billing", "service", "api", now, now + 600),
    );
    let response = reqwest::Client::new()
        .get(format!("{}/", server.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /");
    assert_eq!(response.status(), 200);
    assert_eq!(server.terminate().code(), Some(0), "{}", server.output());
    assert!(!server.output().contains(SECRET), "{}", server.output());
}

#[test]
fn a_setting_whose_variable_is_not_utf8_is_named_and_never_shown() {
    let ws = Workspace::new();
    ws.config_with_key("environment-test-key", &example_policy());
    for var in [
        "ENVOI__AUTH__SECRETS",
        "ENVOI__SERVER__LISTEN",
        "ENVOI__STORE__PATH",
        "ENVOI__NOT_A_SETTING",
    ] {
        let ran = Ran::of(ws.envoi(["check", "--config", "envoi.toml"]).env(var, not_utf8(SECRET)));
        assert_no_panic(&ran);
        let ran = ran.failure();
        ran.stderr_names(var)
            .stderr_names("not valid UTF-8")
            .never_shows(SECRET);
    }
}

#[test]
fn a_database_url_that_is_not_utf8_is_named_and_never_shown() {
    let ws = Workspace::new();
    ws.config_with_key("environment-test-key", &example_policy());
    let url = not_utf8(&format!("postgres://envoi:{SECRET}@db/envoi"));
    let ran = Ran::of(
        ws.envoi(["check", "--config", "envoi.toml"])
            .env("ENVOI__STORE__KIND", "postgres")
            .env("DATABASE_URL", url),
    );
    assert_no_panic(&ran);
    ran.failure()
        .stderr_names("DATABASE_URL")
        .stderr_names("not valid UTF-8")
        .never_shows(SECRET);
}

/// A policy's `env` source is read as bytes: an ENV item must be text and is refused by
/// name, a FILE item takes them as they are.
#[test]
fn a_policy_env_source_that_is_not_utf8_is_named_for_an_env_item_and_kept_for_a_file() {
    let ws = Workspace::new();
    let bytes = || not_utf8(SECRET);
    let policy = ws.write(
        "env-item.toml",
        "[[grants]]\nproject = \"*\"\nenv = { TOKEN = { env = \"ENVOI_TEST_BYTES\" } }\n",
    );
    ws.config_with_key("environment-test-key", &policy);
    let ran = Ran::of(
        ws.envoi(["check", "--config", "envoi.toml"])
            .env("ENVOI_TEST_BYTES", bytes()),
    );
    assert_no_panic(&ran);
    ran.failure()
        .stderr_names("ENVOI_TEST_BYTES")
        .stderr_names("TOKEN")
        .never_shows(SECRET);

    let policy = ws.write(
        "file-item.toml",
        "[[grants]]\nproject = \"*\"\n[[grants.files]]\npath = \"/run/token\"\nenv = \"ENVOI_TEST_BYTES\"\n",
    );
    ws.config_with_key("environment-test-key", &policy);
    let ran = Ran::of(
        ws.envoi(["explain", "--config", "envoi.toml", "--show-values"])
            .args(["--project", "p", "--type", "t", "--id", "i"])
            .env("ENVOI_TEST_BYTES", bytes()),
    );
    assert_no_panic(&ran);
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes().into_vec());
    ran.success().stdout_names(&format!("/run/token = base64:{encoded}"));
}
