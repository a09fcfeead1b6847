//! SPEC §1, the protocol: `GET /` with a bearer HS256 token, and everything else.

use reqwest::Method;
use serde_json::{json, Value};

use super::helpers::*;

/// The workload most tests speak for; names long enough to be told apart in a body.
const WORKLOAD: Wl<'static> = wl("billing", "service", "checkout-api");

/// Every value the test policy holds: none may appear in an error body.
const SECRET_VALUES: [&str; 3] = ["fake-db-password-7c1e", "fake-region-eu-7c1e", "fake-file-secret-7c1e"];

const POLICY: &str = r#"
[secrets.db_password]
value = "fake-db-password-7c1e"

[[grants]]
name = "checkout"
project = "billing"
type = "service"
id = "checkout-api"
env = { DB_PASSWORD = "db_password", REGION = { value = "fake-region-eu-7c1e" } }

[[grants.files]]
path = "/etc/billing/token"
value = "fake-file-secret-7c1e"
"#;

/// What [`WORKLOAD`] receives from [`POLICY`], byte for byte.
const EXPECTED: &str = concat!(
    r#"{"secrets":["#,
    r#"{"type":"ENV","key":"DB_PASSWORD","value":"fake-db-password-7c1e"},"#,
    r#"{"type":"ENV","key":"REGION","value":"fake-region-eu-7c1e"},"#,
    r#"{"type":"FILE","path":"/etc/billing/token","data":"fake-file-secret-7c1e"}"#,
    r#"]}"#
);

async fn app() -> TestApp {
    serve_app(POLICY).await
}

/// What no error body may contain: the token and its parts, the claims, the values.
fn leaks(authorization: &[String]) -> Vec<String> {
    let mut leaks: Vec<String> = SECRET_VALUES.iter().map(|s| s.to_string()).collect();
    leaks.extend(["billing", "service", "checkout-api", "other-project"].map(String::from));
    for value in authorization {
        leaks.push(value.clone());
        // The scheme is no secret; what follows it is.
        for word in value
            .split(' ')
            .filter(|w| !["bearer", "basic"].contains(&w.to_lowercase().as_str()))
        {
            leaks.extend(token_parts(word));
        }
    }
    leaks
}

fn bearer(token: &str) -> Vec<String> {
    vec![format!("Bearer {token}")]
}

/// Media type of a Content-Type value, without parameters.
fn media_type(value: Option<&str>) -> Option<&str> {
    value.map(|v| v.split(';').next().unwrap_or_default().trim())
}

/// SPEC §1: 200, JSON, not to be cached, exactly `expected`.
fn check_served(case: &str, reply: &Reply, expected: &str) -> Result<(), String> {
    let body = reply.text();
    if reply.status != 200 {
        return Err(format!("{case}: status {} instead of 200 (body {body})", reply.status));
    }
    let content_type = reply.header("content-type");
    if media_type(content_type) != Some("application/json") {
        return Err(format!("{case}: Content-Type {content_type:?}"));
    }
    let cache = reply.header("cache-control");
    if cache != Some("no-store") {
        return Err(format!("{case}: Cache-Control {cache:?}"));
    }
    if body != expected {
        return Err(format!("{case}: body\n    {body}\n  instead of\n    {expected}"));
    }
    check_answer(&body).map_err(|why| format!("{case}: {why}"))
}

fn assert_served(case: &str, reply: &Reply, expected: &str) {
    check_served(case, reply, expected).unwrap_or_else(|e| panic!("{e}"));
}

/// A token whose `claims` is exactly this JSON text, well signed with [`KEY`].
fn signed_claims(claims: &str) -> String {
    jwt(HS256_HEADER, claims, KEY)
}

/// The claims of [`WORKLOAD`], edited.
fn edited(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    token_with(WORKLOAD, edit)
}

/// A well-signed token for [`WORKLOAD`] of exactly `length` bytes, padded by an extra
/// claim (and, to reach every length, by blanks inside the header's JSON).
fn token_of_length(length: usize) -> String {
    for blanks in 0..4 {
        let header = format!(r#"{{"alg":"HS256","typ":"JWT"{}}}"#, " ".repeat(blanks));
        let start = (length * 3 / 4).saturating_sub(400);
        for pad in start..length {
            let mut claims = claims(WORKLOAD);
            claims["pad"] = json!("p".repeat(pad));
            let token = jwt(&header, &claims.to_string(), KEY);
            if token.len() == length {
                return token;
            }
            if token.len() > length {
                break;
            }
        }
    }
    panic!("no token of {length} bytes");
}

#[tokio::test]
async fn a_valid_token_gets_the_workloads_secrets_as_json_not_to_be_cached() {
    let app = app().await;
    let reply = app.get_secrets(&token_for(WORKLOAD)).await;
    assert_served("valid token", &reply, EXPECTED);
}

#[tokio::test]
async fn tokens_that_are_valid_are_accepted() {
    let app = app().await;
    let valid = token_for(WORKLOAD);
    let now = now();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("scheme `Bearer`", vec![format!("Bearer {valid}")]),
        ("scheme `bearer`", vec![format!("bearer {valid}")]),
        ("scheme `BEARER`", vec![format!("BEARER {valid}")]),
        ("scheme `bEaReR`", vec![format!("bEaReR {valid}")]),
        ("two spaces after the scheme", vec![format!("Bearer  {valid}")]),
        (
            "exp 10 s ago, within the leeway",
            bearer(&token_exp_offset(WORKLOAD, -10)),
        ),
        (
            "nbf 10 s ahead, within the leeway",
            bearer(&edited(|c| {
                c.insert("nbf".into(), json!(now + 10));
            })),
        ),
        (
            "nbf in the past",
            bearer(&edited(|c| {
                c.insert("nbf".into(), json!(now - 60));
            })),
        ),
        (
            "iat 10 s ahead, within the leeway",
            bearer(&edited(|c| {
                c.insert("iat".into(), json!(now + 10));
            })),
        ),
        (
            "no iat (it is honoured only when present)",
            bearer(&edited(|c| {
                c.remove("iat");
            })),
        ),
        (
            "exp exactly the maximum lifetime ahead",
            bearer(&edited(|c| {
                c.insert("exp".into(), json!(now + MAX_LIFETIME));
            })),
        ),
        (
            "exp 24 h ahead, as the platform's tokens",
            bearer(&edited(|c| {
                c.insert("exp".into(), json!(now + 24 * 3600));
            })),
        ),
        (
            "claims the protocol does not name are ignored",
            bearer(&edited(|c| {
                c.insert("iss".into(), json!("fake-platform"));
                c.insert("teamId".into(), json!("fake-team"));
            })),
        ),
        (
            "header without typ",
            bearer(&jwt(r#"{"alg":"HS256"}"#, &claims(WORKLOAD).to_string(), KEY)),
        ),
        ("a token of exactly 8 KiB", bearer(&token_of_length(8 * 1024))),
    ];
    let mut failures = Vec::new();
    for (case, authorization) in cases {
        let authorization: Vec<&str> = authorization.iter().map(String::as_str).collect();
        let reply = app.get_root(&authorization).await;
        failures.extend(check_served(case, &reply, EXPECTED).err());
    }
    assert_all_pass("valid tokens", &failures);
}

#[tokio::test]
async fn tokens_that_are_missing_malformed_expired_or_badly_signed_get_401() {
    let app = app().await;
    let now = now();
    let valid = token_for(WORKLOAD);
    let [h, c, s]: [&str; 3] = valid.split('.').collect::<Vec<_>>().try_into().expect("three segments");
    let claims_text = claims(WORKLOAD).to_string();
    let other = token_for(wl("other-project", "service", "checkout-api"));
    let other_signature = other.rsplit('.').next().expect("a signature");
    let other_claims = other.split('.').nth(1).expect("claims");
    let with_header = |header: &str| jwt(header, &claims_text, KEY);

    let mut cases: Vec<(String, Vec<String>)> = vec![
        // The Authorization header itself.
        ("no Authorization header".into(), vec![]),
        (
            "Basic credentials".into(),
            vec!["Basic ZmFrZS11c2VyOmZha2UtcGFzcw==".into()],
        ),
        ("Basic scheme with a valid token".into(), vec![format!("Basic {valid}")]),
        ("`Bearer` with nothing after it".into(), vec!["Bearer".into()]),
        ("`Bearer ` and blanks".into(), vec!["Bearer    ".into()]),
        ("a token without a scheme".into(), vec![valid.clone()]),
        ("scheme glued to the token".into(), vec![format!("Bearer{valid}")]),
        (
            "two Authorization headers, both valid".into(),
            vec![format!("Bearer {valid}"), format!("Bearer {other}")],
        ),
        (
            "two Authorization headers, the second valid".into(),
            vec!["Bearer not-a-token".into(), format!("Bearer {valid}")],
        ),
        // Shape.
        ("one segment".into(), bearer(h)),
        ("two segments".into(), bearer(&format!("{h}.{c}"))),
        ("four segments".into(), bearer(&format!("{valid}.{s}"))),
        ("a trailing dot (four segments)".into(), bearer(&format!("{valid}."))),
        ("empty segments".into(), bearer("..")),
        ("header not base64url".into(), bearer(&format!("!!!{h}.{c}.{s}"))),
        ("claims not base64url".into(), bearer(&format!("{h}.{c}*.{s}"))),
        ("signature not base64url".into(), bearer(&format!("{h}.{c}.@@@{s}"))),
        ("header not JSON".into(), bearer(&with_header("not json"))),
        ("claims not JSON".into(), bearer(&signed_claims("not json"))),
        ("claims a JSON array".into(), bearer(&signed_claims("[]"))),
        // Signature.
        (
            "signed with a key envoi does not hold".into(),
            bearer(&token_for_with_key(WORKLOAD, STRANGER_KEY)),
        ),
        ("empty signature".into(), bearer(&format!("{h}.{c}."))),
        (
            "signature of a different token".into(),
            bearer(&format!("{h}.{c}.{other_signature}")),
        ),
        (
            "claims swapped under a valid signature".into(),
            bearer(&format!("{h}.{other_claims}.{s}")),
        ),
        (
            "signature cut short".into(),
            bearer(&format!("{h}.{c}.{}", &s[..s.len() - 2])),
        ),
        // Algorithms: only HS256.
        (
            "alg none without signature".into(),
            bearer(&format!("{}.{c}.", b64(br#"{"alg":"none","typ":"JWT"}"#))),
        ),
        (
            "alg none, two segments".into(),
            bearer(&format!("{}.{c}", b64(br#"{"alg":"none"}"#))),
        ),
        (
            "alg none with an HMAC signature".into(),
            bearer(&with_header(r#"{"alg":"none","typ":"JWT"}"#)),
        ),
        ("alg NONE".into(), bearer(&with_header(r#"{"alg":"NONE"}"#))),
        (
            "alg hs256 in lower case".into(),
            bearer(&with_header(r#"{"alg":"hs256","typ":"JWT"}"#)),
        ),
        ("no alg".into(), bearer(&with_header(r#"{"typ":"JWT"}"#))),
        (
            "alg twice, HS256 then none".into(),
            bearer(&with_header(r#"{"alg":"HS256","alg":"none","typ":"JWT"}"#)),
        ),
        (
            "HS384 signed with HMAC-SHA384".into(),
            bearer(&jwt_mac(
                MacAlg::Sha384,
                r#"{"alg":"HS384","typ":"JWT"}"#,
                &claims_text,
                KEY,
            )),
        ),
        (
            "HS384 header, HMAC-SHA256 signature".into(),
            bearer(&with_header(r#"{"alg":"HS384","typ":"JWT"}"#)),
        ),
        (
            "HS512 signed with HMAC-SHA512".into(),
            bearer(&jwt_mac(
                MacAlg::Sha512,
                r#"{"alg":"HS512","typ":"JWT"}"#,
                &claims_text,
                KEY,
            )),
        ),
        (
            "HS512 header, HMAC-SHA256 signature".into(),
            bearer(&with_header(r#"{"alg":"HS512","typ":"JWT"}"#)),
        ),
    ];
    for alg in ["RS256", "RS512", "ES256", "ES384", "PS256", "EdDSA"] {
        cases.push((
            format!("{alg} header, HMAC signature with the shared key"),
            bearer(&with_header(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#))),
        ));
    }
    // Header parameters that source keys elsewhere or demand understanding.
    for (name, member) in [
        ("crit", r#""crit":["exp"]"#),
        ("jku", r#""jku":"https://attacker.example/jwks.json""#),
        ("x5u", r#""x5u":"https://attacker.example/cert.pem""#),
        ("jwk", r#""jwk":{"kty":"oct","k":"ZmFrZQ"}"#),
        ("x5c", r#""x5c":["ZmFrZQ=="]"#),
    ] {
        cases.push((
            format!("header with `{name}`"),
            bearer(&with_header(&format!(r#"{{"alg":"HS256","typ":"JWT",{member}}}"#))),
        ));
    }
    // Times (leeway 30 s, maximum lifetime 7 days).
    let timed = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| bearer(&edited(edit));
    cases.extend([
        (
            "expired an hour ago".into(),
            timed(&|c| {
                c.insert("exp".into(), json!(now - 3600));
                c.insert("iat".into(), json!(now - 7200));
            }),
        ),
        (
            "now exactly at exp + leeway".into(),
            timed(&|c| {
                c.insert("exp".into(), json!(now - LEEWAY));
                c.insert("iat".into(), json!(now - 3600));
            }),
        ),
        (
            "nbf an hour ahead".into(),
            timed(&|c| {
                c.insert("nbf".into(), json!(now + 3600));
            }),
        ),
        (
            "nbf beyond the leeway".into(),
            timed(&|c| {
                c.insert("nbf".into(), json!(now + LEEWAY + 30));
            }),
        ),
        (
            "iat an hour ahead".into(),
            timed(&|c| {
                c.insert("iat".into(), json!(now + 3600));
            }),
        ),
        (
            "iat beyond the leeway".into(),
            timed(&|c| {
                c.insert("iat".into(), json!(now + LEEWAY + 30));
            }),
        ),
        (
            "exp missing".into(),
            timed(&|c| {
                c.remove("exp");
            }),
        ),
        (
            "exp null".into(),
            timed(&|c| {
                c.insert("exp".into(), Value::Null);
            }),
        ),
        (
            "exp a string".into(),
            timed(&|c| {
                c.insert("exp".into(), json!((now + 3600).to_string()));
            }),
        ),
        (
            "exp 8 days ahead, beyond the maximum lifetime".into(),
            timed(&|c| {
                c.insert("exp".into(), json!(now + 8 * 24 * 3600));
            }),
        ),
        (
            "exp just beyond the maximum lifetime and the leeway".into(),
            timed(&|c| {
                c.insert("exp".into(), json!(now + MAX_LIFETIME + LEEWAY + 60));
            }),
        ),
        (
            "exp in the year 33658".into(),
            timed(&|c| {
                c.insert("exp".into(), json!(999_999_999_999i64));
            }),
        ),
        (
            "exp absurdly large".into(),
            timed(&|c| {
                c.insert("exp".into(), json!(1e300));
            }),
        ),
    ]);
    // Claims naming the workload.
    for claim in ["projectId", "nfObjectType", "nfObjectId"] {
        cases.push((
            format!("{claim} missing"),
            timed(&|c| {
                c.remove(claim);
            }),
        ));
        for (what, bad) in [
            ("a number", json!(42)),
            ("null", Value::Null),
            ("an array", json!(["billing"])),
            ("an object", json!({"name": "billing"})),
            ("an empty string", json!("")),
            ("true", json!(true)),
        ] {
            cases.push((
                format!("{claim} {what}"),
                timed(&|c| {
                    c.insert(claim.into(), bad.clone());
                }),
            ));
        }
    }
    let exp = now + 3600;
    cases.extend([
        (
            "projectId twice".into(),
            bearer(&signed_claims(&format!(
                r#"{{"projectId":"billing","projectId":"other-project","nfObjectType":"service","nfObjectId":"checkout-api","iat":{now},"exp":{exp}}}"#
            ))),
        ),
        (
            "nfObjectId twice".into(),
            bearer(&signed_claims(&format!(
                r#"{{"projectId":"billing","nfObjectType":"service","nfObjectId":"checkout-api","nfObjectId":"other-project","iat":{now},"exp":{exp}}}"#
            ))),
        ),
        (
            "exp twice, the first expired".into(),
            bearer(&signed_claims(&format!(
                r#"{{"projectId":"billing","nfObjectType":"service","nfObjectId":"checkout-api","iat":{now},"exp":{},"exp":{exp}}}"#,
                now - 3600
            ))),
        ),
    ]);
    // Size: refused above 8 KiB, even well signed.
    cases.push((
        "a well-signed token of 8 KiB + 1 byte".into(),
        bearer(&token_of_length(8 * 1024 + 1)),
    ));
    cases.push((
        "a well-signed token of 20 KiB".into(),
        bearer(&token_of_length(20 * 1024)),
    ));

    assert!(cases.len() > 80, "the table lost cases: {}", cases.len());
    let mut failures = Vec::new();
    for (case, authorization) in &cases {
        let values: Vec<&str> = authorization.iter().map(String::as_str).collect();
        let reply = app.get_root(&values).await;
        failures.extend(check_unauthorized(case, &reply, &leaks(authorization)).err());
    }
    assert_all_pass("refused tokens", &failures);
}

/// RFC 7515 §4 and RFC 7519 §7.2: the JOSE header and the claims set are JSON
/// *objects*. A token whose header or claims are a JSON array is malformed, and SPEC §1
/// answers a malformed token with 401.
#[tokio::test]
async fn a_header_or_claims_that_are_json_arrays_get_401() {
    let app = app().await;
    let now = now();
    let claims_text = claims(WORKLOAD).to_string();
    let cases: Vec<(&str, String)> = vec![
        (
            "header the JSON array [\"HS256\"]",
            jwt(r#"["HS256"]"#, &claims_text, KEY),
        ),
        (
            "header the JSON array [\"HS256\",\"JWT\"]",
            jwt(r#"["HS256","JWT"]"#, &claims_text, KEY),
        ),
        (
            "claims a JSON array of the right values",
            jwt(
                HS256_HEADER,
                &json!(["billing", "service", "checkout-api", now + 3600]).to_string(),
                KEY,
            ),
        ),
    ];
    let mut failures = Vec::new();
    for (case, token) in &cases {
        let reply = app.get_secrets(token).await;
        failures.extend(check_unauthorized(case, &reply, &leaks(&bearer(token))).err());
    }
    assert_all_pass("JSON arrays instead of objects", &failures);
}

#[tokio::test]
async fn any_configured_key_verifies_so_keys_can_rotate() {
    let app = spawn_app_with(Some(load(POLICY)), &[KEY, OLD_KEY]).await;
    for (case, key) in [("the current key", KEY), ("the previous key", OLD_KEY)] {
        let reply = app.get_secrets(&token_for_with_key(WORKLOAD, key)).await;
        assert_served(case, &reply, EXPECTED);
    }
    let stranger = token_for_with_key(WORKLOAD, STRANGER_KEY);
    let reply = app.get_secrets(&stranger).await;
    assert_unauthorized("a third key", &reply, &[&stranger]);

    // Once the previous key is dropped, its tokens no longer verify.
    let app = spawn_app_with(Some(load(POLICY)), &[KEY]).await;
    let old = token_for_with_key(WORKLOAD, OLD_KEY);
    assert_unauthorized("the dropped key", &app.get_secrets(&old).await, &[&old]);
}

#[tokio::test]
async fn a_key_is_the_utf8_bytes_of_the_shared_secret() {
    const UNICODE_KEY: &str = "fake-clé-ünïcode-ключ";
    let app = spawn_app_with(Some(load(POLICY)), &[UNICODE_KEY]).await;
    let reply = app.get_secrets(&token_for_with_key(WORKLOAD, UNICODE_KEY)).await;
    assert_served("a non-ASCII key", &reply, EXPECTED);
    let ascii_only: String = UNICODE_KEY.chars().filter(char::is_ascii).collect();
    let wrong = token_for_with_key(WORKLOAD, &ascii_only);
    assert_unauthorized(
        "the key without its non-ASCII letters",
        &app.get_secrets(&wrong).await,
        &token_parts(&wrong),
    );
}

#[tokio::test]
async fn a_workload_granted_nothing_gets_an_empty_list() {
    let app = app().await;
    for (case, w) in [
        ("another project", wl("other-project", "service", "checkout-api")),
        ("another type", wl("billing", "job", "checkout-api")),
        ("another id", wl("billing", "service", "checkout-apis")),
    ] {
        let reply = app.get_secrets(&token_for(w)).await;
        assert_served(case, &reply, r#"{"secrets":[]}"#);
    }
}

#[tokio::test]
async fn other_methods_on_root_get_405_without_secrets() {
    let app = app().await;
    let token = format!("Bearer {}", token_for(WORKLOAD));
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let reply = app.request(method.clone(), "/", &[&token]).await;
        let body = reply.text();
        assert_eq!(reply.status, 405, "{method}: status (body {body})");
        let allow = reply.header("allow").unwrap_or_default();
        assert!(allow.contains("GET"), "{method}: Allow is {allow:?}");
        assert_no_leak(method.as_str(), &body, &leaks(std::slice::from_ref(&token)));
    }
}

#[tokio::test]
async fn an_unknown_path_is_404_without_secrets() {
    let app = app().await;
    let token = format!("Bearer {}", token_for(WORKLOAD));
    for path in ["/secrets", "/v1/", "/healthz/x"] {
        let reply = app.request(Method::GET, path, &[&token]).await;
        let body = reply.text();
        assert_eq!(reply.status, 404, "{path}: status (body {body})");
        assert_no_leak(path, &body, &leaks(std::slice::from_ref(&token)));
    }
}

#[tokio::test]
async fn health_and_readiness_with_a_policy() {
    let app = app().await;
    let health = app.request(Method::GET, "/healthz", &[]).await;
    assert_eq!(health.status, 200, "/healthz: {}", health.text());
    let ready = app.request(Method::GET, "/readyz", &[]).await;
    assert_eq!(ready.status, 200, "/readyz: {}", ready.text());
    assert_no_leak("/readyz", &ready.text(), &SECRET_VALUES);
}

#[tokio::test]
async fn without_a_policy_envoi_is_alive_but_not_ready_and_answers_503() {
    let app = spawn_app_with(None, &[KEY]).await;
    let health = app.request(Method::GET, "/healthz", &[]).await;
    assert_eq!(health.status, 200, "/healthz: {}", health.text());

    let ready = app.request(Method::GET, "/readyz", &[]).await;
    assert_eq!(ready.status, 503, "/readyz: {}", ready.text());
    assert_retry_after("/readyz", &ready);

    let token = token_for(WORKLOAD);
    let reply = app.get_secrets(&token).await;
    assert_eq!(reply.status, 503, "GET /: {}", reply.text());
    assert_retry_after("GET /", &reply);
    assert_eq!(reply.header("cache-control"), Some("no-store"), "GET /: Cache-Control");
    let body = reply.text();
    assert!(
        !body.contains("secrets"),
        "GET / without a policy answers secrets: {body}"
    );
    assert_no_leak("GET / without a policy", &body, &token_parts(&token));
}

fn assert_retry_after(case: &str, reply: &Reply) {
    let retry = reply.header("retry-after");
    assert!(
        retry.is_some_and(|r| r.trim().parse::<u64>().is_ok_and(|s| s > 0) || r.ends_with("GMT")),
        "{case}: Retry-After is {retry:?}"
    );
}
