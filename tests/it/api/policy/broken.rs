//! The policies that must not load: each names what is wrong, and none shows a value.

use envoi::policy::{load_path, load_str, PolicyError};

use super::{write, BLOB, BLOB_BASE64};
use crate::api::helpers::*;

// ---- Policies that must not load ----

/// `(case, policy, texts that one same problem must contain)`.
fn broken_policies() -> Vec<(&'static str, String, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (
            "two grants of equal specificity give one key different values",
            r#"
[[grants]]
name = "alpha-grant"
project = "billing"
env = { SHARED_KEY = { value = "fake-one" } }
[[grants]]
name = "beta-grant"
project = "billing"
env = { SHARED_KEY = { value = "fake-two" } }
"#
            .into(),
            s(&["alpha-grant", "beta-grant", "SHARED_KEY"]),
        ),
        (
            "two overlapping globs of equal specificity give one FILE different values",
            r#"
[[grants]]
name = "alpha-grant"
project = "a-*"
[[grants.files]]
path = "/etc/shared"
value = "fake-one"
[[grants]]
name = "beta-grant"
project = "*-b"
[[grants.files]]
path = "/etc/shared"
value = "fake-two"
"#
            .into(),
            s(&["alpha-grant", "beta-grant", "/etc/shared"]),
        ),
        (
            "two overlapping `?` globs of equal specificity give one key different values",
            r#"
[[grants]]
name = "alpha-grant"
project = "a?"
env = { SHARED_KEY = { value = "fake-one" } }
[[grants]]
name = "beta-grant"
project = "?b"
env = { SHARED_KEY = { value = "fake-two" } }
"#
            .into(),
            s(&["alpha-grant", "beta-grant", "SHARED_KEY"]),
        ),
        (
            "two unnamed grants in conflict are named by where they stand",
            r#"
[[grants]]
env = { SHARED_KEY = { value = "fake-one" } }

[[grants]]
project = "*"
env = { SHARED_KEY = { value = "fake-two" } }
"#
            .into(),
            s(&["test-policy.toml:2", "test-policy.toml:5", "SHARED_KEY"]),
        ),
        (
            "a grant names an undefined secret for an ENV key",
            r#"
[[grants]]
name = "needs-missing"
env = { KEY = "no_such_secret" }
"#
            .into(),
            s(&["needs-missing", "no_such_secret"]),
        ),
        (
            "a grant names an undefined secret for a FILE",
            r#"
[[grants]]
name = "needs-missing"
[[grants.files]]
path = "/etc/x"
secret = "no_such_secret"
"#
            .into(),
            s(&["needs-missing", "no_such_secret"]),
        ),
        (
            "a template names an undefined secret",
            r#"
[[grants]]
name = "tpl-missing"
env = { URL = { template = "postgres://app:${secret.no_such_secret}@db" } }
"#
            .into(),
            s(&["tpl-missing", "no_such_secret"]),
        ),
        (
            "a named template names an undefined secret",
            r#"
[secrets.database_url]
template = "postgres://app:${secret.no_such_secret}@db"
[[grants]]
env = { URL = "database_url" }
"#
            .into(),
            s(&["database_url", "no_such_secret"]),
        ),
        (
            "a template names something that is not a claim nor a secret",
            r#"
[[grants]]
name = "tpl-unknown"
env = { URL = { template = "${teamId}" } }
"#
            .into(),
            s(&["tpl-unknown", "teamId"]),
        ),
        (
            "a secret reads an unset environment variable",
            format!(
                r#"
[secrets.sentry_dsn]
env = "{UNSET_ENV}"
[[grants]]
name = "sentry"
env = {{ SENTRY_DSN = "sentry_dsn" }}
"#
            ),
            s(&["sentry_dsn", UNSET_ENV]),
        ),
        (
            "a grant reads an unset environment variable inline",
            format!(
                r#"
[[grants]]
name = "inline-env"
env = {{ SENTRY_DSN = {{ env = "{UNSET_ENV}" }} }}
"#
            ),
            s(&["inline-env", UNSET_ENV]),
        ),
        (
            "a secret reads a missing file",
            r#"
[secrets.cert]
file = "/nonexistent/envoi-api-test/cert.pem"
[[grants]]
env = { CERT = "cert" }
"#
            .into(),
            s(&["cert", "/nonexistent/envoi-api-test/cert.pem"]),
        ),
        (
            "a grant's FILE reads a missing file inline",
            r#"
[[grants]]
name = "inline-file"
[[grants.files]]
path = "/etc/cert.pem"
file = "/nonexistent/envoi-api-test/cert.pem"
"#
            .into(),
            s(&["inline-file", "/nonexistent/envoi-api-test/cert.pem"]),
        ),
        ("an unknown top-level key", "extra_section = 1\n".into(), s(&["extra_section"])),
        (
            "an unknown key in a secret",
            "[secrets.x]\nvalue = \"v\"\nvalu = \"v\"\n".into(),
            s(&["valu"]),
        ),
        (
            "an unknown key in a grant",
            "[[grants]]\nprojet = \"billing\"\n".into(),
            s(&["projet"]),
        ),
        (
            "an unknown key in a FILE",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nmodee = \"0400\"\n".into(),
            s(&["modee"]),
        ),
        (
            "an unknown key in permissions",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\npermissions = { policy = \"AlwaysSet\", mode = \"0400\", sticky = true }\n"
                .into(),
            s(&["sticky"]),
        ),
        (
            "an unknown key in an owner",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nowner = { policy = \"AlwaysSetInherited\", uid = 1 }\n"
                .into(),
            s(&["uid"]),
        ),
        (
            "an unknown key in an inline ENV value",
            "[[grants]]\nenv = { K = { value = \"v\", comment = \"c\" } }\n".into(),
            s(&["comment"]),
        ),
        (
            "a secret with two sources",
            format!("[secrets.two_sources]\nvalue = \"v\"\nenv = \"{UNSET_ENV}\"\n"),
            s(&["two_sources"]),
        ),
        (
            "a secret with no source",
            "[secrets.no_source]\n".into(),
            s(&["no_source"]),
        ),
        (
            "an inline ENV value with two sources",
            "[[grants]]\nname = \"two-inline\"\nenv = { K = { value = \"v\", file = \"/etc/hostname\" } }\n".into(),
            s(&["two-inline", "K"]),
        ),
        (
            "a FILE with a secret and an inline value",
            "[secrets.s]\nvalue = \"v\"\n[[grants]]\nname = \"both\"\n[[grants.files]]\npath = \"/x\"\nsecret = \"s\"\nvalue = \"v\"\n"
                .into(),
            s(&["both", "/x"]),
        ),
        (
            "a mode that is not octal",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nmode = \"0999\"\n".into(),
            s(&["mode", "0999"]),
        ),
        (
            "a mode in letters",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nmode = \"rw-r--r--\"\n".into(),
            s(&["mode", "rw-r--r--"]),
        ),
        (
            "an empty mode",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nmode = \"\"\n".into(),
            s(&["mode"]),
        ),
        (
            "a bad mode in the long form",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\npermissions = { policy = \"KeepOrSet\", mode = \"12345\" }\n"
                .into(),
            s(&["mode", "12345"]),
        ),
        (
            "a permissions policy that does not exist",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\npermissions = { policy = \"SometimesSet\", mode = \"0400\" }\n"
                .into(),
            s(&["policy"]),
        ),
        (
            "an owner policy that does not exist",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nowner = { policy = \"AlwaysSetMaybe\", value = \"app\" }\n"
                .into(),
            s(&["AlwaysSetMaybe"]),
        ),
        (
            "an ENV key starting with a digit",
            "[[grants]]\nenv = { 1ABC = { value = \"v\" } }\n".into(),
            s(&["1ABC"]),
        ),
        (
            "an ENV key with a dash",
            "[[grants]]\nenv = { \"A-B\" = { value = \"v\" } }\n".into(),
            s(&["A-B"]),
        ),
        (
            "an ENV key with a blank",
            "[[grants]]\nenv = { \"A B\" = { value = \"v\" } }\n".into(),
            s(&["A B"]),
        ),
        (
            "a relative FILE path",
            "[[grants]]\nname = \"relative\"\n[[grants.files]]\npath = \"etc/app.conf\"\nvalue = \"v\"\n".into(),
            s(&["relative", "etc/app.conf"]),
        ),
    ]
}

#[test]
fn broken_policies_do_not_load_and_the_problem_names_what_is_wrong() {
    test_env();
    for (case, text, names) in broken_policies() {
        let error = load_error(&text);
        assert!(!error.problems.is_empty(), "{case}: an error without problems");
        let found = error
            .problems
            .iter()
            .any(|problem| names.iter().all(|name| problem.contains(name.as_str())));
        assert!(
            found,
            "{case}: no problem names all of {names:?}; problems: {:#?}",
            error.problems
        );
        let shown = error.to_string();
        for name in &names {
            assert!(
                shown.contains(name.as_str()),
                "{case}: the message does not name {name:?}: {shown}"
            );
        }
    }
}

#[test]
fn a_load_error_never_shows_a_value() {
    const LEAK: &str = "sk_test_fake_LEAK_4242";
    let cases: Vec<(&str, String)> = vec![
        (
            "two sources",
            format!("[secrets.x]\nvalue = \"{LEAK}\"\nenv = \"{UNSET_ENV}\"\n"),
        ),
        (
            "an unknown key beside the value",
            format!("[secrets.x]\nvalue = \"{LEAK}\"\nvalu = \"{LEAK}\"\n"),
        ),
        (
            "a conflict",
            format!(
                "[[grants]]\nname = \"a\"\nenv = {{ K = {{ value = \"{LEAK}\" }} }}\n[[grants]]\nname = \"b\"\nenv = {{ K = {{ value = \"{LEAK}-other\" }} }}\n"
            ),
        ),
        (
            "a value of the wrong type",
            format!("[secrets.x]\nvalue = [\"{LEAK}\"]\n"),
        ),
        ("an unterminated string", format!("[secrets.x]\nvalue = \"{LEAK}\n")),
        ("an unterminated literal string", format!("[secrets.x]\nvalue = '{LEAK}\n")),
        ("an unterminated multi-line string", format!("[secrets.x]\nvalue = \"\"\"{LEAK}\n")),
        (
            "an unclosed inline table",
            format!("[[grants]]\nenv = {{ K = {{ value = \"{LEAK}\" }}\n"),
        ),
        (
            "an ENV key given twice",
            format!("[[grants]]\nenv = {{ K = {{ value = \"{LEAK}\" }}, K = {{ value = \"x\" }} }}\n"),
        ),
        (
            "the same secret defined twice",
            format!("[secrets.x]\nvalue = \"{LEAK}\"\n[secrets.x]\nvalue = \"{LEAK}\"\n"),
        ),
        ("text after the value", format!("[secrets.x]\nvalue = \"{LEAK}\" trailing\n")),
        ("a bad escape in the value", format!("[secrets.x]\nvalue = \"{LEAK}\\q\"\n")),
        ("the value given twice", format!("[secrets.x]\nvalue = \"{LEAK}\"\nvalue = \"{LEAK}\"\n")),
        (
            "a bad secret name",
            format!("[secrets.\"bad name\"]\nvalue = \"{LEAK}\"\n"),
        ),
        (
            "a bad ENV key with an inline value",
            format!("[[grants]]\nenv = {{ \"1BAD\" = {{ value = \"{LEAK}\" }} }}\n"),
        ),
        (
            "a relative FILE path with an inline value",
            format!("[[grants]]\n[[grants.files]]\npath = \"rel\"\nvalue = \"{LEAK}\"\n"),
        ),
        (
            "an ENV value that is a number",
            "[[grants]]\nenv = { K = 98765432123 }\n".to_owned(),
        ),
        (
            "a literal value that is a number",
            "[secrets.x]\nvalue = 98765432123\n".to_owned(),
        ),
        (
            "an ENV value that is an array",
            format!("[[grants]]\nenv = {{ K = [\"{LEAK}\"] }}\n"),
        ),
        (
            "an inline value of the wrong type in a FILE",
            format!("[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = {{ v = \"{LEAK}\" }}\n"),
        ),
    ];
    for (case, text) in cases {
        let error: PolicyError = load_error(&text);
        let shown = format!("{error}\n{error:?}");
        for leak in [LEAK, "98765432123"] {
            assert!(!shown.contains(leak), "{case}: the error shows the value: {shown}");
        }
    }
}

/// SPEC §7: never a secret value in an error. A secret written in a shape the format
/// does not have (`[secrets]` then `name = "value"`, a common slip) must not be echoed
/// by the message that says so.
#[test]
fn a_load_error_never_shows_a_value_written_in_the_wrong_shape() {
    const LEAK: &str = "sk_test_fake_LEAK_4242";
    let cases: Vec<(&str, String)> = vec![
        (
            "a secret as a bare string",
            format!("[secrets]\ndb_password = \"{LEAK}\"\n"),
        ),
        (
            "a dotted secret as a bare string",
            format!("secrets.db_password = \"{LEAK}\"\n"),
        ),
        ("`secrets` as a string", format!("secrets = \"{LEAK}\"\n")),
        ("`grants` as a string", format!("grants = \"{LEAK}\"\n")),
        (
            "a FILE's value in the encoding",
            format!("[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nencoding = \"{LEAK}\"\n"),
        ),
    ];
    let mut failures = Vec::new();
    for (case, text) in cases {
        let error: PolicyError = load_error(&text);
        let shown = format!("{error}\n{error:?}");
        if shown.contains(LEAK) {
            failures.push(format!("{case}: {shown}"));
        }
    }
    assert_all_pass("values in the wrong shape", &failures);
}

#[test]
fn a_policy_file_that_does_not_load_names_the_missing_file_resolved_against_its_folder() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let policy_file = dir.path().join("policy.toml");
    write(
        &policy_file,
        b"[secrets.db]\nfile = \"secrets/missing.txt\"\n[[grants]]\nname = \"db\"\nenv = { DB = \"db\" }\n",
    );
    let error = match load_path(&policy_file) {
        Ok(_) => panic!("a policy naming a missing file loaded"),
        Err(e) => e,
    };
    let resolved = dir.path().join("secrets/missing.txt");
    let resolved = resolved.to_string_lossy();
    assert!(
        error.problems.iter().any(|p| p.contains(resolved.as_ref())),
        "no problem names {resolved}: {:#?}",
        error.problems
    );
}

#[test]
fn a_non_utf8_file_cannot_be_an_env_value_nor_a_utf8_file() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    write(&dir.path().join("blob.bin"), BLOB);
    for (case, text) in [
        (
            "ENV",
            "[secrets.blob]\nfile = \"blob.bin\"\n[[grants]]\nname = \"env-blob\"\nenv = { BLOB = \"blob\" }\n",
        ),
        (
            "FILE with encoding utf-8",
            "[secrets.blob]\nfile = \"blob.bin\"\n[[grants]]\nname = \"env-blob\"\n[[grants.files]]\npath = \"/b\"\nsecret = \"blob\"\nencoding = \"utf-8\"\n",
        ),
    ] {
        let error = match load_str("blob.toml", text, Some(dir.path())) {
            Ok(_) => panic!("{case}: a non-UTF-8 value loaded"),
            Err(e) => e,
        };
        let shown = error.to_string();
        assert!(shown.contains("env-blob"), "{case}: {shown}");
        assert!(!shown.contains(BLOB_BASE64), "{case}: {shown}");
    }
}
