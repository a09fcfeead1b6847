//! One table of exit statuses for every command (README, "Exit status"): 0 success, 1 a
//! command that failed, 2 a usage error.

use crate::support::{Ran, Workspace};

#[test]
fn a_usage_error_exits_2_whatever_the_command() {
    let ws = Workspace::new();
    let cases: &[(&str, &[&str])] = &[
        ("an unknown subcommand", &["frobnicate"]),
        ("an unknown flag", &["check", "--no-such-flag"]),
        ("a missing required flag", &["explain", "--project", "p", "--type", "t"]),
        (
            "a bad value",
            &["token", "--project", "p", "--type", "t", "--id", "i", "--ttl", "soon"],
        ),
        ("a missing argument", &["secret", "rm"]),
        ("no subcommand", &[]),
        (
            "run without a command",
            &["run", "--url", "http://127.0.0.1:1/", "--token-env", "T"],
        ),
    ];
    for (case, args) in cases {
        let ran = Ran::of(ws.envoi(*args));
        assert_eq!(ran.code, Some(2), "{case}: exits 2\n{ran}");
        assert!(ran.stdout.is_empty(), "{case}: nothing on standard output\n{ran}");
    }
}

#[test]
fn a_command_that_fails_exits_1_with_its_reason() {
    let ws = Workspace::new();
    let cases: &[(&str, &[&str], &str)] = &[
        ("check without a policy", &["check"], "policy.toml"),
        (
            "token without a signing key",
            &["token", "--project", "p", "--type", "t", "--id", "i"],
            "no signing key",
        ),
        (
            "a missing config file",
            &["--config", "missing.toml", "check"],
            "missing.toml",
        ),
        ("db without a database URL", &["db", "migrate"], "store.url"),
    ];
    for (case, args, reason) in cases {
        let ran = Ran::of(ws.envoi(*args));
        assert_eq!(ran.code, Some(1), "{case}: exits 1\n{ran}");
        assert!(ran.stderr.starts_with("error: "), "{case}: says `error: …`\n{ran}");
        assert!(ran.stderr.contains(reason), "{case}: names {reason}\n{ran}");
    }
}

#[test]
fn help_and_version_exit_0() {
    let ws = Workspace::new();
    for args in [
        &["--help"][..],
        &["--version"],
        &["db", "--help"],
        &["grant", "put", "--help"],
    ] {
        let ran = Ran::of(ws.envoi(args));
        assert_eq!(ran.code, Some(0), "{args:?}\n{ran}");
        assert!(!ran.stdout.is_empty(), "{args:?} prints on standard output\n{ran}");
    }
    Ran::of(ws.envoi(["--help"])).success().stdout_names("Exit status: 0");
}
