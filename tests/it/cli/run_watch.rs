//! `envoi run --watch` through the built binary (SPEC §8): a changed answer rewrites the
//! files and restarts the command, the same answer does nothing, a failed fetch keeps
//! the command running; against a real `envoi serve` whose policy is edited, and a
//! stand-in whose answer and status the test sets.

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::server::poll_until;
use crate::support::{clean_command, jwt, FakeServer, Server, Workspace};

/// Appends `$VERSION` to `starts` on every start, then waits to be stopped.
const SCRIPT: &str = r#"echo "$VERSION" >> starts; trap 'exit 0' TERM; while :; do sleep 0.05; done"#;

fn answer(version: &str) -> String {
    format!(
        r#"{{"secrets":[{{"type":"ENV","key":"VERSION","value":"{version}"}},{{"type":"FILE","path":"/conf","data":"{version}"}}]}}"#
    )
}

/// Owns a running `envoi run --watch` and kills it at the end of the test.
struct Watching {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Drop for Watching {
    /// SIGINT, which envoi forwards and which ends every script here (SIGKILL would leave
    /// the command running without its parent); SIGKILL only if that fails.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let ended = poll_until(Duration::from_secs(5), || {
            self.child.try_wait().is_ok_and(|s| s.is_some())
        });
        if ended.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Watching {
    fn start(ws: &Workspace, url: &str, extra: &[&str], script: &str) -> Self {
        ws.write("token", jwt::token("shop", "service", "web"));
        let stderr = ws.join("envoi.stderr");
        let child = clean_command(ws.path())
            .args(["run", "--url", url, "--token-file", "token", "--retry-for", "1s"])
            .args(["--root", "root", "--watch", "1s"])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

fn starts(ws: &Workspace) -> String {
    std::fs::read_to_string(ws.join("starts")).unwrap_or_default()
}

#[track_caller]
fn wait_for_starts(ws: &Workspace, watching: &Watching, want: &str) {
    let seen = poll_until(Duration::from_secs(15), || starts(ws) == want);
    assert!(
        seen.is_some(),
        "starts should be {want:?}, is {:?}\n{}",
        starts(ws),
        watching.stderr()
    );
}

#[test]
fn watch_restarts_the_command_with_new_files_when_the_answer_changes_and_not_otherwise() {
    let ws = Workspace::new();
    let fake = FakeServer::answering(200, answer("one"));
    let watching = Watching::start(&ws, &fake.url, &[], SCRIPT);
    wait_for_starts(&ws, &watching, "one\n");
    // Three more fetches of the same answer: nothing happens.
    let asked = fake.requests();
    assert!(poll_until(Duration::from_secs(10), || fake.requests() >= asked + 3).is_some());
    assert_eq!(starts(&ws), "one\n", "{}", watching.stderr());

    fake.set(200, answer("two"));
    wait_for_starts(&ws, &watching, "one\ntwo\n");
    assert_eq!(ws.read("root/conf"), "two", "the files are written before the restart");
    // Said once the new command has started, which may be after it wrote its line.
    let said = poll_until(Duration::from_secs(10), || watching.stderr().contains("restarted"));
    assert!(said.is_some(), "{}", watching.stderr());
}

#[test]
fn watch_keeps_the_command_running_when_a_fetch_fails_and_says_so() {
    let ws = Workspace::new();
    let fake = FakeServer::answering(200, answer("one"));
    let mut watching = Watching::start(&ws, &fake.url, &[], SCRIPT);
    wait_for_starts(&ws, &watching, "one\n");
    fake.set(503, "{}");
    let warned = poll_until(Duration::from_secs(15), || watching.stderr().contains("keeps running"));
    assert!(warned.is_some(), "{}", watching.stderr());
    assert!(watching.stderr().contains("503"), "{}", watching.stderr());
    assert!(watching.child.try_wait().unwrap().is_none(), "envoi still runs");
    assert_eq!(starts(&ws), "one\n", "the command was not restarted");
    assert_eq!(ws.read("root/conf"), "one");

    // Back, with a new answer: restarted.
    fake.set(200, answer("two"));
    wait_for_starts(&ws, &watching, "one\ntwo\n");
}

#[test]
fn watch_kills_a_command_that_ignores_sigterm_after_the_grace() {
    let ws = Workspace::new();
    let fake = FakeServer::answering(200, answer("one"));
    let stubborn = r#"echo "$VERSION" >> starts; trap '' TERM; while :; do sleep 0.05; done"#;
    let watching = Watching::start(&ws, &fake.url, &["--grace", "1s"], stubborn);
    wait_for_starts(&ws, &watching, "one\n");
    fake.set(200, answer("two"));
    wait_for_starts(&ws, &watching, "one\ntwo\n");
}

#[test]
fn watch_restarts_when_the_policy_of_a_real_server_is_edited() {
    let ws = Workspace::new();
    let policy = |version: &str| {
        format!(
            "[[grants]]\nproject = \"shop\"\ntype = \"service\"\nid = \"web\"\nenv = {{ VERSION = {{ value = \"{version}\" }} }}\n"
        )
    };
    ws.write("policy.toml", policy("one"));
    ws.config("policy.toml", &[]);
    let server = Server::start(ws.path(), &["serve", "--config", "envoi.toml"], &[]);
    let url = format!("{}/", server.base);
    let watching = Watching::start(&ws, &url, &[], SCRIPT);
    wait_for_starts(&ws, &watching, "one\n");
    // As an editor saves: a temporary file, then a rename over the policy.
    ws.write("policy.toml.new", policy("two"));
    std::fs::rename(ws.join("policy.toml.new"), ws.join("policy.toml")).unwrap();
    wait_for_starts(&ws, &watching, "one\ntwo\n");

    // The server stopped mid-run: the command keeps running, and envoi says so.
    let mut server = server;
    server.terminate();
    let warned = poll_until(Duration::from_secs(15), || watching.stderr().contains("keeps running"));
    assert!(warned.is_some(), "{}", watching.stderr());
    assert_eq!(starts(&ws), "one\ntwo\n");
}
