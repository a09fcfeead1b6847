//! `envoi explain`: what a workload receives, which grant gave each item and which it
//! overrode; values masked unless `--show-values` (SPEC §4).

use std::collections::BTreeMap;

use crate::support::{Ran, Workspace};

const POLICY: &str = r#"
[secrets.team_password]
file = "secrets/team.txt"            # relative: beside this policy file

[secrets.api_token]
env = "ENVOI_TEST_EXPLAIN_VAR"

[secrets.literal]
value = "literal-value-7e3f"

[secrets.cert]
file = "secrets/cert.der"            # not UTF-8

[[grants]]
name = "everyone"
project = "*"
env = { LOG_LEVEL = { value = "info-from-everyone" } }

[[grants]]
name = "team"
project = "billing"
env = { LOG_LEVEL = { value = "warn-from-team" }, DB_PASSWORD = "team_password" }

[[grants]]
name = "billing-api"
project = "billing"
type = "service"
id = "api"
env = { LOG_LEVEL = { value = "debug-from-api" }, API_TOKEN = "api_token" }

[[grants.files]]
path = "/etc/app/cert.der"
secret = "cert"

[[grants.files]]
path = "/etc/app/note.txt"
secret = "literal"
"#;

const VALUES: &[&str] = &[
    "file-value-9c2d",
    "env-value-41aa",
    "literal-value-7e3f",
    "info-from-everyone",
    "warn-from-team",
    "debug-from-api",
];

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("policy/secrets/team.txt", "file-value-9c2d");
    ws.write("policy/secrets/cert.der", [0xff, 0x00, 0x01]);
    let policy = ws.write("policy/main.toml", POLICY);
    ws.config_with_key("explain-key", &policy);
    ws
}

fn explain(ws: &Workspace, workload: [&str; 3], extra: &[&str]) -> Ran {
    let [project, kind, id] = workload;
    Ran::of(
        ws.envoi([
            "explain",
            "--config",
            "envoi.toml",
            "--project",
            project,
            "--type",
            kind,
            "--id",
            id,
        ])
        .args(extra)
        .env("ENVOI_TEST_EXPLAIN_VAR", "env-value-41aa"),
    )
    .success()
}

/// Each item's block of lines (`ENV KEY = …` and the indented lines under it), by target.
fn blocks(stdout: &str) -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in stdout.lines() {
        if line.starts_with("ENV ") || line.starts_with("FILE ") {
            if let Some((target, block)) = current.take() {
                blocks.insert(target, block);
            }
            let target = line.split(" = ").next().unwrap_or(line).to_owned();
            current = Some((target, format!("{line}\n")));
        } else if let Some((_, block)) = current.as_mut() {
            if line.starts_with(' ') {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    if let Some((target, block)) = current {
        blocks.insert(target, block);
    }
    blocks
}

#[test]
fn explain_names_the_grant_of_each_item_and_the_grants_it_overrode() {
    let ws = workspace();
    let ran = explain(&ws, ["billing", "service", "api"], &[]);
    let blocks = blocks(&ran.stdout);
    let targets: Vec<&str> = blocks.keys().map(String::as_str).collect();
    assert_eq!(
        targets,
        [
            "ENV API_TOKEN",
            "ENV DB_PASSWORD",
            "ENV LOG_LEVEL",
            "FILE /etc/app/cert.der",
            "FILE /etc/app/note.txt"
        ],
        "\n{ran}"
    );

    let log_level = &blocks["ENV LOG_LEVEL"];
    assert!(log_level.contains("via grant `billing-api`"), "{log_level}\n{ran}");
    assert!(log_level.contains("overrides grant `team`"), "{log_level}\n{ran}");
    assert!(log_level.contains("overrides grant `everyone`"), "{log_level}\n{ran}");

    let db = &blocks["ENV DB_PASSWORD"];
    assert!(db.contains("via grant `team`"), "{db}\n{ran}");
    assert!(db.contains("secret `team_password`"), "{db}\n{ran}");
    assert!(!db.contains("overrides"), "nothing else gives DB_PASSWORD\n{ran}");

    assert!(
        blocks["FILE /etc/app/cert.der"].contains("via grant `billing-api`"),
        "\n{ran}"
    );
}

#[test]
fn explain_masks_every_value_by_default() {
    let ws = workspace();
    let ran = explain(&ws, ["billing", "service", "api"], &[]);
    for value in VALUES {
        ran.never_shows(value);
    }
    ran.never_shows("/wAB");
    assert!(ran.stdout.contains("********"), "values are shown masked\n{ran}");
}

#[test]
fn explain_shows_values_with_show_values_and_binary_files_as_base64() {
    let ws = workspace();
    let ran = explain(&ws, ["billing", "service", "api"], &["--show-values"]);
    let blocks = blocks(&ran.stdout);
    for (target, value) in [
        ("ENV API_TOKEN", "env-value-41aa"),
        ("ENV DB_PASSWORD", "file-value-9c2d"),
        ("ENV LOG_LEVEL", "debug-from-api"),
        ("FILE /etc/app/note.txt", "literal-value-7e3f"),
        ("FILE /etc/app/cert.der", "base64:/wAB"),
    ] {
        let first_line = blocks[target].lines().next().unwrap();
        assert!(first_line.contains(value), "{target} should show {value}\n{ran}");
    }
    // The overridden values are not what the workload receives.
    ran.never_shows("warn-from-team").never_shows("info-from-everyone");
}

#[test]
fn explain_for_a_workload_only_the_catch_all_matches() {
    let ws = workspace();
    let ran = explain(&ws, ["web", "job", "nightly"], &[]);
    let blocks = blocks(&ran.stdout);
    assert_eq!(blocks.keys().collect::<Vec<_>>(), ["ENV LOG_LEVEL"], "\n{ran}");
    assert!(blocks["ENV LOG_LEVEL"].contains("via grant `everyone`"), "\n{ran}");
    assert!(!ran.stdout.contains("overrides"), "\n{ran}");
}

#[test]
fn explain_does_not_need_a_signing_key() {
    let ws = Workspace::new();
    let policy = ws.write(
        "policy.toml",
        "[[grants]]\nproject = \"a\"\nenv = { X = { value = \"y\" } }\n",
    );
    let config = ws.write(
        "envoi.toml",
        format!(
            "[store]\npath = {}\n",
            crate::support::toml_string(&policy.display().to_string())
        ),
    );
    let ran = Ran::of(
        ws.envoi(["explain", "--project", "b", "--type", "t", "--id", "i", "--config"])
            .arg(&config),
    )
    .success();
    ran.stdout_names("0 item(s)");
}

#[test]
fn explain_refuses_a_broken_policy_naming_the_problem() {
    let ws = Workspace::new();
    let policy = ws.write(
        "policy.toml",
        "[[grants]]\nproject = \"a\"\nenv = { X = \"undefined_secret\" }\n",
    );
    let config = ws.config_with_key("k", &policy);
    let ran = Ran::of(
        ws.envoi(["explain", "--project", "a", "--type", "t", "--id", "i", "--config"])
            .arg(&config),
    )
    .failure();
    ran.stderr_names("undefined_secret");
}

#[test]
fn explain_refuses_an_empty_workload_name() {
    let ws = workspace();
    let ran = Ran::of(
        ws.envoi([
            "explain",
            "--config",
            "envoi.toml",
            "--project",
            "",
            "--type",
            "service",
            "--id",
            "api",
        ])
        .env("ENVOI_TEST_EXPLAIN_VAR", "x"),
    )
    .failure();
    ran.stderr_names("--project");
}
