//! The configuration's problems: `check` refuses everything that `serve` would refuse,
//! and every problem is named where it stands (the file and line, or the variable),
//! with the valid names when a name is wrong, in one run, and never with the value.

use std::path::Path;

use crate::support::{toml_string, Ran, Workspace};

/// A value that no message may quote: a secret pasted into the wrong setting.
const VALUE: &str = "pasted-secret-0d6f2b";

const POLICY: &str = "[[grants]]\nproject = \"*\"\nenv = { MODE = { value = \"on\" } }\n";

/// A workspace with a good policy and `envoi.toml` holding one signing key and `extra`.
fn workspace(extra: &str) -> Workspace {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", POLICY);
    ws.write(
        "envoi.toml",
        format!(
            "[auth]\nsecrets = [\"settings-test-key\"]\n\n[store]\npath = {}\n{extra}",
            toml_string(&policy.display().to_string())
        ),
    );
    ws
}

fn run(ws: &Workspace, command: &str, env: &[(&str, String)]) -> Ran {
    let mut cmd = ws.envoi([command, "--config", "envoi.toml"]);
    cmd.env("ENVOI__SERVER__WORKERS", "1");
    for (var, value) in env {
        cmd.env(var, value);
    }
    Ran::of(cmd)
}

/// `check` and `serve` both refuse, both name `names`, neither quotes [`VALUE`].
#[track_caller]
fn both_refuse(case: &str, ws: &Workspace, env: &[(&str, String)], names: &[&str]) {
    for command in ["check", "serve"] {
        let ran = run(ws, command, env);
        assert!(
            matches!(ran.code, Some(1)),
            "{case}: `{command}` refuses it (exit 1)\n{ran}"
        );
        for name in names {
            assert!(ran.stderr.contains(name), "{case}: `{command}` names `{name}`\n{ran}");
        }
        assert!(!ran.stderr.contains("panicked"), "{case}: `{command}`\n{ran}");
        ran.never_shows(VALUE);
    }
}

#[test]
fn check_refuses_every_setting_that_serve_refuses_and_quotes_none() {
    let ws = workspace("");
    let missing = ws.path().join("missing");
    // (case, variables, names the refusal gives)
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "listen is not an address",
            vec![("ENVOI__SERVER__LISTEN", VALUE.to_owned())],
            vec!["server.listen", "ENVOI__SERVER__LISTEN"],
        ),
        (
            "listen has no valid port",
            vec![("ENVOI__SERVER__LISTEN", format!("127.0.0.1:{VALUE}"))],
            vec!["server.listen"],
        ),
        (
            "admin_listen is not an address",
            vec![("ENVOI__SERVER__ADMIN_LISTEN", VALUE.to_owned())],
            vec!["server.admin_listen", "ENVOI__SERVER__ADMIN_LISTEN"],
        ),
        (
            "log.level is not a filter",
            vec![("ENVOI__LOG__LEVEL", format!("info,[{VALUE}"))],
            vec!["log.level", "ENVOI__LOG__LEVEL"],
        ),
        (
            "the certificate does not exist",
            vec![
                (
                    "ENVOI__SERVER__TLS__CERT",
                    missing.join("tls.crt").display().to_string(),
                ),
                ("ENVOI__SERVER__TLS__KEY", missing.join("tls.key").display().to_string()),
            ],
            vec!["server.tls.cert", "tls.crt"],
        ),
        (
            "a certificate without its key",
            vec![(
                "ENVOI__SERVER__TLS__CERT",
                missing.join("tls.crt").display().to_string(),
            )],
            vec!["server.tls.key"],
        ),
        (
            "an exempt network that is not one",
            vec![
                ("ENVOI__SERVER__AUTH_FAILURE_LIMIT", "5".to_owned()),
                ("ENVOI__SERVER__AUTH_FAILURE_EXEMPT", "10.0.0.0/99".to_owned()),
            ],
            vec!["server.auth_failure_exempt"],
        ),
    ];
    for (case, env, names) in &cases {
        both_refuse(case, &ws, env, names);
    }
}

#[test]
fn check_refuses_a_certificate_and_key_that_do_not_belong_together() {
    if !super::tls::tools_present() {
        return;
    }
    let ws = workspace("");
    let (cert_a, key_a) = (ws.path().join("a.crt"), ws.path().join("a.key"));
    let (cert_b, key_b) = (ws.path().join("b.crt"), ws.path().join("b.key"));
    super::tls::make_certificate(&cert_a, &key_a, "a");
    super::tls::make_certificate(&cert_b, &key_b, "b");
    let pair = |cert: &Path, key: &Path| {
        vec![
            ("ENVOI__SERVER__TLS__CERT", cert.display().to_string()),
            ("ENVOI__SERVER__TLS__KEY", key.display().to_string()),
        ]
    };
    // The right pair passes, so that the refusal below is the mismatch's.
    run(&ws, "check", &pair(&cert_a, &key_a)).success();
    both_refuse(
        "a's certificate with b's key",
        &ws,
        &pair(&cert_a, &key_b),
        &["server.tls", "do not belong together"],
    );
}

#[test]
fn an_unknown_setting_in_the_file_is_named_with_its_line_and_the_valid_names() {
    let ws = workspace("\n[server]\nworkers = 1\nlistn = \"127.0.0.1:1\"\n");
    let ran = run(&ws, "check", &[]).failure();
    ran.stderr_names("envoi.toml:9")
        .stderr_names("`server.listn`")
        .stderr_names("listen, workers, shutdown_timeout_seconds");
    assert!(!ran.stderr.contains('…'), "names are not masked\n{ran}");
    assert_eq!(
        ran.stderr.matches("cannot read configuration").count(),
        0,
        "no doubled prefix\n{ran}"
    );
}

#[test]
fn an_unknown_variable_is_named_with_the_valid_names() {
    let ws = workspace("");
    let ran = run(&ws, "check", &[("ENVOI__SERVER__LISTN", VALUE.to_owned())]).failure();
    ran.stderr_names("ENVOI__SERVER__LISTN")
        .stderr_names("listen, workers")
        .never_shows(VALUE);
    let ran = run(&ws, "check", &[("ENVOI__SERVR__LISTEN", VALUE.to_owned())]).failure();
    ran.stderr_names("ENVOI__SERVR__LISTEN")
        .stderr_names("server, auth, store, seal, log")
        .never_shows(VALUE);
}

#[test]
fn a_log_format_that_is_not_one_is_answered_with_the_formats() {
    let ws = workspace("");
    let ran = run(&ws, "check", &[("ENVOI__LOG__FORMAT", "xml".to_owned())]).failure();
    ran.stderr_names("ENVOI__LOG__FORMAT").stderr_names("pretty, json");
    assert!(!ran.stderr.contains("variant"), "no serde wording\n{ran}");
    ran.never_shows("xml");
}

#[test]
fn every_problem_of_the_configuration_is_named_in_one_run() {
    let ws = workspace(&format!(
        "\n[server]\nlistn = \"x\"\nworkers = {}\n\n[log]\nformt = \"json\"\n",
        toml_string(VALUE)
    ));
    let ran = run(
        &ws,
        "check",
        &[
            ("ENVOI__LOG__FORMAT", VALUE.to_owned()),
            ("ENVOI__STORE__POOL_SIZE", VALUE.to_owned()),
        ],
    )
    .failure();
    ran.stderr_names("`server.listn` (")
        .stderr_names("`server.workers` (")
        .stderr_names("`log.formt` (")
        .stderr_names("ENVOI__LOG__FORMAT")
        .stderr_names("ENVOI__STORE__POOL_SIZE")
        .stderr_names("5 problems")
        .never_shows(VALUE);
}

#[test]
fn check_names_the_problems_of_settings_and_policy_together() {
    let ws = workspace("");
    ws.write(
        "policy.toml",
        "[[grants]]\nproject = \"*\"\nenv = { A = \"no_such_secret\" }\n",
    );
    let ran = run(
        &ws,
        "check",
        &[
            ("ENVOI__SERVER__LISTEN", VALUE.to_owned()),
            ("ENVOI__LOG__LEVEL", format!("[{VALUE}")),
        ],
    )
    .failure();
    ran.stderr_names("server.listen")
        .stderr_names("log.level")
        .stderr_names("no_such_secret")
        .never_shows(VALUE);
}

#[test]
fn a_setting_refused_after_loading_is_named_where_it_was_given() {
    // In the file: the file is named, not the variable that could have set it.
    let ws = workspace("\n[server]\nlisten = \"no-port-here\"\n\n[log]\nlevel = \"bad[filter\"\n");
    let ran = run(&ws, "check", &[]).failure();
    for key in ["server.listen", "log.level"] {
        let line = ran
            .stderr
            .lines()
            .find(|l| l.contains(&format!("`{key}`")))
            .unwrap_or_else(|| panic!("{key} is not named\n{ran}"));
        assert!(line.contains("envoi.toml"), "{key}: names the file\n{ran}");
        assert!(
            !line.contains("ENVOI__"),
            "{key}: not a variable it did not come from\n{ran}"
        );
    }
    // By a variable: the variable is named.
    let ws = workspace("");
    let ran = run(&ws, "check", &[("ENVOI__SERVER__LISTEN", "no-port-here".into())]).failure();
    assert!(
        ran.stderr
            .lines()
            .any(|l| l.contains("`server.listen` (ENVOI__SERVER__LISTEN)")),
        "{ran}"
    );
}
