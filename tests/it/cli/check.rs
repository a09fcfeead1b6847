//! `envoi check`: loads configuration and policy as `serve` would, exit 0 or every
//! problem named (SPEC §4, §5), and the layering of configuration sources.

use crate::support::{example_policy, toml_string, Ran, Workspace};

/// A policy with three kinds of problem that only the compiler can find: an
/// equal-specificity conflict, an undefined secret and an unset variable.
const BROKEN_POLICY: &str = r#"
[secrets.alpha]
value = "conflicting-value-alpha"

[secrets.beta]
value = "conflicting-value-beta"

[[grants]]
name = "pay-prefix"
project = "pay-*"
env = { REGION = "alpha" }

[[grants]]
name = "api-suffix"
project = "*-api"
env = { REGION = "beta" }

[[grants]]
name = "web-team"
project = "web"
env = { DB_PASSWORD = "no_such_secret", TOKEN = { env = "ENVOI_TEST_UNSET_VARIABLE" } }
"#;

const GOOD_POLICY: &str = r#"
[[grants]]
project = "*"
env = { LOG_LEVEL = { value = "info" } }
"#;

#[test]
fn check_accepts_a_config_that_points_at_the_example_policy() {
    let ws = Workspace::new();
    let config = ws.config_with_key("check-key", &example_policy());
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).success();
    ran.stdout_names("ok:").stdout_names("1 signing key(s)");
}

#[test]
fn check_names_both_grants_of_an_equal_specificity_conflict() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", BROKEN_POLICY);
    let config = ws.config_with_key("check-key", &policy);
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).failure();
    let conflict = ran
        .stderr
        .lines()
        .find(|l| l.contains("pay-prefix"))
        .unwrap_or_else(|| panic!("no line names grant `pay-prefix`\n{ran}"));
    assert!(conflict.contains("api-suffix"), "the conflict names both grants\n{ran}");
    assert!(conflict.contains("REGION"), "the conflict names the key\n{ran}");
    // The values in conflict may be secrets: the message names, it does not show.
    ran.never_shows("conflicting-value-alpha")
        .never_shows("conflicting-value-beta");
}

#[test]
fn check_names_every_problem_of_a_policy_at_once() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", BROKEN_POLICY);
    let config = ws.config_with_key("check-key", &policy);
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).failure();
    ran.stderr_names("pay-prefix")
        .stderr_names("no_such_secret")
        .stderr_names("web-team")
        .stderr_names("ENVOI_TEST_UNSET_VARIABLE");
    assert!(
        ran.stdout.trim().is_empty(),
        "nothing on stdout for a failed check\n{ran}"
    );
}

#[test]
fn check_names_an_unknown_key_in_the_policy_and_where_it_stands() {
    let ws = Workspace::new();
    let policy = ws.write(
        "policy.toml",
        "[[grants]]\nname = \"web\"\nproject = \"web\"\ncolour = \"blue\"\nenv = { A = { value = \"x\" } }\n",
    );
    let config = ws.config_with_key("check-key", &policy);
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).failure();
    ran.stderr_names("colour").stderr_names("policy.toml:4");
}

#[test]
fn check_names_an_unknown_key_in_a_secret_definition() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", "[secrets.db]\nvalu = \"typo\"\n");
    let config = ws.config_with_key("check-key", &policy);
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).failure();
    ran.stderr_names("valu");
}

#[test]
fn check_names_an_unknown_key_in_the_config_file() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", GOOD_POLICY);
    let config = ws.write(
        "envoi.toml",
        format!(
            "[server]\nlistn = \"127.0.0.1:1\"\n[auth]\nsecrets = [\"k\"]\n[store]\npath = {}\n",
            toml_string(&policy.display().to_string())
        ),
    );
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).failure();
    ran.stderr_names("listn");
}

#[test]
fn check_names_the_setting_to_give_when_no_signing_key_is_configured() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", GOOD_POLICY);
    let config = ws.write(
        "envoi.toml",
        format!("[store]\npath = {}\n", toml_string(&policy.display().to_string())),
    );
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).failure();
    ran.stderr_names("auth.secrets").stderr_names("ENVOI__AUTH__SECRETS");
}

#[test]
fn check_without_a_signing_key_still_names_the_policy_problems() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", BROKEN_POLICY);
    let config = ws.write(
        "envoi.toml",
        format!("[store]\npath = {}\n", toml_string(&policy.display().to_string())),
    );
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).failure();
    ran.stderr_names("auth.secrets").stderr_names("no_such_secret");
}

#[test]
fn check_fails_on_a_config_file_that_does_not_exist() {
    let ws = Workspace::new();
    let ran = Ran::of(ws.envoi(["check", "--config", "missing.toml"])).failure();
    ran.stderr_names("missing.toml");
}

#[test]
fn check_names_a_policy_file_that_does_not_exist() {
    let ws = Workspace::new();
    let config = ws.config_with_key("check-key", &ws.path().join("nowhere.toml"));
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).failure();
    ran.stderr_names("nowhere.toml");
}

#[test]
fn relative_paths_in_a_config_file_resolve_against_its_folder() {
    let ws = Workspace::new();
    ws.write("etc/envoi/policies/main.toml", GOOD_POLICY);
    ws.write("etc/envoi/keys/platform.key", "key-from-a-file\n");
    let config = ws.write(
        "etc/envoi/envoi.toml",
        "[auth]\nsecret_files = [\"keys/platform.key\"]\n\n[store]\npath = \"policies/main.toml\"\n",
    );
    // Run from a folder where neither relative path exists.
    let elsewhere = ws.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config).current_dir(&elsewhere)).success();
    ran.stdout_names("1 signing key(s)").stdout_names("main.toml");
}

#[test]
fn auth_secret_files_add_to_auth_secrets() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", GOOD_POLICY);
    let key_file = ws.write("previous.key", "previous-shared-secret\n");
    let config = ws.write(
        "envoi.toml",
        format!(
            "[auth]\nsecrets = [\"current-shared-secret\"]\nsecret_files = [{}]\n[store]\npath = {}\n",
            toml_string(&key_file.display().to_string()),
            toml_string(&policy.display().to_string())
        ),
    );
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).success();
    ran.stdout_names("2 signing key(s)")
        .never_shows("current-shared-secret")
        .never_shows("previous-shared-secret");
}

#[test]
fn an_unreadable_secret_file_names_the_setting_and_the_path() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", GOOD_POLICY);
    let config = ws.write(
        "envoi.toml",
        format!(
            "[auth]\nsecret_files = [\"missing.key\"]\n[store]\npath = {}\n",
            toml_string(&policy.display().to_string())
        ),
    );
    let ran = Ran::of(ws.envoi(["check", "--config"]).arg(&config)).failure();
    ran.stderr_names("auth.secret_files").stderr_names("missing.key");
}

#[test]
fn envoi_store_path_overrides_the_config_file() {
    let ws = Workspace::new();
    let broken = ws.write("broken.toml", BROKEN_POLICY);
    let good = ws.write("good.toml", GOOD_POLICY);
    let config = ws.config_with_key("check-key", &broken);
    // The file alone fails; the variable wins over it.
    Ran::of(ws.envoi(["check", "--config"]).arg(&config)).failure();
    let ran = Ran::of(
        ws.envoi(["check", "--config"])
            .arg(&config)
            .env("ENVOI__STORE__PATH", &good),
    )
    .success();
    ran.stdout_names("good.toml");
}

#[test]
fn envoi_config_variable_names_the_config_file() {
    let ws = Workspace::new();
    let config = ws.config_with_key("check-key", &example_policy());
    Ran::of(ws.envoi(["check"]).env("ENVOI_CONFIG", &config)).success();
}

#[test]
fn envoi_auth_secrets_gives_the_signing_keys_comma_separated() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", GOOD_POLICY);
    let ran = Ran::of(
        ws.envoi(["check"])
            .env("ENVOI__AUTH__SECRETS", "env-key-one,env-key-two")
            .env("ENVOI__STORE__PATH", &policy),
    )
    .success();
    ran.stdout_names("2 signing key(s)");
}

#[test]
fn envoi_auth_secret_files_reads_the_signing_key_from_a_file() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", GOOD_POLICY);
    let key = ws.write("platform.key", "key-in-a-file\n");
    let ran = Ran::of(
        ws.envoi(["check"])
            .env("ENVOI__AUTH__SECRET_FILES", &key)
            .env("ENVOI__STORE__PATH", &policy),
    )
    .success();
    ran.stdout_names("1 signing key(s)");
}

#[test]
fn a_configuration_error_never_echoes_a_signing_key() {
    let ws = Workspace::new();
    let ran = Ran::of(
        ws.envoi(["check"])
            .env("ENVOI__AUTH__SECRETS", "do-not-print-this-key-5b1e")
            .env("ENVOI__STORE__PATH", ws.path().join("nowhere.toml")),
    )
    .failure();
    ran.never_shows("do-not-print-this-key-5b1e");
    // It fails for the missing policy, which it names.
    ran.stderr_names("nowhere.toml");
}

#[test]
fn a_relative_path_from_the_environment_resolves_against_the_working_directory() {
    let ws = Workspace::new();
    ws.write("policies/good.toml", GOOD_POLICY);
    let config = ws.write("etc/envoi.toml", "[auth]\nsecrets = [\"check-key\"]\n");
    Ran::of(
        ws.envoi(["check", "--config"])
            .arg(&config)
            .env("ENVOI__STORE__PATH", "policies/good.toml"),
    )
    .success();
}
