//! Sealed values and templates, black-box: `envoi keygen`, `seal`, `reseal`, `check`
//! and `explain` run as commands, and `envoi serve` answers over HTTP.
//!
//! The contract (SPEC §2 and §3, and the sealing issue): AES-256-GCM with a random
//! 96-bit nonce, the secret's name bound in, a key id in every sealed value; several
//! keys (the newest seals, all open); a value that does not open fails the load, naming
//! it and never showing a value; `reseal` rewrites sealed values only. Templates splice
//! claims and named secrets, `$${` is a literal `${`, unknown names and cycles fail the
//! load; binary FILE values go out base64.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::Value;

use crate::support::{Ran, Server, Workspace};

mod keys;
mod refused;
mod rotation;
mod templates;

// ---- Helpers ----

/// Runs `envoi keygen`, stores its last line in `file` and returns the key id.
fn keygen(ws: &Workspace, file: &str) -> String {
    let ran = ws.run(&["keygen"], b"").success();
    let line = ran.last_line().to_owned();
    let (id, _) = parse_key_line(&line).unwrap_or_else(|why| panic!("{why}\n{ran}"));
    ws.write(file, format!("{line}\n"));
    id
}

/// `envoi-key:v1:<id>:<standard base64 of 32 bytes>` → the id and the key bytes.
fn parse_key_line(line: &str) -> Result<(String, Vec<u8>), String> {
    let parts: Vec<&str> = line.split(':').collect();
    let [prefix, version, id, encoded] = parts.as_slice() else {
        return Err(format!("not `envoi-key:v1:<id>:<base64>`: {line}"));
    };
    if *prefix != "envoi-key" || *version != "v1" {
        return Err(format!("not an envoi v1 key: {line}"));
    }
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)) {
        return Err(format!("key id `{id}` is not a plain name"));
    }
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|e| format!("key is not standard base64 ({e}): {line}"))?;
    if bytes.len() != 32 {
        return Err(format!("an AES-256 key has 32 bytes, not {}", bytes.len()));
    }
    Ok((id.to_string(), bytes))
}

/// `envoi:v1:<key id>:<base64url>` → the key id and the decoded data.
fn parse_sealed(sealed: &str) -> (String, Vec<u8>) {
    let parts: Vec<&str> = sealed.splitn(4, ':').collect();
    let [prefix, version, id, data] = parts.as_slice() else {
        panic!("not `envoi:v1:<kid>:<data>`: {sealed}");
    };
    assert_eq!((*prefix, *version), ("envoi", "v1"), "{sealed}");
    let data = URL_SAFE_NO_PAD
        .decode(data)
        .unwrap_or_else(|e| panic!("data is not unpadded base64url ({e}): {sealed}"));
    (id.to_string(), data)
}

/// `envoi --config CONFIG seal --name NAME` with `input` on standard input: the sealed
/// string from the last line of standard output.
fn seal(ws: &Workspace, config: &Path, name: &str, input: &[u8]) -> String {
    seal_with(ws, config, name, input, false)
}

fn seal_with(ws: &Workspace, config: &Path, name: &str, input: &[u8], raw: bool) -> String {
    let config = config.display().to_string();
    let mut args = vec!["--config", config.as_str(), "seal", "--name", name];
    if raw {
        args.push("--raw");
    }
    let ran = ws.run(&args, input).success();
    let sealed = ran.last_line().to_owned();
    assert!(sealed.starts_with("envoi:v1:"), "not a sealed string\n{ran}");
    sealed
}

/// `envoi --config CONFIG ARGS`.
fn envoi(ws: &Workspace, config: &Path, args: &[&str]) -> Ran {
    let config = config.display().to_string();
    let mut all = vec!["--config", config.as_str()];
    all.extend_from_slice(args);
    ws.run(&all, b"")
}

/// `explain --show-values` for p/service/api.
fn explain_values(ws: &Workspace, config: &Path) -> Ran {
    envoi(
        ws,
        config,
        &[
            "explain",
            "--project",
            "p",
            "--type",
            "service",
            "--id",
            "api",
            "--show-values",
        ],
    )
}

/// Neither output of `ran` shows any of `plaintexts`.
#[track_caller]
fn shows_none(ran: &Ran, plaintexts: &[&str]) {
    for plaintext in plaintexts {
        ran.never_shows(plaintext);
    }
}

/// What a running server gives a workload, parsed, with a 200 asserted.
async fn served(server: &Server, project: &str, kind: &str, id: &str) -> Value {
    let (status, body) = server.secrets(project, kind, id).await;
    assert_eq!(status, 200, "{body}\n{}", server.diagnostics());
    body
}

/// The items of an answer, by ENV key or FILE path.
fn item<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["secrets"]
        .as_array()
        .expect("a secrets array")
        .iter()
        .find(|i| i["key"] == name || i["path"] == name)
        .unwrap_or_else(|| panic!("no item `{name}` in {answer}"))
}

/// A workspace with one master key in `master.key` and `envoi.toml` naming it and
/// `policy.toml`: the workspace and the key id.
fn keyed_workspace() -> (Workspace, String, PathBuf) {
    let ws = Workspace::new();
    let kid = keygen(&ws, "master.key");
    let config = ws.config("policy.toml", &["master.key"]);
    (ws, kid, config)
}

// ---- keygen and seal ----

/// `sealed` with one character of its data changed.
fn tamper(sealed: &str) -> String {
    let data_at = sealed.rfind(':').expect("a sealed string") + 1;
    let at = data_at + (sealed.len() - data_at) / 2;
    let original = &sealed[at..=at];
    let flipped = if original == "A" { "B" } else { "A" };
    format!("{}{flipped}{}", &sealed[..at], &sealed[at + 1..])
}
