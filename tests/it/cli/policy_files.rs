//! What `check` and `serve` make of the files a policy is read from (SPEC §2, Stores):
//! an empty policy is an error, a folder entry that cannot be read is named, a `file`
//! source that is not a regular file is refused at once (it would hang the load), and
//! every source is held to the same size bound.

use std::time::{Duration, Instant};

use crate::support::{toml_string, Ran, Workspace};

const GRANT: &str = "[[grants]]\nproject = \"p\"\nenv = { A = { value = \"a\" } }\n";

fn check(ws: &Workspace, policy: &std::path::Path) -> Ran {
    let config = ws.config_with_key("check-key-long-enough-for-no-warning-0123", policy);
    Ran::of(ws.envoi(["check", "--config"]).arg(&config))
}

#[test]
fn check_refuses_a_policy_that_grants_nothing() {
    for (case, text) in [
        ("a 0-byte file", ""),
        ("comments only", "# nothing here yet\n"),
        ("secrets and no grant", "[secrets.a]\nvalue = \"a\"\n"),
    ] {
        let ws = Workspace::new();
        let policy = ws.write("policy.toml", text);
        let ran = check(&ws, &policy).failure();
        assert!(ran.stderr.contains("grants nothing"), "{case}\n{ran}");
        assert!(ran.stderr.contains("policy.toml"), "{case}: names the file\n{ran}");
    }
}

#[test]
fn check_refuses_a_policy_folder_without_a_grant() {
    let ws = Workspace::new();
    ws.write("policy.d/a.toml", "[secrets.a]\nvalue = \"a\"\n");
    ws.write("policy.d/b.toml", "");
    let ran = check(&ws, &ws.path().join("policy.d")).failure();
    ran.stderr_names("grants nothing")
        .stderr_names("a.toml")
        .stderr_names("b.toml");
}

#[test]
fn check_names_every_policy_folder_entry_that_is_not_a_readable_file() {
    let ws = Workspace::new();
    ws.write("policy.d/a.toml", GRANT);
    let folder = ws.path().join("policy.d");
    std::os::unix::fs::symlink(folder.join("nowhere.toml.gone"), folder.join("dangling.toml")).unwrap();
    std::os::unix::fs::symlink(folder.join("loop.toml"), folder.join("loop.toml")).unwrap();
    std::fs::create_dir(folder.join("folder.toml")).unwrap();
    let ran = check(&ws, &folder).failure();
    for (entry, why) in [
        ("dangling.toml", "dangling"),
        ("loop.toml", "symbolic links"),
        ("folder.toml", "a folder"),
    ] {
        let line = ran
            .stderr
            .lines()
            .find(|l| l.contains(entry))
            .unwrap_or_else(|| panic!("{entry} is not named\n{ran}"));
        assert!(line.contains(why), "{entry}: says why ({why})\n{ran}");
    }
}

#[test]
fn hidden_files_of_a_policy_folder_are_not_policy_files() {
    // Emacs' lock file is a dangling symlink named `.#NAME`; Kubernetes' `..data` a link.
    let ws = Workspace::new();
    ws.write("policy.d/a.toml", GRANT);
    let folder = ws.path().join("policy.d");
    std::os::unix::fs::symlink("user@host.1234:5678", folder.join(".#a.toml")).unwrap();
    ws.write("policy.d/.hidden.toml", "this is not TOML");
    check(&ws, &folder).success();
}

/// A policy whose one secret is read from `path`.
fn policy_reading(path: &std::path::Path) -> String {
    format!(
        "[secrets.s]\nfile = {}\n\n[[grants]]\nname = \"reads-a-file\"\nproject = \"p\"\nenv = {{ S = \"s\" }}\n",
        toml_string(&path.display().to_string())
    )
}

#[test]
fn a_file_source_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let ws = Workspace::new();
    let fifo = ws.path().join("secret.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    for (case, path, why) in [
        ("a FIFO", fifo.as_path(), "a FIFO"),
        ("a device", std::path::Path::new("/dev/zero"), "a device"),
        ("a folder", ws.path(), "a folder"),
    ] {
        let policy = ws.write("policy.toml", policy_reading(path));
        let started = Instant::now();
        let ran = check(&ws, &policy).failure();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{case}: check must not wait on it"
        );
        assert!(ran.stderr.contains(why), "{case}: says what it is ({why})\n{ran}");
        assert!(ran.stderr.contains("secret `s`"), "{case}: names the secret\n{ran}");
    }
}

#[test]
fn serve_refuses_a_fifo_file_source_instead_of_hanging() {
    let ws = Workspace::new();
    let fifo = ws.path().join("secret.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let policy = ws.write("policy.toml", policy_reading(&fifo));
    let config = ws.config_with_key("serve-key", &policy);
    let port = crate::support::free_port();
    let ran = Ran::of(
        ws.envoi(["serve", "--config"])
            .arg(&config)
            .env("ENVOI__SERVER__LISTEN", format!("127.0.0.1:{port}")),
    )
    .failure();
    ran.stderr_names("a FIFO");
}

#[test]
fn a_value_literal_is_held_to_the_same_bound_as_a_file() {
    let ws = Workspace::new();
    let big = "x".repeat((1 << 20) + 1);
    let policy = ws.write(
        "policy.toml",
        format!("[[grants]]\nname = \"big\"\nproject = \"p\"\nenv = {{ BIG = {{ value = \"{big}\" }} }}\n"),
    );
    let ran = check(&ws, &policy).failure();
    ran.stderr_names("grant `big`")
        .stderr_names("larger than 1048576 bytes");
    // At the bound itself, it loads.
    let fits = "x".repeat(1 << 20);
    ws.write(
        "policy.toml",
        format!("[[grants]]\nname = \"big\"\nproject = \"p\"\nenv = {{ BIG = {{ value = \"{fits}\" }} }}\n"),
    );
    check(&ws, &policy).success();
}

#[test]
fn check_names_every_unknown_key_and_wrong_type_in_one_run() {
    let ws = Workspace::new();
    let policy = ws.write(
        "policy.toml",
        r#"extra = 1
[secrets.a]
value = "x"
valu = "y"

[secrets.b]
value = 5

[[grants]]
name = "g1"
projet = "billing"
env = { A = "a", B = { value = "v", comment = "c" } }

[[grants.files]]
path = "/x"
value = "v"
modee = "0400"
owner = { policy = "AlwaysSetInherited", uid = 1 }

[[grants]]
project = 7
"#,
    );
    let ran = check(&ws, &policy).failure();
    for (line, needle) in [
        ("policy.toml:1:", "`extra`"),
        ("policy.toml:4:", "`valu`"),
        ("policy.toml:7:", "secret `b`: invalid type"),
        ("policy.toml:11:", "`projet`"),
        ("policy.toml:12:", "`comment`"),
        ("policy.toml:17:", "`modee`"),
        ("policy.toml:18:", "`uid`"),
        ("policy.toml:21:", "grant #2: invalid type"),
    ] {
        assert!(
            ran.stderr.lines().any(|l| l.contains(line) && l.contains(needle)),
            "{line} {needle} is not named\n{ran}"
        );
    }
    ran.stderr_names("8 problems");
}

#[test]
fn check_reports_a_conflict_beside_a_missing_reference() {
    let ws = Workspace::new();
    let policy = ws.write(
        "policy.toml",
        r#"[secrets.alpha]
value = "a"
[secrets.beta]
value = "b"
[[grants]]
name = "pay-prefix"
project = "pay-*"
env = { REGION = "alpha", X = "missing_one" }
[[grants]]
name = "api-suffix"
project = "*-api"
env = { REGION = "beta" }
"#,
    );
    let ran = check(&ws, &policy).failure();
    ran.stderr_names("missing_one");
    assert!(
        ran.stderr
            .lines()
            .any(|l| l.contains("pay-prefix") && l.contains("api-suffix") && l.contains("REGION")),
        "the conflict is reported in the same run\n{ran}"
    );
}

#[test]
fn check_warns_of_a_newline_spliced_into_a_template() {
    let ws = Workspace::new();
    // The README's own example, with the password file written by `echo`.
    ws.write("db_password", "hunter2-newline\n");
    let policy = ws.write(
        "policy.toml",
        "[secrets.db_password]\nfile = \"db_password\"\n\n\
         [secrets.database_url]\ntemplate = \"postgres://app:${secret.db_password}@db:5432/${projectId}\"\n\n\
         [[grants]]\nproject = \"p\"\nenv = { DATABASE_URL = \"database_url\", DB_PASSWORD = \"db_password\" }\n",
    );
    let ran = check(&ws, &policy).success();
    let warning = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("warning:"))
        .unwrap_or_else(|| panic!("no warning\n{ran}"));
    assert!(
        warning.contains("database_url") && warning.contains("db_password") && warning.contains("newline"),
        "the warning names the template and the secret\n{ran}"
    );
    ran.never_shows("hunter2-newline");
    // Without the newline, no warning.
    ws.write("db_password", "hunter2-newline");
    let ran = check(&ws, &policy).success();
    assert!(!ran.stderr.contains("warning"), "{ran}");
}
