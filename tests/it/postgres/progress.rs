//! `db import` and `db export` say what they are doing on a terminal, and nothing when
//! standard error is not one.

use super::db::Db;
use super::env::Env;
use crate::support::workspace::{clean_environment, ENVOI};

const POLICY: &str = "[secrets.region]\nvalue = \"eu\"\n\n[[grants]]\nname = \"all\"\nenv = { REGION = \"region\" }\n";

/// `envoi --config envoi.toml ARGS` under `script`, which gives it a terminal; what the
/// terminal showed.
fn on_a_terminal(env: &Env, args: &str) -> Option<String> {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no `script` here to give envoi a terminal");
        return None;
    }
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &format!("{ENVOI} --config envoi.toml {args}"), "/dev/null"]);
    let out = clean_environment(cmd, env.path()).output().expect("script runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn import_and_export_show_their_phase_on_a_terminal_only() {
    let Some(db) = Db::create("import_and_export_show_their_phase_on_a_terminal_only") else {
        return;
    };
    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    env.write("policy.toml", POLICY);
    // Piped: the output alone, no spinner.
    let piped = env.envoi(&["db", "import", "policy.toml"], b"").success();
    assert!(piped.stderr.is_empty(), "nothing on a piped standard error\n{piped}");
    let Some(shown) = on_a_terminal(&env, "db import policy.toml") else {
        return;
    };
    assert!(shown.contains("checking policy.toml"), "{shown:?}");
    assert!(shown.contains("imported policy.toml"), "{shown:?}");
    let shown = on_a_terminal(&env, "db export").expect("script is there");
    assert!(shown.contains("reading the policy from the database"), "{shown:?}");
    let piped = env.envoi(&["db", "export"], b"").success();
    assert!(
        piped.stderr.is_empty() && piped.stdout.contains("[[grants]]"),
        "{piped}"
    );
}
