//! `envoi run --redact` through the built binary against a real `envoi serve` (SPEC §8):
//! values masked whole, split across writes and one byte at a time, in standard output
//! and error, with no more than a line of delay; signals forwarded; the command's exit
//! status passed through.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{clean_command, jwt, Ran, Server, Workspace};

const POLICY: &str = r#"
[[grants]]
project = "shop"
type = "service"
id = "web"
env = { DB_PASSWORD = { value = "correct horse battery" }, TOKEN = { value = "tok-abcd" }, FLAG = { value = "on" } }

[[grants.files]]
path = "/secret.txt"
value = "file-secret-data"
"#;

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("policy.toml", POLICY);
    ws.config("policy.toml", &[]);
    ws.write("token", jwt::token("shop", "service", "web"));
    ws
}

fn serve(ws: &Workspace) -> Server {
    Server::start(ws.path(), &["serve", "--config", "envoi.toml"], &[])
}

fn args<'a>(server: &'a Server, script: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--url",
        server.base.as_str(),
        "--token-file",
        "token",
        "--root",
        "root",
        "--redact",
        "--",
        "sh",
        "-c",
        script,
    ]
}

#[test]
fn redact_masks_every_value_whole_split_across_writes_and_byte_by_byte() {
    let ws = workspace();
    let server = serve(&ws);
    let script = r#"
        printf 'whole: %s\n' "$DB_PASSWORD"
        printf 'split: corr'; sleep 0.1; printf 'ect horse battery\n'
        printf 'bytes: '; for c in t o k - a b c d; do printf %s "$c"; sleep 0.02; done; printf '\n'
        printf 'short: %s\n' "$FLAG"
        printf 'file: '; cat root/secret.txt; printf '\n'
        printf 'err: %s\n' "$TOKEN" >&2
        printf 'near: correct horse\n'
    "#;
    let ran = Ran::of(ws.envoi(args(&server, script))).success();
    for secret in ["correct horse battery", "tok-abcd", "file-secret-data"] {
        ran.never_shows(secret);
    }
    for line in [
        "whole: ***REDACTED***\n",
        "split: ***REDACTED***\n",
        "bytes: ***REDACTED***\n",
        "short: on\n",
        "file: ***REDACTED***\n",
        "near: correct horse\n",
    ] {
        ran.stdout_names(line);
    }
    ran.stderr_names("err: ***REDACTED***\n");
}

#[test]
fn redact_lets_each_line_out_as_soon_as_it_ends() {
    let ws = workspace();
    let server = serve(&ws);
    let mut child = clean_command(ws.path())
        .args(args(&server, "printf 'first line\\n'; sleep 5; printf 'last\\n'"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(line, "first line\n");
    assert!(
        took < Duration::from_secs(4),
        "the line came at once, not at the end: {took:?}"
    );
}

#[test]
fn redact_passes_the_exit_status_through_and_128_plus_the_signal() {
    let ws = workspace();
    let server = serve(&ws);
    let ran = Ran::of(ws.envoi(args(&server, "exit 7")));
    assert_eq!(ran.code, Some(7), "{ran}");
    let ran = Ran::of(ws.envoi(args(&server, "kill -KILL $$")));
    assert_eq!(ran.code, Some(128 + 9), "{ran}");
}

/// Starts `envoi run --redact -- sh -c SCRIPT` and waits for its first line (`ready`).
fn started(
    ws: &Workspace,
    server: &Server,
    script: &str,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = clean_command(ws.path())
        .args(args(server, script))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (child, out)
}

fn kill(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn redact_forwards_signals_to_the_command() {
    let ws = workspace();
    let server = serve(&ws);
    let script = r#"
        trap 'echo got-usr1' USR1
        trap 'echo got-hup' HUP
        trap 'echo got-int' INT
        trap 'echo got-term; exit 3' TERM
        echo ready
        while :; do sleep 0.05; done
    "#;
    let (mut child, mut out) = started(&ws, &server, script);
    for (signal, expected) in [
        ("-USR1", "got-usr1\n"),
        ("-HUP", "got-hup\n"),
        ("-INT", "got-int\n"),
        ("-TERM", "got-term\n"),
    ] {
        kill(signal, child.id());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, expected, "{signal}");
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "the command's own status: {status:?}");

    // A command that a forwarded signal ends: 128 + N.
    let (mut child, _out) = started(&ws, &server, "echo ready; exec sleep 30");
    kill("-TERM", child.id());
    assert_eq!(child.wait().unwrap().code(), Some(128 + 15));
}
