//! The test harness: a real envoi server on a free port (as zero2prod's `spawn_app`),
//! tokens minted here by hand (HMAC over `header.claims`, never envoi's own minting) and
//! a checker of the answer's JSON shape written from SPEC §1 alone.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use envoi::auth::{SigningKey, TokenRules, Verifier};
use envoi::http::AppState;
use envoi::policy::{Policy, PolicyError};
use envoi::startup::{Application, ServerOptions};
use envoi::store::PolicyHolder;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::Method;
use secrecy::SecretString;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};
use sha2::{Sha256, Sha384, Sha512};

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

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The MAC algorithm a test signs with (whatever the header claims).
#[derive(Clone, Copy, Debug)]
pub enum MacAlg {
    Sha256,
    Sha384,
    Sha512,
}

pub fn mac(alg: MacAlg, key: &str, input: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &str, input: &[u8]) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        MacAlg::Sha256 => run::<Hmac<Sha256>>(key, input),
        MacAlg::Sha384 => run::<Hmac<Sha384>>(key, input),
        MacAlg::Sha512 => run::<Hmac<Sha512>>(key, input),
    }
}

/// A compact JWT from arbitrary header and claims text, signed with HMAC-SHA256 and
/// `key` whatever the header says.
pub fn jwt(header_json: &str, claims_json: &str, key: &str) -> String {
    jwt_mac(MacAlg::Sha256, header_json, claims_json, key)
}

/// As [`jwt`], with the MAC algorithm chosen.
pub fn jwt_mac(alg: MacAlg, header_json: &str, claims_json: &str, key: &str) -> String {
    let signing_input = format!("{}.{}", b64url(header_json.as_bytes()), b64url(claims_json.as_bytes()));
    let signature = mac(alg, key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&signature))
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

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub client: reqwest::Client,
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text, if present once or more (the first).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header value"))
    }
}

impl TestApp {
    /// A server trusting [`KEY`] and serving `policy`.
    pub async fn spawn(policy: Policy) -> Self {
        Self::spawn_with(Some(policy), &[KEY]).await
    }

    /// A server trusting [`KEY`] and serving a policy given as TOML text.
    pub async fn serve(policy_toml: &str) -> Self {
        Self::spawn(load(policy_toml)).await
    }

    /// A server with `keys` (newest first) and `policy`, or no policy loaded yet.
    pub async fn spawn_with(policy: Option<Policy>, keys: &[&str]) -> Self {
        let keys: Vec<SigningKey> = keys
            .iter()
            .map(|k| SigningKey::new(SecretString::from(k.to_string())))
            .collect();
        let verifier = Verifier::new(
            &keys,
            TokenRules {
                leeway_seconds: LEEWAY as u64,
                max_lifetime_seconds: MAX_LIFETIME as u64,
            },
        );
        let holder = match policy {
            Some(policy) => PolicyHolder::with_policy(policy),
            None => PolicyHolder::new(),
        };
        let state = AppState::new(verifier, Arc::new(holder));
        let app = Application::build(
            state,
            &ServerOptions {
                listen: "127.0.0.1:0".into(),
                workers: 1,
                shutdown_timeout: Duration::from_secs(1),
            },
        )
        .expect("the test server binds a free port");
        let address = format!("http://{}", app.address());
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client");
        Self { address, client }
    }

    /// `method path` with one `Authorization` header per entry of `authorization`.
    pub async fn request(&self, method: Method, path: &str, authorization: &[&str]) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.address));
        for value in authorization {
            request = request.header(AUTHORIZATION, *value);
        }
        let response = request.send().await.expect("the test server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("a whole body").to_vec();
        Reply { status, headers, body }
    }

    /// `GET /` with these `Authorization` header values (none, one or several).
    pub async fn get_root(&self, authorization: &[&str]) -> Reply {
        self.request(Method::GET, "/", authorization).await
    }

    /// `GET /` with `Authorization: Bearer <token>`.
    pub async fn get_secrets(&self, token: &str) -> Reply {
        self.get_root(&[&format!("Bearer {token}")]).await
    }

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

// ---- The answer's shape (SPEC §1), checked independently of envoi ----

/// A JSON value that keeps the order of object members, so that shapes can be checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Number(n as f64))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Number(n as f64))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
                Ok(Json::Number(n))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::String(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Json::Object(members))
            }
        }
        d.deserialize_any(V)
    }
}

impl Json {
    fn keys(&self) -> Vec<&str> {
        match self {
            Json::Object(members) => members.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Checks `body` against SPEC §1: `{"secrets":[...]}`; ENV items exactly
/// `{"type","key","value"}`; FILE items `{"type","path","data"}` then only set members
/// among `encoding`, `owner`, `group`, `permissions`, each of the allowed forms, never
/// null; ENV items by key, then FILE items by path, in byte order.
pub fn check_answer(body: &str) -> Result<(), String> {
    let top: Json = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if top.keys() != ["secrets"] {
        return Err(format!("top-level members {:?}, not [\"secrets\"]", top.keys()));
    }
    let Some(Json::Array(items)) = top.get("secrets") else {
        return Err("`secrets` is not an array".into());
    };
    let mut last: Option<(u8, String)> = None;
    for (n, item) in items.iter().enumerate() {
        let at = |why: String| format!("item {n}: {why}");
        let keys = item.keys();
        let text = |key: &str| -> Result<String, String> {
            item.get(key)
                .and_then(Json::str)
                .map(str::to_owned)
                .ok_or_else(|| at(format!("`{key}` is not a string")))
        };
        let sort_key = match item.get("type").and_then(Json::str) {
            Some("ENV") => {
                if keys != ["type", "key", "value"] {
                    return Err(at(format!("ENV members {keys:?}, not [type, key, value]")));
                }
                text("value")?;
                (0, text("key")?)
            }
            Some("FILE") => {
                if keys.len() < 3 || keys[..3] != ["type", "path", "data"] {
                    return Err(at(format!(
                        "FILE members {keys:?} do not start with [type, path, data]"
                    )));
                }
                let data = text("data")?;
                let mut seen = Vec::new();
                for key in &keys[3..] {
                    if seen.contains(key) {
                        return Err(at(format!("`{key}` twice")));
                    }
                    seen.push(key);
                    let value = item.get(key).expect("listed");
                    match *key {
                        "encoding" => match value.str() {
                            Some("utf-8") => {}
                            Some("base64") => {
                                STANDARD
                                    .decode(&data)
                                    .map_err(|e| at(format!("data is not standard base64: {e}")))?;
                            }
                            _ => return Err(at(format!("encoding {value:?}"))),
                        },
                        "owner" | "group" => check_ownership(value).map_err(|e| at(format!("{key}: {e}")))?,
                        "permissions" => check_permissions(value).map_err(|e| at(format!("permissions: {e}")))?,
                        other => return Err(at(format!("unexpected FILE member `{other}`"))),
                    }
                }
                (1, text("path")?)
            }
            other => return Err(at(format!("type {other:?}"))),
        };
        if let Some(previous) = &last {
            // Byte order: String's Ord compares bytes.
            if *previous >= sort_key {
                return Err(at(format!("{sort_key:?} does not sort after {previous:?}")));
            }
        }
        last = Some(sort_key);
    }
    Ok(())
}

fn check_ownership(value: &Json) -> Result<(), String> {
    let keys = value.keys();
    match value.get("policy").and_then(Json::str) {
        Some("AlwaysSetExplicit" | "KeepOrSetExplicit") => {
            if keys != ["policy", "value"] {
                return Err(format!("members {keys:?}, not [policy, value]"));
            }
            match value.get("value").and_then(Json::str) {
                Some(v) if !v.is_empty() => Ok(()),
                _ => Err("`value` is not a non-empty string".into()),
            }
        }
        Some("AlwaysSetInherited" | "KeepOrSetInherited") if keys == ["policy"] => Ok(()),
        _ => Err(format!("not an ownership of SPEC §1: {value:?}")),
    }
}

fn check_permissions(value: &Json) -> Result<(), String> {
    if value.keys() != ["policy", "mode"] {
        return Err(format!("members {:?}, not [policy, mode]", value.keys()));
    }
    if !matches!(value.get("policy").and_then(Json::str), Some("AlwaysSet" | "KeepOrSet")) {
        return Err(format!("policy {:?}", value.get("policy")));
    }
    match value.get("mode").and_then(Json::str) {
        Some(mode) if mode.len() == 4 && mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) => Ok(()),
        other => Err(format!("mode {other:?} is not four octal digits")),
    }
}

/// `{"type":"ENV","key":K,"value":V}` as the wire has it.
pub fn env_item(key: &str, value: &str) -> String {
    format!(
        r#"{{"type":"ENV","key":{},"value":{}}}"#,
        Value::from(key),
        Value::from(value)
    )
}

/// `{"secrets":[items...]}`.
pub fn secrets_body(items: &[String]) -> String {
    format!(r#"{{"secrets":[{}]}}"#, items.join(","))
}

/// The items of `{"secrets":[...]}` as their JSON texts, re-serialised in order from an
/// order-keeping parse (so a mismatch names the item).
pub fn split_items(body: &str) -> Vec<String> {
    let inner = body
        .strip_prefix(r#"{"secrets":["#)
        .and_then(|b| b.strip_suffix("]}"))
        .unwrap_or_else(|| panic!("not {{\"secrets\":[...]}}: {body}"));
    // Items are objects; split at `},{` outside strings.
    let (mut items, mut depth, mut in_string, mut escaped, mut start) = (Vec::new(), 0, false, false, 0);
    for (i, c) in inner.char_indices() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_string = false,
            (false, _, '"') => in_string = true,
            (false, _, '{') => depth += 1,
            (false, _, '}') => {
                depth -= 1;
                if depth == 0 {
                    items.push(inner[start..=i].to_owned());
                    start = i + 2;
                }
            }
            _ => {}
        }
    }
    items
}

#[test]
fn the_shape_checker_refuses_what_the_spec_does_not_allow() {
    // The checker is part of the tests: make sure it can fail.
    let bad = [
        r#"{"secrets":[],"x":1}"#,
        r#"{"secrets":[{"type":"ENV","value":"v","key":"K"}]}"#,
        r#"{"secrets":[{"type":"FILE","path":"/a","data":"x","owner":null}]}"#,
        r#"{"secrets":[{"type":"FILE","path":"/a","data":"x","permissions":{"policy":"AlwaysSet","mode":"400"}}]}"#,
        r#"{"secrets":[{"type":"FILE","path":"/a","data":"x","owner":{"policy":"AlwaysSetInherited","value":"1"}}]}"#,
        r#"{"secrets":[{"type":"FILE","path":"/a","data":"%%%","encoding":"base64"}]}"#,
        r#"{"secrets":[{"type":"FILE","path":"/a","data":"x"},{"type":"ENV","key":"K","value":"v"}]}"#,
        r#"{"secrets":[{"type":"ENV","key":"b","value":"v"},{"type":"ENV","key":"a","value":"v"}]}"#,
        r#"{"secrets":[{"type":"ENV","key":"a","value":"v"},{"type":"ENV","key":"a","value":"v"}]}"#,
    ];
    for body in bad {
        assert!(check_answer(body).is_err(), "the checker accepts {body}");
    }
    let good = r#"{"secrets":[{"type":"ENV","key":"A","value":"1"},{"type":"ENV","key":"a","value":"2"},{"type":"FILE","path":"/a","data":"AA==","encoding":"base64","owner":{"policy":"KeepOrSetExplicit","value":"app"},"group":{"policy":"AlwaysSetInherited"},"permissions":{"policy":"KeepOrSet","mode":"0640"}}]}"#;
    check_answer(good).unwrap();
    check_answer(r#"{"secrets":[]}"#).unwrap();
}
