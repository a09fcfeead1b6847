//! Values that do not open fail the load, naming the value and never showing one.

use std::path::Path;

use crate::support::{toml_string, Ran, Workspace};

use super::*;

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
