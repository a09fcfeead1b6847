//! `--help` on the binary and on each subcommand (SPEC §4: clap's conventions).

use crate::support::{Ran, Workspace};

#[test]
fn envoi_help_lists_every_subcommand() {
    let ws = Workspace::new();
    let ran = Ran::of(ws.envoi(["--help"])).success();
    for command in ["serve", "check", "explain", "token", "keygen", "seal", "reseal"] {
        ran.stdout_names(command);
    }
    ran.stdout_names("--config");
}

#[test]
fn each_subcommand_explains_its_own_flags() {
    let ws = Workspace::new();
    let cases: &[(&str, &[&str])] = &[
        ("serve", &["--dev", "--config"]),
        ("check", &["--config"]),
        ("explain", &["--project", "--type", "--id", "--show-values"]),
        ("token", &["--project", "--type", "--id", "--ttl"]),
        ("keygen", &[]),
        ("seal", &["--name", "--config"]),
        ("reseal", &["--config"]),
    ];
    for (command, flags) in cases {
        let ran = Ran::of(ws.envoi([command, &"--help"])).success();
        assert!(ran.stdout.contains("Usage: envoi"), "`envoi {command} --help`\n{ran}");
        for flag in *flags {
            assert!(
                ran.stdout.contains(flag),
                "`envoi {command} --help` should document {flag}\n{ran}"
            );
        }
    }
}

#[test]
fn envoi_without_a_subcommand_prints_usage_and_fails() {
    let ws = Workspace::new();
    let ran = Ran::of(ws.envoi(Vec::<&str>::new())).failure();
    ran.stderr_names("Usage: envoi");
}

#[test]
fn version_prints_the_crate_version() {
    let ws = Workspace::new();
    let ran = Ran::of(ws.envoi(["--version"])).success();
    ran.stdout_names(env!("CARGO_PKG_VERSION"));
}

#[test]
fn a_missing_workload_flag_is_a_usage_error() {
    let ws = Workspace::new();
    let ran = Ran::of(ws.envoi(["explain", "--project", "billing", "--type", "service"])).failure();
    ran.stderr_names("--id");
}
