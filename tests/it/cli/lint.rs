//! `envoi check` lint: what loads but is likely a mistake is a warning, and
//! `check --strict` makes warnings errors (SPEC §4).

use crate::support::{Ran, Workspace};

const LINTED: &str = r#"[secrets.tls_key]
value = "-----BEGIN PRIVATE KEY-----\nlint-key-body-77\n-----END PRIVATE KEY-----\n"

[secrets.cert]
value = "-----BEGIN CERTIFICATE-----\nlint-cert-body-88\n-----END CERTIFICATE-----\n"

[[grants]]
name = "wide-key"
project = "a"

[[grants.files]]
path = "/etc/a/key.pem"
secret = "tls_key"
mode = "0644"

[[grants.files]]
path = "/etc/a/cert.pem"
secret = "cert"
mode = "0644"

[[grants]]
name = "bare-key"
project = "b"

[[grants.files]]
path = "/etc/b/key.pem"
secret = "tls_key"

[[grants]]
name = "tight-key"
project = "c"

[[grants.files]]
path = "/etc/c/key.pem"
secret = "tls_key"
mode = "0400"

[[grants]]
name = "double-slash"
project = "d"

[[grants.files]]
path = "/etc/d//cert.pem"
secret = "cert"

[[grants]]
name = "single-slash"
project = "d*"

[[grants.files]]
path = "/etc/d/cert.pem"
secret = "cert"

[[grants]]
name = "folder"
project = "e"

[[grants.files]]
path = "/etc/e"
secret = "cert"

[[grants]]
name = "inside"

[[grants.files]]
path = "/etc/e/cert.pem"
secret = "cert"

[[grants]]
name = "elsewhere-folder"
project = "f"

[[grants.files]]
path = "/etc/g"
secret = "cert"

[[grants]]
name = "elsewhere-inside"
project = "g"

[[grants.files]]
path = "/etc/g/cert.pem"
secret = "cert"
"#;

const CLEAN: &str = r#"[[grants]]
project = "*"
env = { LOG_LEVEL = { value = "info" } }

[[grants.files]]
path = "/etc/app/key.pem"
value = "-----BEGIN EC PRIVATE KEY-----\nclean-key-body-99\n-----END EC PRIVATE KEY-----\n"
mode = "0600"
"#;

fn check(policy: &str, extra: &[&str]) -> Ran {
    let ws = Workspace::new();
    let path = ws.write("policy.toml", policy);
    ws.config_with_key("lint-key-long-enough-for-no-weak-warning", &path);
    let mut ran = Ran::of(ws.envoi(["check", "--config", "envoi.toml"]).args(extra));
    let folder = format!("{}/", ws.path().display());
    ran.stdout = ran.stdout.replace(&folder, "");
    ran.stderr = ran.stderr.replace(&folder, "");
    for value in ["lint-key-body-77", "lint-cert-body-88", "clean-key-body-99"] {
        ran.never_shows(value);
    }
    ran
}

fn warnings(ran: &Ran) -> Vec<&str> {
    ran.stderr.lines().filter_map(|l| l.strip_prefix("warning: ")).collect()
}

#[test]
fn check_warns_of_private_keys_served_too_widely_and_of_files_that_collide() {
    let ran = check(LINTED, &[]).success();
    assert_eq!(
        warnings(&ran),
        [
            "grant `bare-key` (policy.toml:21): FILE /etc/b/key.pem holds a private key and is served without permissions: give `mode = \"0400\"` (or 0600)",
            "grant `wide-key` (policy.toml:7): FILE /etc/a/key.pem holds a private key and is served with mode 0644, wider than 0600",
            "FILE /etc/e (grant `folder` (policy.toml:54)) is a folder of FILE /etc/e/cert.pem (grant `inside` (policy.toml:62)): a workload both select cannot have both",
            "FILE /etc/d//cert.pem (grant `double-slash` (policy.toml:38)) and FILE /etc/d/cert.pem (grant `single-slash` (policy.toml:46)) are one file, /etc/d/cert.pem, given twice to the workloads both select",
        ],
        "\n{ran}"
    );
    ran.stdout_names("ok: 9 grants");
}

#[test]
fn check_strict_makes_warnings_errors() {
    let ran = check(LINTED, &["--strict"]).failure();
    ran.stderr_names("4 warning(s), and --strict treats warnings as errors");
    assert_eq!(warnings(&ran).len(), 4, "\n{ran}");
}

#[test]
fn check_of_a_clean_policy_has_no_warning_even_when_strict() {
    let ran = check(CLEAN, &["--strict"]).success();
    assert!(warnings(&ran).is_empty(), "\n{ran}");
}

#[test]
fn check_refuses_relative_and_dotted_file_paths_and_unportable_env_keys_outright() {
    for (case, grant, named) in [
        (
            "relative",
            "[[grants.files]]\npath = \"etc/app\"\nvalue = \"v\"\n",
            "must be absolute",
        ),
        (
            "dotdot",
            "[[grants.files]]\npath = \"/etc/../app\"\nvalue = \"v\"\n",
            "`..`",
        ),
        ("env key", "env = { \"A-B\" = { value = \"v\" } }\n", "`A-B`"),
    ] {
        let policy = format!("[[grants]]\nproject = \"*\"\n{grant}");
        let ran = check(&policy, &[]).failure();
        assert!(ran.stderr.contains(named), "{case}: should name {named}\n{ran}");
    }
}

#[test]
fn check_json_reports_counts_warnings_and_errors() {
    let ran = check(LINTED, &["--format", "json"]).success();
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(json["ok"], true, "\n{ran}");
    assert_eq!(json["grants"], 9);
    assert_eq!(json["secrets"], 2);
    assert_eq!(json["signing_keys"], 1);
    assert_eq!(json["errors"], serde_json::json!([]));
    assert_eq!(json["warnings"].as_array().unwrap().len(), 4);
    assert!(json["store"].as_str().unwrap().ends_with("policy.toml"), "\n{ran}");

    let ran = check(LINTED, &["--format", "json", "--strict"]).failure();
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(json["ok"], false);
    assert_eq!(json["errors"].as_array().unwrap().len(), 1, "\n{ran}");

    let ran = check("[[grants]]\nenv = { X = \"missing\" }\n", &["--format", "json"]).failure();
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(json["ok"], false);
    assert_eq!(json["grants"], serde_json::Value::Null);
    assert!(json["errors"][0].as_str().unwrap().contains("missing"), "\n{ran}");
}
