//! Shell completions and the manual page, made from the command line's own definitions.

use crate::support::{Ran, Workspace};

#[test]
fn the_bash_completion_script_completes_every_subcommand() {
    let ws = Workspace::new();
    let ran = Ran::of(ws.envoi(["completions", "bash"])).success();
    assert!(ran.stdout.contains("complete -F"), "a bash completion script\n{ran}");
    for command in [
        "serve", "check", "explain", "keygen", "seal", "db", "secret", "grant", "run",
    ] {
        ran.stdout_names(command);
    }
    // Nested commands and their flags too.
    ran.stdout_names("rollback").stdout_names("--show-values");

    // And bash, given the script, completes `envoi db im` to `envoi db import`.
    let script = ws.write("envoi.bash", &ran.stdout);
    let completed = std::process::Command::new("bash")
        .arg("-c")
        .arg(
            "source \"$1\"; COMP_WORDS=(envoi db im); COMP_CWORD=2; COMP_LINE='envoi db im'; \
             COMP_POINT=${#COMP_LINE}; _envoi envoi im db; echo \"${COMPREPLY[*]}\"",
        )
        .arg("bash")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert_eq!(
        String::from_utf8_lossy(&completed.stdout).trim(),
        "import",
        "{}",
        String::from_utf8_lossy(&completed.stderr)
    );
}

#[test]
fn completions_are_made_for_zsh_and_fish_and_refused_for_an_unknown_shell() {
    let ws = Workspace::new();
    Ran::of(ws.envoi(["completions", "zsh"]))
        .success()
        .stdout_names("#compdef envoi");
    Ran::of(ws.envoi(["completions", "fish"]))
        .success()
        .stdout_names("complete -c envoi");
    let ran = Ran::of(ws.envoi(["completions", "tcsh"]));
    assert_eq!(ran.code, Some(2), "an unknown shell is a usage error\n{ran}");
    ran.stderr_names("bash");
}

#[test]
fn the_manual_page_is_roff_with_every_subcommand() {
    let ws = Workspace::new();
    let ran = Ran::of(ws.envoi(["man"])).success();
    assert!(
        ran.stdout.starts_with(".ie") || ran.stdout.contains("\n.TH "),
        "roff with .TH\n{ran}"
    );
    ran.stdout_names(".TH envoi 1").stdout_names(".SH SYNOPSIS");
    for command in ["serve", "explain", "keygen", "db", "grant"] {
        ran.stdout_names(command);
    }
    ran.stdout_names("Exit status");
}

#[test]
fn man_dir_writes_a_page_per_command() {
    let ws = Workspace::new();
    Ran::of(ws.envoi(["man", "--dir", "man1"])).success();
    for page in ["envoi.1", "envoi-serve.1", "envoi-db-import.1", "envoi-grant-put.1"] {
        let text = ws.read(&format!("man1/{page}"));
        assert!(text.contains(".TH "), "{page} is a manual page:\n{text}");
    }
}

#[test]
fn commands_that_read_no_settings_refuse_an_explicit_config() {
    let ws = Workspace::new();
    for command in [&["keygen"][..], &["completions", "bash"], &["man"]] {
        let mut args = vec!["--config", "envoi.toml"];
        args.extend_from_slice(command);
        let ran = Ran::of(ws.envoi(&args));
        assert_eq!(ran.code, Some(2), "envoi {command:?} --config is a usage error\n{ran}");
        ran.stderr_names("reads no configuration");
        assert!(ran.stdout.is_empty(), "{ran}");
    }
    // ENVOI_CONFIG, exported for every command, stays allowed.
    let ran = Ran::of(ws.envoi(["keygen"]).env("ENVOI_CONFIG", "envoi.toml")).success();
    assert!(ran.last_line().starts_with("envoi-key:v1:"), "{ran}");
}

#[test]
fn help_shows_examples_and_documents_the_name_arguments() {
    let ws = Workspace::new();
    for (command, example) in [
        (&["secret", "put", "--help"][..], "envoi secret put db_password"),
        (&["grant", "rm", "--help"], "envoi grant rm billing-api"),
        (&["db", "import", "--help"], "envoi db import"),
        (&["keygen", "--help"], "envoi keygen |"),
    ] {
        let ran = Ran::of(ws.envoi(command)).success();
        ran.stdout_names("Examples:").stdout_names(example);
    }
    Ran::of(ws.envoi(["secret", "rm", "--help"]))
        .success()
        .stdout_names("The secret's name");
}
