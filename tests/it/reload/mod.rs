//! Live reload of the TOML store, black-box: `envoi serve` runs as a child process and
//! its policy files are edited under it while requests flow.
//!
//! The contract (SPEC §2 "Stores", §7 and the live-reload issue): a changed file or
//! folder, or SIGHUP, reloads the policy; a reload swaps a whole new policy in (a request
//! sees the old one or the new one, never a mix, and is never blocked); a policy that
//! fails to load leaves the last good one serving and the failure is logged with every
//! problem named and counted; rename-over writes, delete-and-recreate and bursts of
//! saves all end in the right policy within 2 s; `file` values are read again.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::jwt::token;
use crate::support::{toml_string, Server, Workspace};

mod atomic;
mod changes;
mod edits;
mod failures;
mod files;
mod incremental;

/// The issue's bound: every kind of edit is served within this.
const WITHIN: Duration = Duration::from_secs(2);

/// A policy for project `p` that gives `A` and `B`, both of which change with `version`,
/// so that a mix of two versions shows as `A` of one and `B` of the other.
fn versioned_policy(version: u32) -> String {
    let mut text = format!(
        "# version {version}\n\
         [secrets.a]\nvalue = \"A-{version}\"\n\n\
         [secrets.b]\nvalue = \"B-{version}\"\n\n\
         [[grants]]\nname = \"both\"\nproject = \"p\"\nenv = {{ A = \"a\", B = \"b\" }}\n\n\
         [[grants.files]]\npath = \"/etc/app/version\"\nvalue = \"v{version}\"\n"
    );
    // Grants for other projects, so that building the new index takes a while.
    for n in 0..300 {
        text.push_str(&format!(
            "\n[[grants]]\nproject = \"other-{n}\"\ntype = \"service\"\nid = \"api\"\nenv = {{ X = {{ value = \"x-{n}-{version}\" }} }}\n"
        ));
    }
    text
}

/// What `versioned_policy(version)` gives project `p`.
fn versioned_answer(version: u32) -> Value {
    json!({"secrets": [
        {"type": "ENV", "key": "A", "value": format!("A-{version}")},
        {"type": "ENV", "key": "B", "value": format!("B-{version}")},
        {"type": "FILE", "path": "/etc/app/version", "data": format!("v{version}")},
    ]})
}

/// A small policy: project `p` gets `KEY` = `value`.
fn simple_policy(value: &str) -> String {
    format!(
        "# a comment\n[[grants]]\nname = \"simple\"\nproject = \"p\"\nenv = {{ KEY = {{ value = {} }} }}\n",
        toml_string(value)
    )
}

/// The answer to project `p` under `simple_policy(value)`, byte for byte.
fn simple_answer(value: &str) -> String {
    format!(
        r#"{{"secrets":[{{"type":"ENV","key":"KEY","value":{}}}]}}"#,
        Value::from(value)
    )
}

/// Starts a server on `policy` (relative to the workspace) with a config file.
fn serve(ws: &Workspace, policy: &str) -> Server {
    let config = ws.config(policy, &[]);
    Server::serve(ws.path(), &config)
}

/// The body `GET /` gives project `p` now, parsed, with a 200 asserted.
async fn answer_p(server: &Server) -> Value {
    let (status, body) = server.get(&token("p", "service", "api")).await;
    assert_eq!(status, 200, "body: {body}\n{}", server.diagnostics());
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Polls `GET /` for project `p` until its parsed body is `want`, for at most `WITHIN`
/// from `since`.
async fn wait_for_p(server: &Server, want: &Value, since: Instant) {
    let token = token("p", "service", "api");
    loop {
        let (status, body) = server.get(&token).await;
        let parsed: Option<Value> = serde_json::from_str(&body).ok();
        if status == 200 && parsed.as_ref() == Some(want) {
            return;
        }
        if since.elapsed() > WITHIN {
            panic!(
                "not served within {WITHIN:?} of the edit\nwanted: {want}\nlast:   {status} {body}\n{}",
                server.diagnostics()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `text` to `path` as editors that save by rename do: a temporary file in the
/// same folder, then a rename over the old one.
fn write_by_rename(path: &Path, temp_name: &str, text: &str) {
    let temp = path.parent().expect("a folder").join(temp_name);
    std::fs::write(&temp, text).expect("write the temporary file");
    std::fs::rename(&temp, path).expect("rename over the policy");
}

/// The log lines that report a failed load.
fn failure_lines(server: &Server) -> Vec<Value> {
    server
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "ERROR" && message(l).contains("does not load"))
        .collect()
}

fn message(line: &Value) -> &str {
    line["message"]
        .as_str()
        .or_else(|| line["fields"]["message"].as_str())
        .unwrap_or("")
}

/// Waits until `n` failed loads have been logged and returns the last one.
async fn wait_for_failures(server: &Server, n: usize) -> Value {
    let started = Instant::now();
    loop {
        let lines = failure_lines(server);
        if lines.len() >= n {
            assert_eq!(lines.len(), n, "more failed loads than edits\n{}", server.diagnostics());
            return lines[n - 1].clone();
        }
        if started.elapsed() > Duration::from_secs(3) {
            panic!("failed load #{n} was not logged within 3 s\n{}", server.diagnostics());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The number in a log line's `failures` field (the failure counter).
fn failures_field(line: &Value) -> Option<u64> {
    line["failures"]
        .as_u64()
        .or_else(|| line["fields"]["failures"].as_u64())
}

/// For `hold`, every answer to project `p` is 200 and exactly `want`; `/readyz` too is 200.
async fn keeps_serving(server: &Server, want: &Value, hold: Duration) {
    let started = Instant::now();
    while started.elapsed() < hold {
        assert_eq!(&answer_p(server).await, want, "the last good policy must keep serving");
        assert_eq!(server.status_of("/readyz").await, 200, "/readyz after a failed load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
