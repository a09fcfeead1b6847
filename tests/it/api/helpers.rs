//! What the HTTP tests share: their keys, tokens minted with the independent minter
//! ([`crate::support::jwt`]), a server in this process (as zero2prod's `spawn_app`)
//! serving a policy given here, and what a 401 must look like. The answer's shape is
//! checked by [`super::shape`].

use envoi::policy::{Policy, PolicyError};
use envoi::startup::Edges;
use serde_json::{json, Value};

pub use super::shape::*;
use crate::support::app::AppSpec;
pub use crate::support::app::{Reply, TestApp};
use crate::support::jwt::sign_bytes;
pub use crate::support::jwt::{b64, now, MacAlg};

// ---- Keys: obviously fake, for these tests only. ----

/// The key every default test server trusts.
pub const KEY: &str = "fake-test-key-current-do-not-use";
/// The previous key of a rotation.
pub const OLD_KEY: &str = "fake-test-key-previous-do-not-use";
/// A key no test server trusts.
pub const STRANGER_KEY: &str = "fake-test-key-of-a-stranger";

/// The header of a well-formed token.
pub const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// SPEC defaults the test servers run with.
pub const LEEWAY: i64 = 30;
pub const MAX_LIFETIME: i64 = 7 * 24 * 3600;

// ---- Tokens ----

/// A compact JWT from arbitrary header and claims text, signed with HMAC-SHA256 and
/// `key` whatever the header says.
pub fn jwt(header_json: &str, claims_json: &str, key: &str) -> String {
    jwt_mac(MacAlg::Sha256, header_json, claims_json, key)
}

/// As [`jwt`], with the MAC algorithm chosen.
pub fn jwt_mac(alg: MacAlg, header_json: &str, claims_json: &str, key: &str) -> String {
    sign_bytes(alg, key.as_bytes(), header_json.as_bytes(), claims_json.as_bytes())
}

/// A workload's three names.
#[derive(Clone, Copy, Debug)]
pub struct Wl<'a> {
    pub project: &'a str,
    pub kind: &'a str,
    pub id: &'a str,
}

pub const fn wl<'a>(project: &'a str, kind: &'a str, id: &'a str) -> Wl<'a> {
    Wl { project, kind, id }
}

/// The claims a platform sends: issued now, valid for an hour.
pub fn claims(w: Wl<'_>) -> Value {
    let now = now();
    json!({
        "projectId": w.project,
        "nfObjectType": w.kind,
        "nfObjectId": w.id,
        "iat": now,
        "exp": now + 3600,
    })
}

/// A valid token for `w`, signed with [`KEY`].
pub fn token_for(w: Wl<'_>) -> String {
    jwt(HS256_HEADER, &claims(w).to_string(), KEY)
}

/// A token for `w` signed with `key`.
pub fn token_for_with_key(w: Wl<'_>, key: &str) -> String {
    jwt(HS256_HEADER, &claims(w).to_string(), key)
}

/// A token for `w` whose claims `edit` changed (times, extra or missing claims).
pub fn token_with(w: Wl<'_>, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut claims = claims(w);
    edit(claims.as_object_mut().expect("claims are an object"));
    jwt(HS256_HEADER, &claims.to_string(), KEY)
}

/// A token for `w` whose `exp` lies `offset` seconds from now (negative: in the past).
pub fn token_exp_offset(w: Wl<'_>, offset: i64) -> String {
    token_with(w, |c| {
        c.insert("exp".into(), json!(now() + offset));
        c.insert("iat".into(), json!(now() - 60));
    })
}

// ---- The server ----

/// A server trusting [`KEY`] and serving `policy`.
pub async fn spawn_app(policy: Policy) -> TestApp {
    spawn_app_with(Some(policy), &[KEY]).await
}

/// A server trusting [`KEY`] and serving a policy given as TOML text.
pub async fn serve_app(policy_toml: &str) -> TestApp {
    spawn_app(load(policy_toml)).await
}

/// A server with `keys` (newest first) and `policy`, or no policy loaded yet.
pub async fn spawn_app_with(policy: Option<Policy>, keys: &[&str]) -> TestApp {
    TestApp::spawn(AppSpec {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        leeway_seconds: LEEWAY as u64,
        max_lifetime_seconds: MAX_LIFETIME as u64,
        policy,
        edges: Edges::default(),
        failure_limit: None,
    })
    .await
}

/// What the HTTP tests ask of an app beyond the requests of [`TestApp`] itself.
impl TestApp {
    /// `GET /` for `w` with a valid token; asserts a 200 of the right shape and
    /// returns the body.
    pub async fn answer_for(&self, w: Wl<'_>) -> String {
        let reply = self.get_secrets(&token_for(w)).await;
        let body = reply.text();
        assert_eq!(reply.status, 200, "{w:?}: status (body {body})");
        if let Err(why) = check_answer(&body) {
            panic!("{w:?}: the answer breaks SPEC §1: {why}\n  body: {body}");
        }
        body
    }

    /// The `(key, value)` of every ENV item `w` receives, in answer order.
    pub async fn env_for(&self, w: Wl<'_>) -> Vec<(String, String)> {
        let body = self.answer_for(w).await;
        let answer: Value = serde_json::from_str(&body).expect("checked JSON");
        answer["secrets"]
            .as_array()
            .expect("checked array")
            .iter()
            .filter(|item| item["type"] == "ENV")
            .map(|item| {
                (
                    item["key"].as_str().expect("checked").to_owned(),
                    item["value"].as_str().expect("checked").to_owned(),
                )
            })
            .collect()
    }
}

// ---- Policies ----

/// Loads a policy from TOML text, or fails the test with every problem.
pub fn load(text: &str) -> Policy {
    envoi::policy::load_str("test-policy.toml", text, None).unwrap_or_else(|e| panic!("{e}\n--- policy ---\n{text}"))
}

/// Loads a policy that must not load, and returns why.
pub fn load_error(text: &str) -> PolicyError {
    match envoi::policy::load_str("test-policy.toml", text, None) {
        Ok(_) => panic!("this policy loaded but must not:\n{text}"),
        Err(e) => e,
    }
}

/// Sets, once for the whole test binary, the environment variables policies read.
/// (Setting them once, before any policy loads, keeps tests from racing on the
/// environment.)
pub fn test_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (name, value) in TEST_ENV {
            std::env::set_var(name, value);
        }
    });
}

/// Uniquely named variables, so that nothing else in the environment collides.
pub const TEST_ENV: [(&str, &str); 2] = [
    ("ENVOI_API_TEST_9F3A_SENTRY_DSN", "fake-dsn-from-env-9f3a"),
    ("ENVOI_API_TEST_9F3A_INLINE", "fake-inline-from-env-9f3a"),
];

/// A name that no test sets.
pub const UNSET_ENV: &str = "ENVOI_API_TEST_9F3A_NEVER_SET";

// ---- What a 401 must look like ----

/// SPEC §1: 401, `WWW-Authenticate: Bearer`, a short generic body that echoes nothing
/// of `leaks` (the token, its parts, its claims, the policy's values).
pub fn check_unauthorized<S: AsRef<str>>(case: &str, reply: &Reply, leaks: &[S]) -> Result<(), String> {
    let body = reply.text();
    if reply.status != 401 {
        return Err(format!("{case}: status {} instead of 401 (body {body})", reply.status));
    }
    let challenge = reply.header("www-authenticate");
    if !challenge.is_some_and(|c| c == "Bearer" || c.starts_with("Bearer ")) {
        return Err(format!("{case}: WWW-Authenticate is {challenge:?}, not `Bearer`"));
    }
    if body.len() >= 200 {
        return Err(format!("{case}: the body is not short: {body}"));
    }
    check_no_leak(case, &body, leaks)
}

pub fn assert_unauthorized<S: AsRef<str>>(case: &str, reply: &Reply, leaks: &[S]) {
    check_unauthorized(case, reply, leaks).unwrap_or_else(|e| panic!("{e}"));
}

/// Fails if `body` contains any of `leaks` (ignoring texts too short to mean anything).
pub fn check_no_leak<S: AsRef<str>>(case: &str, body: &str, leaks: &[S]) -> Result<(), String> {
    match leaks
        .iter()
        .map(AsRef::as_ref)
        .find(|leak| leak.len() >= 4 && body.contains(leak))
    {
        Some(leak) => Err(format!("{case}: the body repeats {leak:?}: {body}")),
        None => Ok(()),
    }
}

pub fn assert_no_leak<S: AsRef<str>>(case: &str, body: &str, leaks: &[S]) {
    check_no_leak(case, body, leaks).unwrap_or_else(|e| panic!("{e}"));
}

/// Fails the test with every failure of a table, or passes if there is none.
pub fn assert_all_pass(table: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{table}: {} case(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// The texts a token carries: itself, each segment, each string claim.
pub fn token_parts(token: &str) -> Vec<String> {
    let mut parts = vec![token.to_owned()];
    parts.extend(token.split('.').filter(|s| !s.is_empty()).map(str::to_owned));
    parts
}
