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
use serde_json::{json, Value};

use crate::support::jwt::token;
use crate::support::{toml_string, Ran, Server, Workspace};

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

#[test]
fn keygen_prints_a_new_key_with_its_id_on_the_last_line() {
    let ws = Workspace::new();
    let first = ws.run(&["keygen"], b"").success();
    let (id, _) = parse_key_line(first.last_line()).unwrap_or_else(|why| panic!("{why}\n{first}"));
    // The id is told besides the key line itself.
    let elsewhere = format!(
        "{}{}",
        first.stderr,
        first.stdout.trim_end().trim_end_matches(first.last_line())
    );
    assert!(elsewhere.contains(&id), "keygen should name the key id `{id}`\n{first}");

    let second = ws.run(&["keygen"], b"").success();
    let (id2, _) = parse_key_line(second.last_line()).unwrap();
    assert_ne!(first.last_line(), second.last_line(), "each key is new");
    assert_ne!(id, id2, "each key has its own id");
}

#[test]
fn seal_prints_a_sealed_string_under_the_key_id() {
    let (ws, kid, config) = keyed_workspace();
    let plaintext = "s3cr3t-value-for-seal";
    let sealed = seal(&ws, &config, "stripe_key", plaintext.as_bytes());
    let (id, data) = parse_sealed(&sealed);
    assert_eq!(id, kid, "sealed with the configured key");
    // A 96-bit nonce, the ciphertext (as long as the plaintext) and a 128-bit GCM tag.
    assert_eq!(data.len(), 12 + plaintext.len() + 16, "{sealed}");
    assert!(!sealed.contains(plaintext));
    assert!(!data.windows(plaintext.len()).any(|w| w == plaintext.as_bytes()));
}

#[tokio::test]
async fn a_sealed_value_round_trips_to_explain_and_to_the_wire() {
    let (ws, _, config) = keyed_workspace();
    let named = seal(&ws, &config, "stripe_key", b"sk_live_named_41f2");
    // Inline values are sealed for their ENV key or FILE path.
    let inline_env = seal(&ws, &config, "INLINE_TOKEN", b"inline-env-77ab");
    let inline_file = seal_with(&ws, &config, "/etc/app/cert.pem", b"-----cert 88cd-----\n", true);
    ws.write(
        "policy.toml",
        format!(
            "[secrets.stripe_key]\nsealed = {}\n\n[[grants]]\nname = \"app\"\nproject = \"p\"\n\
             env = {{ STRIPE_KEY = \"stripe_key\", INLINE_TOKEN = {{ sealed = {} }} }}\n\n\
             [[grants.files]]\npath = \"/etc/app/cert.pem\"\nsealed = {}\nmode = \"0400\"\n",
            toml_string(&named),
            toml_string(&inline_env),
            toml_string(&inline_file)
        ),
    );
    envoi(&ws, &config, &["check"]).success();

    let shown = explain_values(&ws, &config).success();
    shown.stdout_names("\"sk_live_named_41f2\"");
    shown.stdout_names("\"inline-env-77ab\"");
    shown.stdout_names("-----cert 88cd-----");
    let masked = envoi(
        &ws,
        &config,
        &["explain", "--project", "p", "--type", "service", "--id", "api"],
    )
    .success();
    shows_none(&masked, &["sk_live_named_41f2", "inline-env-77ab", "cert 88cd"]);

    let server = Server::serve(ws.path(), &config);
    let answer = served(&server, "p", "service", "api").await;
    assert_eq!(
        answer,
        json!({"secrets": [
            {"type": "ENV", "key": "INLINE_TOKEN", "value": "inline-env-77ab"},
            {"type": "ENV", "key": "STRIPE_KEY", "value": "sk_live_named_41f2"},
            {"type": "FILE", "path": "/etc/app/cert.pem", "data": "-----cert 88cd-----\n",
             "permissions": {"policy": "AlwaysSet", "mode": "0400"}},
        ]})
    );
    let logs = server.stderr();
    for plaintext in ["sk_live_named_41f2", "inline-env-77ab", "cert 88cd"] {
        assert!(!logs.contains(plaintext), "`{plaintext}` logged\n{logs}");
    }
}

#[test]
fn the_same_value_sealed_twice_gives_different_strings_that_both_open() {
    let (ws, _, config) = keyed_workspace();
    let one = seal(&ws, &config, "twice", b"same-plaintext-5e");
    let two = seal(&ws, &config, "twice", b"same-plaintext-5e");
    assert_ne!(one, two, "a random nonce per seal");
    let (_, data_one) = parse_sealed(&one);
    let (_, data_two) = parse_sealed(&two);
    assert_ne!(data_one[..12], data_two[..12], "the nonces differ");

    ws.write(
        "policy.toml",
        format!(
            "[secrets.twice]\nsealed = {}\n\n[[grants]]\nproject = \"p\"\nenv = {{ ONE = \"twice\", TWO = {{ template = \"${{secret.twice}}\" }} }}\n",
            toml_string(&one)
        ),
    );
    explain_values(&ws, &config)
        .success()
        .stdout_names("ENV ONE = \"same-plaintext-5e\"");
    ws.write(
        "policy.toml",
        format!(
            "[secrets.twice]\nsealed = {}\n\n[[grants]]\nproject = \"p\"\nenv = {{ ONE = \"twice\" }}\n",
            toml_string(&two)
        ),
    );
    explain_values(&ws, &config)
        .success()
        .stdout_names("ENV ONE = \"same-plaintext-5e\"");
}

#[test]
fn seal_drops_one_trailing_newline_unless_raw() {
    let (ws, _, config) = keyed_workspace();
    let cases: [(&str, &[u8], bool, &str); 5] = [
        ("PLAIN", b"value", false, "\"value\""),
        ("ECHOED", b"value\n", false, "\"value\""),
        ("CRLF", b"value\r\n", false, "\"value\""),
        ("TWO_NEWLINES", b"value\n\n", false, "\"value\\n\""),
        ("RAW", b"value\n", true, "\"value\\n\""),
    ];
    let mut env = Vec::new();
    for (key, input, raw, _) in cases {
        let sealed = seal_with(&ws, &config, key, input, raw);
        env.push(format!("{key} = {{ sealed = {} }}", toml_string(&sealed)));
    }
    ws.write(
        "policy.toml",
        format!("[[grants]]\nproject = \"p\"\nenv = {{ {} }}\n", env.join(", ")),
    );
    let shown = explain_values(&ws, &config).success();
    for (key, _, _, want) in cases {
        shown.stdout_names(&format!("ENV {key} = {want}\n"));
    }
}

#[test]
fn seal_without_a_master_key_names_the_setting() {
    let ws = Workspace::new();
    let config = ws.config("policy.toml", &[]);
    let ran = ws
        .run(
            &["--config", &config.display().to_string(), "seal", "--name", "x"],
            b"plaintext-without-key",
        )
        .failure();
    ran.stderr_names("seal.key_files");
    ran.never_shows("plaintext-without-key");
    assert!(!ran.stdout.contains("envoi:v1:"), "nothing sealed\n{ran}");

    // And without any config file at all.
    ws.run(&["seal", "--name", "x"], b"v")
        .failure()
        .stderr_names("seal.key_files");
}

#[test]
fn a_master_key_from_the_environment_seals_and_opens() {
    let ws = Workspace::new();
    let kid = keygen(&ws, "master.key");
    let key_line = ws.read("master.key").trim().to_owned();
    let config = ws.config("policy.toml", &[]);
    let config_arg = config.display().to_string();

    let mut cmd = ws.envoi(["--config", &config_arg, "seal", "--name", "from_env"]);
    cmd.env("ENVOI__SEAL__KEYS", &key_line)
        .write_stdin("env-keyed-value-12");
    let ran = Ran::of(cmd).success();
    let sealed = ran.last_line().to_owned();
    assert_eq!(parse_sealed(&sealed).0, kid);

    ws.write(
        "policy.toml",
        format!(
            "[secrets.from_env]\nsealed = {}\n\n[[grants]]\nproject = \"p\"\nenv = {{ V = \"from_env\" }}\n",
            toml_string(&sealed)
        ),
    );
    // Opens with the same key given as a file...
    let file_config = ws.config_named("file.toml", "policy.toml", &["master.key"]);
    explain_values(&ws, &file_config)
        .success()
        .stdout_names("\"env-keyed-value-12\"");
    // ...and not without a key.
    let ran = envoi(&ws, &config, &["check"]).failure();
    ran.stderr_names("from_env");
    ran.never_shows("env-keyed-value-12");
}

#[test]
fn a_master_key_in_the_environment_is_never_printed() {
    let ws = Workspace::new();
    keygen(&ws, "master.key");
    let key_line = ws.read("master.key").trim().to_owned();
    let material = key_line.rsplit(':').next().unwrap().to_owned();
    let config = ws.config("policy.toml", &[]);
    let config_arg = config.display().to_string();
    for args in [vec!["seal", "--name", "x"], vec!["check"]] {
        let mut all = vec!["--config", config_arg.as_str()];
        all.extend(args);
        let mut cmd = ws.envoi(&all);
        cmd.env("ENVOI__SEAL__KEYS", &key_line).write_stdin("v");
        let ran = Ran::of(cmd);
        ran.never_shows(&material);
    }
}

// ---- values that do not open ----

/// A policy with two sealed values that open and `extra` added: the plaintexts it
/// holds, for "never shown" checks.
const GOOD_PLAINTEXTS: [&str; 2] = ["good-one-plaintext-a1", "good-two-plaintext-b2"];

fn policy_with_good_values(ws: &Workspace, config: &Path, extra: &str) {
    let one = seal(ws, config, "good_one", GOOD_PLAINTEXTS[0].as_bytes());
    let two = seal(ws, config, "GOOD_TWO", GOOD_PLAINTEXTS[1].as_bytes());
    ws.write(
        "policy.toml",
        format!(
            "[secrets.good_one]\nsealed = {}\n\n{extra}\n\n[[grants]]\nname = \"app\"\nproject = \"p\"\n\
             env = {{ GOOD_ONE = \"good_one\", GOOD_TWO = {{ sealed = {} }} }}\n",
            toml_string(&one),
            toml_string(&two)
        ),
    );
}

/// `sealed` with one character of its data changed.
fn tamper(sealed: &str) -> String {
    let data_at = sealed.rfind(':').expect("a sealed string") + 1;
    let at = data_at + (sealed.len() - data_at) / 2;
    let original = &sealed[at..=at];
    let flipped = if original == "A" { "B" } else { "A" };
    format!("{}{flipped}{}", &sealed[..at], &sealed[at + 1..])
}

#[test]
fn a_tampered_sealed_value_fails_the_check_naming_the_secret() {
    let (ws, _, config) = keyed_workspace();
    let sealed = seal(&ws, &config, "tampered_secret", b"tampered-plaintext-c3");
    let tampered = tamper(&sealed);
    assert_ne!(tampered, sealed);
    policy_with_good_values(
        &ws,
        &config,
        &format!("[secrets.tampered_secret]\nsealed = {}", toml_string(&tampered)),
    );
    let ran = envoi(&ws, &config, &["check"]).failure();
    ran.stderr_names("tampered_secret");
    shows_none(&ran, &GOOD_PLAINTEXTS);
    shows_none(&ran, &["tampered-plaintext-c3"]);

    // Untampered, the same policy loads.
    policy_with_good_values(
        &ws,
        &config,
        &format!("[secrets.tampered_secret]\nsealed = {}", toml_string(&sealed)),
    );
    envoi(&ws, &config, &["check"]).success();
}

#[test]
fn a_tampered_inline_value_fails_naming_its_key() {
    let (ws, _, config) = keyed_workspace();
    let sealed = seal(&ws, &config, "TAMPERED_ENV", b"tampered-inline-d4");
    policy_with_good_values(
        &ws,
        &config,
        &format!(
            "[[grants]]\nname = \"tampering\"\nproject = \"q\"\nenv = {{ TAMPERED_ENV = {{ sealed = {} }} }}",
            toml_string(&tamper(&sealed))
        ),
    );
    let ran = envoi(&ws, &config, &["check"]).failure();
    ran.stderr_names("TAMPERED_ENV");
    shows_none(&ran, &GOOD_PLAINTEXTS);
    shows_none(&ran, &["tampered-inline-d4"]);
}

#[test]
fn a_sealed_value_moved_to_another_name_does_not_open() {
    let (ws, _, config) = keyed_workspace();
    let sealed = seal(&ws, &config, "original_name", b"moved-plaintext-e5");
    policy_with_good_values(
        &ws,
        &config,
        &format!("[secrets.moved_name]\nsealed = {}", toml_string(&sealed)),
    );
    let ran = envoi(&ws, &config, &["check"]).failure();
    ran.stderr_names("moved_name");
    shows_none(&ran, &GOOD_PLAINTEXTS);
    shows_none(&ran, &["moved-plaintext-e5"]);

    // Sealed for one ENV key, given under another: does not open either.
    let for_a = seal(&ws, &config, "KEY_A", b"moved-inline-e6");
    policy_with_good_values(
        &ws,
        &config,
        &format!(
            "[[grants]]\nproject = \"q\"\nenv = {{ KEY_B = {{ sealed = {} }} }}",
            toml_string(&for_a)
        ),
    );
    let ran = envoi(&ws, &config, &["check"]).failure();
    ran.stderr_names("KEY_B");
    shows_none(&ran, &GOOD_PLAINTEXTS);
    shows_none(&ran, &["moved-plaintext-e5", "moved-inline-e6"]);
}

#[test]
fn a_value_sealed_with_a_key_that_is_not_configured_names_the_key_id() {
    let ws = Workspace::new();
    let old_kid = keygen(&ws, "old.key");
    let new_kid = keygen(&ws, "new.key");
    let old_config = ws.config_named("old.toml", "policy.toml", &["old.key"]);
    let new_config = ws.config_named("new.toml", "policy.toml", &["new.key"]);
    let sealed = seal(&ws, &old_config, "legacy", b"legacy-plaintext-f6");
    let good = seal(&ws, &new_config, "current", b"current-plaintext-f7");
    ws.write(
        "policy.toml",
        format!(
            "[secrets.legacy]\nsealed = {}\n\n[secrets.current]\nsealed = {}\n\n\
             [[grants]]\nproject = \"p\"\nenv = {{ LEGACY = \"legacy\", CURRENT = \"current\" }}\n",
            toml_string(&sealed),
            toml_string(&good)
        ),
    );
    let ran = envoi(&ws, &new_config, &["check"]).failure();
    ran.stderr_names("legacy");
    ran.stderr_names(&old_kid);
    shows_none(&ran, &["legacy-plaintext-f6", "current-plaintext-f7"]);
    assert_ne!(old_kid, new_kid);
}

#[test]
fn a_malformed_key_file_is_refused_naming_the_setting() {
    let ws = Workspace::new();
    keygen(&ws, "master.key");
    let line = ws.read("master.key").trim().to_owned();
    // Change one character of the key material.
    let at = line.len() - 5;
    let flipped = if &line[at..=at] == "A" { "B" } else { "A" };
    let mistyped = format!("{}{flipped}{}", &line[..at], &line[at + 1..]);
    ws.write("master.key", format!("{mistyped}\n"));
    let config = ws.config("policy.toml", &["master.key"]);
    ws.write("policy.toml", "");
    let ran = envoi(&ws, &config, &["check"]).failure();
    ran.stderr_names("seal.key_files");
    ran.never_shows(&mistyped[mistyped.rfind(':').unwrap() + 1..]);
}

#[test]
fn a_sealed_value_without_any_master_key_fails_naming_it_and_the_setting() {
    let (ws, _, keyed) = keyed_workspace();
    let sealed = seal(&ws, &keyed, "needs_a_key", b"keyless-plaintext-g8");
    ws.write(
        "policy.toml",
        format!(
            "[secrets.needs_a_key]\nsealed = {}\n\n[[grants]]\nproject = \"p\"\nenv = {{ K = \"needs_a_key\" }}\n",
            toml_string(&sealed)
        ),
    );
    let keyless = ws.config_named("keyless.toml", "policy.toml", &[]);
    let ran = envoi(&ws, &keyless, &["check"]).failure();
    ran.stderr_names("needs_a_key").stderr_names("seal.key_files");
    shows_none(&ran, &["keyless-plaintext-g8"]);
    envoi(&ws, &keyed, &["check"]).success();
}

#[test]
fn serve_refuses_to_start_when_a_sealed_value_does_not_open() {
    let (ws, _, config) = keyed_workspace();
    let sealed = seal(&ws, &config, "served_secret", b"serve-plaintext-h9");
    policy_with_good_values(
        &ws,
        &config,
        &format!("[secrets.served_secret]\nsealed = {}", toml_string(&tamper(&sealed))),
    );
    let mut cmd = ws.envoi(["--config", &config.display().to_string(), "serve"]);
    cmd.env("ENVOI__SERVER__LISTEN", "127.0.0.1:0")
        .timeout(std::time::Duration::from_secs(10));
    let ran = Ran::of(cmd);
    assert!(
        matches!(ran.code, Some(code) if code != 0),
        "serve must not start with a value that does not open\n{ran}"
    );
    ran.stderr_names("served_secret");
    shows_none(&ran, &GOOD_PLAINTEXTS);
    shows_none(&ran, &["serve-plaintext-h9"]);
}

// ---- rotation and reseal ----

/// A workspace with an old and a new key, and configs naming `old` only, `[new, old]`
/// and `new` only.
struct Rotation {
    ws: Workspace,
    old_kid: String,
    new_kid: String,
    old: PathBuf,
    both: PathBuf,
    new: PathBuf,
}

fn rotation(policy: &str) -> Rotation {
    let ws = Workspace::new();
    let old_kid = keygen(&ws, "keys/old.key");
    let new_kid = keygen(&ws, "keys/new.key");
    let old = ws.config_named("old.toml", policy, &["keys/old.key"]);
    let both = ws.config_named("both.toml", policy, &["keys/new.key", "keys/old.key"]);
    let new = ws.config_named("new.toml", policy, &["keys/new.key"]);
    Rotation {
        ws,
        old_kid,
        new_kid,
        old,
        both,
        new,
    }
}

#[tokio::test]
async fn during_rotation_old_values_open_and_the_newest_key_seals() {
    let r = rotation("policy.toml");
    let old_sealed = seal(&r.ws, &r.old, "legacy", b"rotated-legacy-a9");
    assert_eq!(parse_sealed(&old_sealed).0, r.old_kid);
    let new_sealed = seal(&r.ws, &r.both, "fresh", b"rotated-fresh-b9");
    assert_eq!(parse_sealed(&new_sealed).0, r.new_kid, "the first key seals");
    r.ws.write(
        "policy.toml",
        format!(
            "[secrets.legacy]\nsealed = {}\n\n[secrets.fresh]\nsealed = {}\n\n\
             [[grants]]\nproject = \"p\"\nenv = {{ LEGACY = \"legacy\", FRESH = \"fresh\" }}\n",
            toml_string(&old_sealed),
            toml_string(&new_sealed)
        ),
    );
    envoi(&r.ws, &r.both, &["check"]).success();
    let server = Server::serve(r.ws.path(), &r.both);
    assert_eq!(
        served(&server, "p", "service", "api").await,
        json!({"secrets": [
            {"type": "ENV", "key": "FRESH", "value": "rotated-fresh-b9"},
            {"type": "ENV", "key": "LEGACY", "value": "rotated-legacy-a9"},
        ]})
    );
    // The old key alone does not open the new value, nor the new key the old one.
    envoi(&r.ws, &r.old, &["check"]).failure().stderr_names("fresh");
    envoi(&r.ws, &r.new, &["check"]).failure().stderr_names("legacy");
}

/// Replaces every `envoi:v1:<kid>:<data>` whose data follows `kid` with `<SEALED>`,
/// except `keep`; returns the text and how many were replaced.
fn mask_sealed(text: &str, kid: &str, keep: &[&str]) -> (String, usize) {
    let marker = format!("envoi:v1:{kid}:");
    let mut out = String::new();
    let mut rest = text;
    let mut count = 0;
    while let Some(at) = rest.find(&marker) {
        let after = &rest[at + marker.len()..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        let whole = &rest[at..at + marker.len() + len];
        out.push_str(&rest[..at]);
        if keep.contains(&whole) {
            out.push_str(whole);
        } else {
            out.push_str("<SEALED>");
            count += 1;
        }
        rest = &rest[at + marker.len() + len..];
    }
    out.push_str(rest);
    (out, count)
}

/// Replaces each of `strings` in `text` with `<SEALED>`.
fn mask_exact(text: &str, strings: &[String]) -> String {
    strings
        .iter()
        .fold(text.to_owned(), |text, s| text.replace(s.as_str(), "<SEALED>"))
}

#[tokio::test]
async fn reseal_rewrites_only_the_sealed_values() {
    let r = rotation("policy.toml");
    let ws = &r.ws;
    let zeta = seal(ws, &r.old, "zeta", b"reseal-zeta-01");
    let alpha = seal(ws, &r.old, "alpha", b"reseal-alpha-02");
    let inline = seal(ws, &r.old, "INLINE", b"reseal-inline-03");
    let file = seal(ws, &r.old, "/etc/app/key", b"reseal-file-04");
    let array_file = seal(ws, &r.old, "/etc/app/other", b"reseal-array-05");
    let current = seal(ws, &r.new, "current", b"reseal-current-06");
    let old_strings = [
        zeta.clone(),
        alpha.clone(),
        inline.clone(),
        file.clone(),
        array_file.clone(),
    ];
    // Looks sealed, is not a `sealed` value: left alone.
    let decoy = format!("envoi:v1:{}:bm90LWEtc2VhbGVkLXZhbHVl", r.old_kid);
    let original = format!(
        "# The policy, with comments that must survive a reseal.\n\
         # A comment that quotes a sealed-looking string: {decoy}\n\
         \n\
         [secrets.zeta]   # out of alphabetical order on purpose\n\
         sealed = \"{zeta}\"   # trailing comment\n\
         \n\
         \n\
         [secrets.alpha]\n\
         # a comment inside the table\n\
         \tsealed   =\t\"{alpha}\"\t\n\
         \n\
         [secrets.current]\n\
         sealed = \"{current}\"\n\
         \n\
         [secrets.decoy]\n\
         value = \"{decoy}\"\n\
         \n\
         [secrets.templated]\n\
         template = \"${{secret.alpha}}@${{projectId}}\"\n\
         \n\
         [[grants]]\n\
         name = \"app\"   # the grant\n\
         project = \"p\"\n\
         env = {{ ZETA = \"zeta\",   ALPHA = \"alpha\", INLINE = {{ sealed = \"{inline}\" }}, CURRENT = \"current\", DECOY = \"decoy\", TEMPLATED = \"templated\" }}\n\
         \n\
         [[grants.files]]\n\
         path = \"/etc/app/key\"\n\
         sealed = \"{file}\"\n\
         mode = \"0400\"\n\
         \n\
         [[grants]]\n\
         name = \"array\"\n\
         project = \"p\"\n\
         files = [ {{ path = \"/etc/app/other\", sealed = \"{array_file}\" }} ]\n\
         # the end, without a newline"
    );
    let policy = ws.write("policy.toml", &original);
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o640)).unwrap();
    envoi(ws, &r.both, &["check"]).success();
    let before = {
        let server = Server::serve(ws.path(), &r.both);
        served(&server, "p", "service", "api").await
    };
    assert_eq!(item(&before, "ZETA")["value"], "reseal-zeta-01");
    assert_eq!(item(&before, "TEMPLATED")["value"], "reseal-alpha-02@p");

    let ran = envoi(ws, &r.both, &["reseal"]).success();
    let plaintexts = [
        "reseal-zeta-01",
        "reseal-alpha-02",
        "reseal-inline-03",
        "reseal-file-04",
        "reseal-array-05",
        "reseal-current-06",
    ];
    shows_none(&ran, &plaintexts);
    let resealed = ws.read("policy.toml");

    // Every sealed value is under the new key; the one already there is untouched.
    for old in &old_strings {
        assert!(
            !resealed.contains(old.as_str()),
            "still sealed under the old key: {old}\n{resealed}"
        );
    }
    assert!(
        resealed.contains(&current),
        "a value under the newest key is left as it was"
    );
    let (masked_new, replaced) = mask_sealed(&resealed, &r.new_kid, &[&current]);
    assert_eq!(
        replaced,
        old_strings.len(),
        "values now under {}:\n{resealed}",
        r.new_kid
    );
    // Every other byte is as it was: comments, blank lines, order, spacing, the decoys.
    assert_eq!(
        masked_new,
        mask_exact(&original, &old_strings),
        "reseal changed more than the sealed values"
    );
    let mode = std::fs::metadata(&policy).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640, "the file's permissions are kept");

    // The new key alone opens everything now, and the answers are the same.
    envoi(ws, &r.new, &["check"]).success();
    let server = Server::serve(ws.path(), &r.new);
    assert_eq!(served(&server, "p", "service", "api").await, before);

    // A second reseal has nothing to do and leaves the file byte for byte.
    envoi(ws, &r.both, &["reseal"]).success();
    assert_eq!(ws.read("policy.toml"), resealed);
}

#[tokio::test]
async fn reseal_under_a_running_server_keeps_the_answers() {
    let r = rotation("policy.toml");
    let sealed = seal(&r.ws, &r.old, "live", b"reseal-live-13");
    r.ws.write(
        "policy.toml",
        format!("[secrets.live]\nsealed = \"{sealed}\"\n\n[[grants]]\nproject = \"p\"\nenv = {{ LIVE = \"live\" }}\n"),
    );
    let server = Server::serve(r.ws.path(), &r.both);
    let want = json!({"secrets": [{"type": "ENV", "key": "LIVE", "value": "reseal-live-13"}]});
    assert_eq!(served(&server, "p", "service", "api").await, want);

    envoi(&r.ws, &r.both, &["reseal"]).success();
    assert!(r.ws.read("policy.toml").contains(&format!("envoi:v1:{}:", r.new_kid)));
    // The rewrite is a change of the file: reloaded, and the answers stay the same.
    server
        .wait_for_log(std::time::Duration::from_secs(3), "`policy reloaded`", |l| {
            l["message"] == "policy reloaded" || l["fields"]["message"] == "policy reloaded"
        })
        .await;
    for _ in 0..10 {
        assert_eq!(served(&server, "p", "service", "api").await, want);
    }
    assert!(!server.stderr().contains("does not load"), "{}", server.diagnostics());
}

#[test]
fn reseal_keeps_the_quotes_a_sealed_value_was_written_with() {
    let r = rotation("policy.toml");
    let sealed = seal(&r.ws, &r.old, "literal", b"reseal-literal-07");
    let original = format!(
        "[secrets.literal]\nsealed = '{sealed}'  # a literal string\n\n[[grants]]\nproject = \"p\"\nenv = {{ L = \"literal\" }}\n"
    );
    r.ws.write("policy.toml", &original);
    envoi(&r.ws, &r.both, &["reseal"]).success();
    let resealed = r.ws.read("policy.toml");
    let (masked, replaced) = mask_sealed(&resealed, &r.new_kid, &[]);
    assert_eq!(replaced, 1, "{resealed}");
    assert_eq!(masked, mask_exact(&original, &[sealed]), "quotes or layout changed");
    envoi(&r.ws, &r.new, &["check"]).success();
}

#[test]
fn reseal_keeps_crlf_line_endings() {
    let r = rotation("policy.toml");
    let sealed = seal(&r.ws, &r.old, "crlf", b"reseal-crlf-14");
    let original = format!(
        "# written on Windows\r\n[secrets.crlf]\r\nsealed = \"{sealed}\"\r\n\r\n[[grants]]\r\nproject = \"p\"\r\nenv = {{ C = \"crlf\" }}\r\n"
    );
    r.ws.write("policy.toml", &original);
    envoi(&r.ws, &r.both, &["check"]).success();
    envoi(&r.ws, &r.both, &["reseal"]).success();
    let resealed = r.ws.read("policy.toml");
    let (masked, replaced) = mask_sealed(&resealed, &r.new_kid, &[]);
    assert_eq!(replaced, 1, "{resealed:?}");
    assert_eq!(masked, mask_exact(&original, &[sealed]), "line endings changed");
}

#[test]
fn reseal_with_a_value_that_does_not_open_changes_nothing() {
    let r = rotation("policy.toml");
    let good = seal(&r.ws, &r.old, "good", b"reseal-good-08");
    let bad = tamper(&seal(&r.ws, &r.old, "bad_one", b"reseal-bad-09"));
    let original = format!(
        "# untouched\n[secrets.good]\nsealed = \"{good}\"\n\n[secrets.bad_one]\nsealed = \"{bad}\"\n\n\
         [[grants]]\nproject = \"p\"\nenv = {{ G = \"good\", B = \"bad_one\" }}\n"
    );
    let policy = r.ws.write("policy.toml", &original);
    let modified = std::fs::metadata(&policy).unwrap().modified().unwrap();

    let ran = envoi(&r.ws, &r.both, &["reseal"]).failure();
    ran.stderr_names("bad_one");
    shows_none(&ran, &["reseal-good-08", "reseal-bad-09"]);
    assert_eq!(r.ws.read("policy.toml"), original, "nothing is rewritten");
    assert_eq!(std::fs::metadata(&policy).unwrap().modified().unwrap(), modified);

    // A value under a key that is not configured at all: the same.
    let stranger = Workspace::new();
    keygen(&stranger, "stranger.key");
    let stranger_config = stranger.config("policy.toml", &["stranger.key"]);
    let foreign = seal(&stranger, &stranger_config, "foreign", b"reseal-foreign-10");
    let foreign_kid = parse_sealed(&foreign).0;
    let original = format!("[secrets.good]\nsealed = \"{good}\"\n\n[secrets.foreign]\nsealed = \"{foreign}\"\n");
    r.ws.write("policy.toml", &original);
    let ran = envoi(&r.ws, &r.both, &["reseal"]).failure();
    ran.stderr_names("foreign");
    ran.stderr_names(&foreign_kid);
    assert_eq!(r.ws.read("policy.toml"), original, "nothing is rewritten");
}

#[test]
fn reseal_of_a_policy_folder_is_all_or_nothing() {
    let r = rotation("policy.d");
    let first = seal(&r.ws, &r.old, "first", b"reseal-first-11");
    let second = seal(&r.ws, &r.old, "second", b"reseal-second-12");
    // A grant, so that the policy grants something and `check` can pass at the end.
    let a = format!("# file a\n[secrets.first]\nsealed = \"{first}\"\n\n[[grants]]\nproject = \"p\"\nenv = {{ FIRST = \"first\" }}\n");
    let b_broken = format!("# file b\n[secrets.second]\nsealed = \"{}\"\n", tamper(&second));
    r.ws.write("policy.d/a.toml", &a);
    r.ws.write("policy.d/b.toml", &b_broken);
    let ran = envoi(&r.ws, &r.both, &["reseal"]).failure();
    ran.stderr_names("second");
    assert_eq!(
        r.ws.read("policy.d/a.toml"),
        a,
        "a.toml is not rewritten while b.toml fails"
    );
    assert_eq!(r.ws.read("policy.d/b.toml"), b_broken);

    let b = format!("# file b\n[secrets.second]\nsealed = \"{second}\"\n");
    r.ws.write("policy.d/b.toml", &b);
    envoi(&r.ws, &r.both, &["reseal"]).success();
    for (file, original, old) in [("policy.d/a.toml", &a, &first), ("policy.d/b.toml", &b, &second)] {
        let text = r.ws.read(file);
        let (masked, replaced) = mask_sealed(&text, &r.new_kid, &[]);
        assert_eq!(replaced, 1, "{file}: {text}");
        assert_eq!(masked, mask_exact(original, std::slice::from_ref(old)), "{file}");
    }
    envoi(&r.ws, &r.new, &["check"]).success();
}

// ---- templates ----

/// Starts a server on `policy` (written to the workspace) without master keys.
fn serve_policy(policy: &str) -> (Workspace, Server) {
    let ws = Workspace::new();
    ws.write("policy.toml", policy);
    let config = ws.config("policy.toml", &[]);
    let server = Server::serve(ws.path(), &config);
    (ws, server)
}

#[tokio::test]
async fn templates_splice_claims_secrets_and_other_templates() {
    let (ws, _, config) = keyed_workspace();
    let password = seal(&ws, &config, "db_password", b"pw-sealed-13");
    ws.write(
        "policy.toml",
        format!(
            "[secrets.db_password]\nsealed = {}\n\n\
             [secrets.host]\nvalue = \"db.internal\"\n\n\
             [secrets.database_url]\ntemplate = \"postgres://app:${{secret.db_password}}@${{secret.host}}:5432/${{projectId}}\"\n\n\
             [secrets.wrapped]\ntemplate = \"[${{secret.database_url}}] for ${{nfObjectType}}/${{nfObjectId}}\"\n\n\
             [secrets.literal]\ntemplate = \"$${{projectId}} costs $5 and $${{secret.host}}\"\n\n\
             [[grants]]\nproject = \"*\"\n\
             env = {{ DATABASE_URL = \"database_url\", WRAPPED = \"wrapped\", LITERAL = \"literal\", \
             WHO = {{ template = \"${{projectId}}/${{nfObjectType}}/${{nfObjectId}}\" }} }}\n\n\
             [[grants.files]]\npath = \"/etc/app/who\"\ntemplate = \"id=${{nfObjectId}}\\n\"\n",
            toml_string(&password)
        ),
    );
    let server = Server::serve(ws.path(), &config);
    let answer = served(&server, "billing", "service", "api").await;
    assert_eq!(
        answer,
        json!({"secrets": [
            {"type": "ENV", "key": "DATABASE_URL", "value": "postgres://app:pw-sealed-13@db.internal:5432/billing"},
            {"type": "ENV", "key": "LITERAL", "value": "${projectId} costs $5 and ${secret.host}"},
            {"type": "ENV", "key": "WHO", "value": "billing/service/api"},
            {"type": "ENV", "key": "WRAPPED", "value": "[postgres://app:pw-sealed-13@db.internal:5432/billing] for service/api"},
            {"type": "FILE", "path": "/etc/app/who", "data": "id=api\n"},
        ]})
    );
    // Another workload, the same policy: claims are per request.
    let other = served(&server, "web", "job", "nightly").await;
    assert_eq!(item(&other, "WHO")["value"], "web/job/nightly");
    assert_eq!(
        item(&other, "DATABASE_URL")["value"],
        "postgres://app:pw-sealed-13@db.internal:5432/web"
    );
    assert!(!server.stderr().contains("pw-sealed-13"), "{}", server.diagnostics());
}

#[tokio::test]
async fn claims_are_json_escaped_when_spliced() {
    let (_ws, server) = serve_policy(
        "[[grants]]\nproject = \"*\"\nenv = { WHO = { template = \"<${projectId}|${nfObjectType}|${nfObjectId}>\" } }\n\n\
         [[grants.files]]\npath = \"/etc/who\"\ntemplate = \"${projectId}\"\n",
    );
    let project = r#"we"ird\proj"#;
    let kind = "tab\u{e9}\u{1F600}";
    let id = r#"a\"b</script>"#;
    let (status, raw) = server.get(&token(project, kind, id)).await;
    assert_eq!(status, 200, "{raw}");
    let answer: Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("invalid JSON ({e}): {raw}"));
    assert_eq!(
        answer,
        json!({"secrets": [
            {"type": "ENV", "key": "WHO", "value": format!("<{project}|{kind}|{id}>")},
            {"type": "FILE", "path": "/etc/who", "data": project},
        ]})
    );
}

#[test]
fn template_errors_fail_the_check_naming_the_name() {
    let (ws, _, config) = keyed_workspace();
    let sealed = seal(&ws, &config, "kept_secret", b"template-check-plaintext-14");
    let cases = [
        ("unknown claim", "[secrets.t]\ntemplate = \"x ${projectName} y\"\n", "projectName"),
        (
            "undefined secret",
            "[secrets.t]\ntemplate = \"x ${secret.never_defined} y\"\n",
            "never_defined",
        ),
        (
            "cycle",
            "[secrets.cycle_first]\ntemplate = \"1${secret.cycle_second}\"\n\n[secrets.cycle_second]\ntemplate = \"2${secret.cycle_first}\"\n",
            "cycle_second",
        ),
        ("self reference", "[secrets.selfish]\ntemplate = \"${secret.selfish}\"\n", "selfish"),
        ("unclosed", "[secrets.unclosed_one]\ntemplate = \"x ${projectId\"\n", "unclosed_one"),
        (
            "inline undefined",
            "[[grants]]\nproject = \"q\"\nenv = { INLINE_T = { template = \"${secret.inline_missing}\" } }\n",
            "inline_missing",
        ),
    ];
    for (what, extra, name) in cases {
        let policy = format!(
            "[secrets.kept_secret]\nsealed = {}\n\n[secrets.spliced]\ntemplate = \"k=${{secret.kept_secret}}\"\n\n{extra}\n\
             [[grants]]\nproject = \"p\"\nenv = {{ KEPT = \"spliced\" }}\n",
            toml_string(&sealed)
        );
        ws.write("policy.toml", &policy);
        let ran = envoi(&ws, &config, &["check"]);
        assert!(ran.code != Some(0), "{what}: the check should fail\n{ran}");
        assert!(ran.stderr.contains(name), "{what}: stderr should name `{name}`\n{ran}");
        shows_none(&ran, &["template-check-plaintext-14"]);
    }
    // The cycle names both of its secrets.
    ws.write(
        "policy.toml",
        "[secrets.cycle_first]\ntemplate = \"1${secret.cycle_second}\"\n\n[secrets.cycle_second]\ntemplate = \"2${secret.cycle_first}\"\n",
    );
    let ran = envoi(&ws, &config, &["check"]).failure();
    ran.stderr_names("cycle_first").stderr_names("cycle_second");
}

#[tokio::test]
async fn a_binary_file_value_is_served_base64() {
    let ws = Workspace::new();
    ws.write("blob.bin", [0xffu8, 0x00, 0xfe]);
    ws.write("text.txt", "plain text\n");
    ws.write(
        "policy.toml",
        "[secrets.blob]\nfile = \"blob.bin\"\n\n\
         [[grants]]\nproject = \"p\"\n\n\
         [[grants.files]]\npath = \"/etc/blob\"\nsecret = \"blob\"\n\n\
         [[grants.files]]\npath = \"/etc/text\"\nfile = \"text.txt\"\n\n\
         [[grants.files]]\npath = \"/etc/forced\"\nvalue = \"hi\"\nencoding = \"base64\"\n\n\
         [[grants.files]]\npath = \"/etc/prefixed\"\ntemplate = \"x${secret.blob}\"\n",
    );
    let config = ws.config("policy.toml", &[]);
    let server = Server::serve(ws.path(), &config);
    let answer = served(&server, "p", "service", "api").await;
    assert_eq!(
        answer,
        json!({"secrets": [
            {"type": "FILE", "path": "/etc/blob", "data": "/wD+", "encoding": "base64"},
            {"type": "FILE", "path": "/etc/forced", "data": "aGk=", "encoding": "base64"},
            {"type": "FILE", "path": "/etc/prefixed", "data": STANDARD.encode([b'x', 0xff, 0x00, 0xfe]), "encoding": "base64"},
            {"type": "FILE", "path": "/etc/text", "data": "plain text\n"},
        ]})
    );
    assert_eq!(STANDARD.decode("/wD+").unwrap(), [0xff, 0x00, 0xfe]);
}

#[test]
fn a_binary_value_on_an_env_fails_the_load_naming_the_key() {
    let ws = Workspace::new();
    ws.write("blob.bin", [0xffu8, 0x00, 0xfe]);
    let config = ws.config("policy.toml", &[]);
    for env in [
        "BINARY_ENV = { file = \"blob.bin\" }",
        "BINARY_ENV = \"blob\"",
        "BINARY_ENV = { template = \"x${secret.blob}\" }",
    ] {
        ws.write(
            "policy.toml",
            format!("[secrets.blob]\nfile = \"blob.bin\"\n\n[[grants]]\nproject = \"p\"\nenv = {{ {env} }}\n"),
        );
        let ran = envoi(&ws, &config, &["check"]).failure();
        ran.stderr_names("BINARY_ENV");
    }
    // A FILE that asks for utf-8 cannot take binary bytes either.
    ws.write(
        "policy.toml",
        "[[grants]]\nproject = \"p\"\n\n[[grants.files]]\npath = \"/etc/utf8_only\"\nfile = \"blob.bin\"\nencoding = \"utf-8\"\n",
    );
    envoi(&ws, &config, &["check"]).failure().stderr_names("/etc/utf8_only");
}

#[tokio::test]
async fn a_binary_sealed_value_is_served_base64() {
    let (ws, _, config) = keyed_workspace();
    let sealed = seal_with(&ws, &config, "/etc/sealed.bin", &[0xff, 0x00, 0xfe, b'\n'], true);
    ws.write(
        "policy.toml",
        format!(
            "[[grants]]\nproject = \"p\"\n\n[[grants.files]]\npath = \"/etc/sealed.bin\"\nsealed = {}\n",
            toml_string(&sealed)
        ),
    );
    let server = Server::serve(ws.path(), &config);
    assert_eq!(
        served(&server, "p", "service", "api").await,
        json!({"secrets": [{"type": "FILE", "path": "/etc/sealed.bin", "data": "/wD+Cg==", "encoding": "base64"}]})
    );
}
