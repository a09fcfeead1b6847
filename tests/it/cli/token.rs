//! `envoi token`: a token signed with the first configured key (SPEC §4), checked here
//! with an HMAC-SHA256 of our own.

use crate::support::{example_policy, jwt, toml_string, Ran, Workspace};

fn mint(ws: &Workspace, ttl: &[&str]) -> Ran {
    Ran::of(
        ws.envoi([
            "token",
            "--config",
            "envoi.toml",
            "--project",
            "billing",
            "--type",
            "service",
            "--id",
            "api",
        ])
        .args(ttl),
    )
    .success()
}

#[test]
fn token_prints_an_hs256_token_that_verifies_with_the_configured_key() {
    let ws = Workspace::new();
    ws.config_with_key("token-test-key-a1", &example_policy());
    let before = jwt::now();
    let ran = mint(&ws, &["--ttl", "15m"]);
    let token = ran.last_line();
    let (header, claims) = jwt::verify(token, "token-test-key-a1").unwrap_or_else(|e| panic!("{e}\n{ran}"));
    assert_eq!(header["alg"], "HS256", "{header}");
    assert_eq!(claims["projectId"], "billing", "{claims}");
    assert_eq!(claims["nfObjectType"], "service", "{claims}");
    assert_eq!(claims["nfObjectId"], "api", "{claims}");
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 15 * 60, "{claims}");
    assert!(
        (before - 5..=jwt::now() + 5).contains(&iat),
        "iat {iat} is now ({before})"
    );
    assert!(
        jwt::verify(token, "another-key").is_err(),
        "a wrong key must not verify"
    );
    ran.never_shows("token-test-key-a1");
}

#[test]
fn token_lasts_one_hour_by_default() {
    let ws = Workspace::new();
    ws.config_with_key("token-test-key-a1", &example_policy());
    let ran = mint(&ws, &[]);
    let (_, claims) = jwt::verify(ran.last_line(), "token-test-key-a1").unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
}

#[test]
fn token_is_signed_with_the_first_of_several_keys() {
    let ws = Workspace::new();
    ws.write(
        "envoi.toml",
        format!(
            "[auth]\nsecrets = [\"current-key\", \"previous-key\"]\n[store]\npath = {}\n",
            toml_string(&example_policy().display().to_string())
        ),
    );
    let ran = mint(&ws, &["--ttl", "90s"]);
    let token = ran.last_line();
    let (_, claims) = jwt::verify(token, "current-key").unwrap_or_else(|e| panic!("{e}\n{ran}"));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 90);
    assert!(jwt::verify(token, "previous-key").is_err());
}

#[test]
fn token_uses_a_key_read_from_auth_secret_files() {
    let ws = Workspace::new();
    ws.write("keys/platform.key", "key-from-file-7f\n");
    ws.write(
        "envoi.toml",
        format!(
            "[auth]\nsecret_files = [\"keys/platform.key\"]\n[store]\npath = {}\n",
            toml_string(&example_policy().display().to_string())
        ),
    );
    let ran = mint(&ws, &["--ttl", "2d"]);
    // The trailing newline of the file is not part of the key.
    let (_, claims) = jwt::verify(ran.last_line(), "key-from-file-7f").unwrap_or_else(|e| panic!("{e}\n{ran}"));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        2 * 86400
    );
}

#[test]
fn token_uses_a_key_from_envoi_auth_secrets() {
    let ws = Workspace::new();
    let ran = Ran::of(
        ws.envoi(["token", "--project", "p", "--type", "t", "--id", "i"])
            .env("ENVOI__AUTH__SECRETS", "env-key-3c")
            .env("ENVOI__STORE__PATH", example_policy()),
    )
    .success();
    jwt::verify(ran.last_line(), "env-key-3c").unwrap_or_else(|e| panic!("{e}\n{ran}"));
}

#[test]
fn token_warns_when_the_ttl_exceeds_the_maximum_lifetime() {
    let ws = Workspace::new();
    ws.config_with_key("token-test-key-a1", &example_policy());
    let ran = mint(&ws, &["--ttl", "8d"]);
    ran.stderr_names("auth.max_lifetime_seconds");
    jwt::verify(ran.last_line(), "token-test-key-a1").unwrap_or_else(|e| panic!("{e}\n{ran}"));
}

#[test]
fn token_refuses_a_ttl_that_is_not_a_duration() {
    let ws = Workspace::new();
    ws.config_with_key("token-test-key-a1", &example_policy());
    for ttl in ["0", "15x", "soon", "1w"] {
        let ran = Ran::of(ws.envoi([
            "token",
            "--config",
            "envoi.toml",
            "--project",
            "p",
            "--type",
            "t",
            "--id",
            "i",
            "--ttl",
            ttl,
        ]));
        assert!(
            matches!(ran.code, Some(code) if code != 0) && ran.stdout.trim().is_empty(),
            "--ttl {ttl} should be refused\n{ran}"
        );
        ran.stderr_names("--ttl");
    }
}

#[test]
fn token_refuses_to_mint_without_a_signing_key() {
    let ws = Workspace::new();
    let ran = Ran::of(ws.envoi(["token", "--project", "p", "--type", "t", "--id", "i"])).failure();
    ran.stderr_names("auth.secrets");
    assert!(ran.stdout.trim().is_empty(), "\n{ran}");
}
