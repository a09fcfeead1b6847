//! Sealed values from the command line (SPEC §3, §4, §5): `keygen`, `seal`, `reseal`,
//! and a policy that opens what they made.

use crate::support::{toml_string, Ran, Workspace};

const PLAINTEXT: &str = "sealed-plaintext-6a1f";

/// A new master key, as `envoi keygen` prints it on its last line.
fn keygen(ws: &Workspace) -> String {
    let ran = Ran::of(ws.envoi(["keygen"])).success();
    ran.last_line().to_owned()
}

/// The key id inside `envoi-key:v1:<id>:<key>` or `envoi:v1:<id>:<data>`.
fn key_id(text: &str) -> &str {
    text.split(':').nth(2).unwrap_or_else(|| panic!("no key id in {text}"))
}

/// Writes `envoi.toml` with the master key files given (newest first) and `policy.toml`.
fn config(ws: &Workspace, key_files: &[&str]) {
    let files: Vec<String> = key_files.iter().map(|f| toml_string(f)).collect();
    ws.write(
        "envoi.toml",
        format!(
            "[auth]\nsecrets = [\"k\"]\n\n[seal]\nkey_files = [{}]\n\n[store]\npath = \"policy.toml\"\n",
            files.join(", ")
        ),
    );
}

fn seal(ws: &Workspace, name: &str, input: &str) -> String {
    let ran = Ran::of(
        ws.envoi(["seal", "--config", "envoi.toml", "--name", name])
            .write_stdin(input),
    )
    .success();
    ran.never_shows(PLAINTEXT);
    ran.last_line().to_owned()
}

fn explain(ws: &Workspace, extra: &[&str]) -> Ran {
    Ran::of(
        ws.envoi([
            "explain",
            "--config",
            "envoi.toml",
            "--project",
            "billing",
            "--type",
            "service",
            "--id",
            "api",
        ])
        .args(extra),
    )
}

fn policy_with(name: &str, sealed: &str) -> String {
    format!(
        "# the database password, sealed\n[secrets.{name}]\nsealed = {}\n\n[[grants]]\nproject = \"billing\"\nenv = {{ DB_PASSWORD = \"{name}\" }}\n",
        toml_string(sealed)
    )
}

#[test]
fn keygen_prints_a_new_master_key_alone_on_its_last_line() {
    let ws = Workspace::new();
    let first = keygen(&ws);
    let second = keygen(&ws);
    assert!(first.starts_with("envoi-key:v1:k"), "{first}");
    assert_eq!(first.split(':').count(), 4, "{first}");
    assert_ne!(first, second, "each key is fresh");
    assert_ne!(key_id(&first), key_id(&second));
}

#[test]
fn a_value_sealed_by_envoi_seal_opens_in_the_policy_and_is_masked_by_explain() {
    let ws = Workspace::new();
    ws.write("keys/master.key", format!("{}\n", keygen(&ws)));
    config(&ws, &["keys/master.key"]);
    let sealed = seal(&ws, "db_password", &format!("{PLAINTEXT}\n"));
    assert!(sealed.starts_with("envoi:v1:k"), "{sealed}");
    ws.write("policy.toml", policy_with("db_password", &sealed));

    let shown = explain(&ws, &["--show-values"]).success();
    // `echo`'s trailing newline is not part of the value.
    shown.stdout_names(&format!("ENV DB_PASSWORD = \"{PLAINTEXT}\""));
    explain(&ws, &[]).success().never_shows(PLAINTEXT);
}

#[test]
fn a_sealed_value_moved_to_another_name_does_not_open() {
    let ws = Workspace::new();
    ws.write("master.key", keygen(&ws));
    config(&ws, &["master.key"]);
    let sealed = seal(&ws, "db_password", PLAINTEXT);
    ws.write("policy.toml", policy_with("stolen_password", &sealed));
    let ran = Ran::of(ws.envoi(["check", "--config", "envoi.toml"])).failure();
    ran.stderr_names("stolen_password").never_shows(PLAINTEXT);
}

#[test]
fn a_sealed_value_without_a_master_key_names_the_setting() {
    let ws = Workspace::new();
    ws.write("master.key", keygen(&ws));
    config(&ws, &["master.key"]);
    let sealed = seal(&ws, "db_password", PLAINTEXT);
    ws.write("policy.toml", policy_with("db_password", &sealed));
    config(&ws, &[]);
    let ran = Ran::of(ws.envoi(["check", "--config", "envoi.toml"])).failure();
    ran.stderr_names("seal.key").stderr_names("db_password");
}

#[test]
fn seal_without_a_master_key_refuses_and_names_the_setting() {
    let ws = Workspace::new();
    config(&ws, &[]);
    let ran = Ran::of(
        ws.envoi(["seal", "--config", "envoi.toml", "--name", "x"])
            .write_stdin(PLAINTEXT),
    )
    .failure();
    ran.stderr_names("seal.key").never_shows(PLAINTEXT);
    assert!(ran.stdout.trim().is_empty(), "\n{ran}");
}

#[test]
fn reseal_moves_values_to_the_newest_key_keeping_comments() {
    let ws = Workspace::new();
    let old = keygen(&ws);
    ws.write("old.key", &old);
    config(&ws, &["old.key"]);
    let sealed = seal(&ws, "db_password", PLAINTEXT);
    ws.write("policy.toml", policy_with("db_password", &sealed));

    // Rotation: the new key first, the old one still configured to open.
    let new = keygen(&ws);
    ws.write("new.key", &new);
    config(&ws, &["new.key", "old.key"]);
    Ran::of(ws.envoi(["reseal", "--config", "envoi.toml"])).success();

    let policy = std::fs::read_to_string(ws.path().join("policy.toml")).unwrap();
    assert!(policy.contains("# the database password, sealed"), "{policy}");
    assert!(!policy.contains(&sealed), "the old sealed string is gone\n{policy}");
    assert!(
        policy.contains(&format!("envoi:v1:{}:", key_id(&new))),
        "sealed under the new key\n{policy}"
    );
    assert!(!policy.contains(PLAINTEXT), "{policy}");

    // The old key can now go.
    config(&ws, &["new.key"]);
    explain(&ws, &["--show-values"])
        .success()
        .stdout_names(&format!("ENV DB_PASSWORD = \"{PLAINTEXT}\""));
}

#[test]
fn a_template_splices_secrets_and_the_workload_claims() {
    let ws = Workspace::new();
    config(&ws, &[]);
    ws.write(
        "policy.toml",
        r#"
[secrets.db_password]
value = "pw-1c9e"

[secrets.database_url]
template = "postgres://app:${secret.db_password}@db:5432/${projectId}?via=${nfObjectType}/${nfObjectId}&lit=$${x}"

[[grants]]
project = "billing"
env = { DATABASE_URL = "database_url" }
"#,
    );
    let ran = explain(&ws, &["--show-values"]).success();
    ran.stdout_names("ENV DATABASE_URL = \"postgres://app:pw-1c9e@db:5432/billing?via=service/api&lit=${x}\"");
}

#[test]
fn a_template_naming_an_undefined_secret_is_named_at_load() {
    let ws = Workspace::new();
    config(&ws, &[]);
    ws.write(
        "policy.toml",
        "[secrets.url]\ntemplate = \"x${secret.nowhere}\"\n\n[[grants]]\nproject = \"billing\"\nenv = { URL = \"url\" }\n",
    );
    let ran = Ran::of(ws.envoi(["check", "--config", "envoi.toml"])).failure();
    ran.stderr_names("nowhere");
}
