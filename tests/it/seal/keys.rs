//! `keygen` and `seal`: a new key with its id, sealed strings under it, a sealed value
//! that round-trips to `explain` and to the wire, and master keys from the environment.

use serde_json::json;

use crate::support::{toml_string, Ran, Server, Workspace};

use super::*;

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
