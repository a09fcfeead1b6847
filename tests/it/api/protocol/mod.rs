//! SPEC §1, the protocol: `GET /` with a bearer HS256 token, and everything else.

use serde_json::{json, Value};

use super::helpers::*;

mod routes;
mod tokens;

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
