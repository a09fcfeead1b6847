//! A command whose reader goes away (`envoi … | head -3`) ends quietly: no panic, no
//! message, as `ls | head` does.

use std::io::Read as _;
use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;

use crate::support::{clean_command, Workspace};

#[test]
fn a_command_whose_reader_goes_away_ends_quietly() {
    let ws = Workspace::new();
    // Far more than a pipe holds (64 KiB), so that the writes go on after the reader
    // has gone, whenever it goes.
    let keys: Vec<String> = (0..3000).map(|n| format!("KEY_{n:04} = {{ value = \"v\" }}")).collect();
    let policy = ws.write(
        "policy.toml",
        format!("[[grants]]\nproject = \"*\"\nenv = {{ {} }}\n", keys.join(", ")),
    );
    ws.config_with_key("pipe-test-key", &policy);
    let mut child = clean_command(ws.path())
        .args(["explain", "--config", "envoi.toml"])
        .args(["--project", "p", "--type", "t", "--id", "i"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("envoi starts");
    // Read the first lines, as `head -3` would, then go away.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).expect("envoi prints");
    drop(stdout);
    let output = child.wait_with_output().expect("envoi ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        String::from_utf8_lossy(&first).starts_with("p/t/i receives 3000 item(s)"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    assert!(stderr.is_empty(), "nothing said on standard error:\n{stderr}");
    let status = output.status;
    assert!(
        status.success() || status.signal() == Some(libc::SIGPIPE),
        "exits 0 or ends by SIGPIPE, as `ls | head` does: {status:?}\n{stderr}"
    );
}

/// Every command that prints, when its reader is gone before it writes a byte: standard
/// output is a socket whose other end is already closed, so the first write fails.
#[test]
fn every_command_that_prints_ends_quietly_when_its_reader_is_gone() {
    let ws = Workspace::new();
    ws.config_with_key("pipe-test-key", &crate::support::example_policy());
    let workload = ["--project", "billing", "--type", "service", "--id", "api"];
    let commands: [&[&str]; 4] = [&["check"], &["token"], &["explain"], &["keygen"]];
    for command in commands {
        let (stdout, reader) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        drop(reader);
        let mut cmd = clean_command(ws.path());
        cmd.args(command);
        // keygen reads no settings, and refuses --config.
        if command != ["keygen"] {
            cmd.args(["--config", "envoi.toml"]);
        }
        if matches!(command, ["token"] | ["explain"]) {
            cmd.args(workload);
        }
        let output = cmd
            .stdout(std::os::fd::OwnedFd::from(stdout))
            .stderr(Stdio::piped())
            .output()
            .expect("envoi runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let status = output.status;
        assert!(
            status.success() || status.signal() == Some(libc::SIGPIPE),
            "envoi {command:?}: exits 0 or ends by SIGPIPE: {status:?}\n{stderr}"
        );
        // keygen says the new key's id on standard error; nothing else is said.
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "envoi {command:?}: no panic, no error:\n{stderr}"
        );
    }
}
