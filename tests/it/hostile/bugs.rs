//! Bugs the hostile suite found, kept as regression tests: a huge request head, a deep
//! template chain, an exponential template expansion.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::cases::head_of_size;
use super::fixture::*;
use crate::support::workspace::{clean_environment, Workspace, ENVOI};

#[test]
fn a_40_kib_request_head_is_refused() {
    let server = start_server();
    match server.exchange(head_of_size(&good_token(), 40).as_bytes()) {
        Outcome::Answer(answer) => assert!(
            [400, 431].contains(&answer.status),
            "40 KiB of headers answered {}",
            answer.status
        ),
        Outcome::Closed { .. } => {}
        Outcome::TimedOut { .. } => panic!("a 40 KiB head hangs"),
    }
}

/// Runs `envoi check` on `policy` under a 2 GB address-space limit; gives how it ended
/// (None: still running after `limit`, then killed) and what it printed.
fn check_policy(policy: &str, limit: Duration) -> (Option<std::process::ExitStatus>, String) {
    let ws = Workspace::new();
    ws.write("policy.toml", policy);
    let config = ws.write(
        "envoi.toml",
        "[auth]\nsecrets = [\"hostile-check-key\"]\n[store]\npath = \"policy.toml\"\n",
    );
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(r#"ulimit -v 2000000; exec "$0" check --config "$1""#)
        .arg(ENVOI)
        .arg(&config);
    let mut child = clean_environment(shell, ws.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("envoi check starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited on") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut output);
    }
    (status, output)
}

/// A correct loader answers within the limit with an exit code of its own: 0, or
/// non-zero naming the problem. Never a crash (signal, abort), never a hang.
fn assert_check_ends_cleanly(policy: &str, what: &str) {
    let (status, output) = check_policy(policy, Duration::from_secs(10));
    let output: String = output.chars().take(600).collect();
    let status = status.unwrap_or_else(|| panic!("{what}: `envoi check` still running after 10 s"));
    assert!(
        status.code().is_some_and(|c| c == 0 || c == 1 || c == 2),
        "{what}: `envoi check` ended with {status:?}:\n{output}"
    );
}

/// `s0` → `s1` → … → `s{n}`, each a template splicing the next.
fn template_chain(n: usize) -> String {
    let mut policy = String::new();
    for i in 0..n {
        policy.push_str(&format!("[secrets.s{i}]\ntemplate = \"x${{secret.s{}}}\"\n", i + 1));
    }
    policy.push_str(&format!(
        "[secrets.s{n}]\nvalue = \"end\"\n[[grants]]\nenv = {{ A = \"s0\" }}\n"
    ));
    policy
}

#[test]
fn a_short_template_chain_and_a_template_cycle_load_or_fail_cleanly() {
    // The controls of the two bugs below: small cases are handled.
    assert_check_ends_cleanly(&template_chain(50), "a chain of 50 templates");
    let cycle = "[secrets.a]\ntemplate = \"${secret.b}\"\n[secrets.b]\ntemplate = \"${secret.a}\"\n\
                 [[grants]]\nenv = { A = \"a\" }\n";
    let (status, output) = check_policy(cycle, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "a template cycle: {output}");
    assert!(output.contains("refers back to itself"), "{output}");
}

#[test]
fn a_deep_template_chain_does_not_crash_the_loader() {
    assert_check_ends_cleanly(&template_chain(5000), "a chain of 5000 templates");
}

#[test]
fn an_exponential_template_expansion_is_refused_quickly() {
    let depth = 30;
    let mut policy = String::new();
    for i in 0..depth {
        policy.push_str(&format!(
            "[secrets.l{i}]\ntemplate = \"${{secret.l{n}}}${{secret.l{n}}}\"\n",
            n = i + 1
        ));
    }
    policy.push_str(&format!(
        "[secrets.l{depth}]\nvalue = \"lol\"\n[[grants]]\nenv = {{ A = \"l0\" }}\n"
    ));
    assert_check_ends_cleanly(&policy, "2^30 expansion");
}
