//! Settings that work but are weak are said when `check` and `serve` start: a short
//! shared signing secret, a key file that others may read, plain HTTP off loopback. The
//! setting is named, never its value.

use std::os::unix::fs::PermissionsExt as _;

use crate::support::{toml_string, Ran, Server, Workspace};

const SHORT_SECRET: &str = "hunter2";
const LONG_SECRET: &str = "a-long-random-shared-secret-of-48-characters-abc";

/// A workspace whose `envoi.toml` has the signing secret `secret`, a master key file in
/// `mode`, and the example policy.
fn workspace(secret: &str, key_mode: u32) -> Workspace {
    let ws = Workspace::new();
    let key = Ran::of(ws.envoi(["keygen"])).success().last_line().to_owned();
    let key_file = ws.write("master.key", format!("{key}\n"));
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(key_mode)).unwrap();
    ws.write(
        "envoi.toml",
        format!(
            "[auth]\nsecrets = [{}]\n\n[store]\npath = {}\n\n[seal]\nkey_files = [\"master.key\"]\n",
            toml_string(secret),
            toml_string(&crate::support::example_policy().display().to_string()),
        ),
    );
    ws
}

#[test]
fn check_warns_of_each_weak_setting_by_name_and_never_shows_its_value() {
    let ws = workspace(SHORT_SECRET, 0o644);
    let ran = Ran::of(
        ws.envoi(["check", "--config", "envoi.toml"])
            .env("ENVOI__SERVER__LISTEN", "0.0.0.0:8080"),
    )
    .success();
    let warnings: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: weak setting"))
        .collect();
    assert_eq!(warnings.len(), 3, "three weak settings\n{ran}");
    for (setting, why) in [
        ("`auth.secrets`", "shorter than 32 bytes"),
        ("`seal.key_files`", "0644"),
        ("`server.listen`", "plain HTTP"),
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(setting) && w.contains(why)),
            "a warning names {setting} ({why})\n{ran}"
        );
    }
    ran.never_shows(SHORT_SECRET).never_shows("0.0.0.0");
    ran.stdout_names("ok:");
}

#[test]
fn check_is_quiet_about_strong_settings() {
    let ws = workspace(LONG_SECRET, 0o400);
    let ran = Ran::of(ws.envoi(["check", "--config", "envoi.toml"])).success();
    assert!(!ran.stderr.contains("warning"), "{ran}");
    // Plain HTTP is for loopback: another loopback address is not weak either.
    let ran = Ran::of(
        ws.envoi(["check", "--config", "envoi.toml"])
            .env("ENVOI__SERVER__LISTEN", "[::1]:8443"),
    )
    .success();
    assert!(!ran.stderr.contains("warning"), "{ran}");
}

#[test]
fn a_short_secret_in_a_secret_file_is_weak_too() {
    let ws = workspace(LONG_SECRET, 0o400);
    let file = ws.write("platform.key", format!("{SHORT_SECRET}\n"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let ran = Ran::of(
        ws.envoi(["check", "--config", "envoi.toml"])
            .env("ENVOI__AUTH__SECRET_FILES", "platform.key"),
    )
    .success();
    ran.stderr_names("`auth.secret_files`")
        .stderr_names("platform.key")
        .stderr_names("shorter than 32 bytes")
        .never_shows(SHORT_SECRET);
}

#[test]
fn serve_logs_the_weak_settings_as_it_starts() {
    let ws = workspace(SHORT_SECRET, 0o640);
    let mut server = Server::serve(ws.path(), &ws.join("envoi.toml"));
    let stderr = server.stderr();
    let weak: Vec<&str> = stderr.lines().filter(|l| l.contains("weak setting")).collect();
    assert!(
        weak.iter().any(|l| l.contains("auth.secrets") && l.contains("WARN")),
        "{stderr}"
    );
    assert!(
        weak.iter().any(|l| l.contains("seal.key_files") && l.contains("0640")),
        "{stderr}"
    );
    assert!(!stderr.contains(SHORT_SECRET), "the secret is never logged\n{stderr}");
    assert_eq!(server.terminate().code(), Some(0), "{}", server.output());
}
