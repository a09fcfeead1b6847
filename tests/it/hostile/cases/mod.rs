//! The table: every hostile request, what it sends, and what a correct server answers.
//!
//! Tokens are crafted here byte by byte (HMAC over `header.claims` with whatever key and
//! algorithm the attack needs), never with envoi's own minting.

use serde_json::{json, Value};

use super::fixture::*;

mod payloads;
mod requests;
mod signing;

/// What a correct server answers.
#[derive(Debug, Clone)]
pub enum Want {
    /// 401 with `WWW-Authenticate: Bearer` and `{"error":"unauthorized"}`.
    Refused,
    /// 200 with exactly this answer.
    Serves(Value),
    /// 200 with exactly this answer, or 401: either is safe (a parser's limits).
    ServesOrRefused(Value),
    /// This status, with one of the generic error bodies.
    Status(u16),
    /// One of these statuses with a generic (or empty) body, or the connection closed
    /// without an answer. Never 200, never a hang.
    RejectedOrClosed(&'static [u16]),
}

/// What is sent.
pub enum Request {
    /// `GET /` with `Authorization: Bearer <token>`.
    Bearer(String),
    /// `GET /` with exactly these `Authorization` field values (none: no header).
    Authorization(Vec<Vec<u8>>),
    /// These bytes, as they are.
    Raw(Vec<u8>),
    /// `GET /` with a bearer token minted at sending time, early in a second: for the
    /// cases that sit one second from a time limit.
    Timed(fn() -> String),
}

pub struct Case {
    pub name: String,
    pub request: Request,
    pub want: Want,
    /// What the answer must not contain besides what is derived from the request
    /// (token, its segments and the string values in it) and the policy's values.
    pub needles: Vec<String>,
}

fn case(name: impl Into<String>, request: Request, want: Want) -> Case {
    Case {
        name: name.into(),
        request,
        want,
        needles: Vec::new(),
    }
}

fn refused(name: impl Into<String>, token: String) -> Case {
    case(name, Request::Bearer(token), Want::Refused)
}

fn serves(name: impl Into<String>, token: String, answer: Value) -> Case {
    case(name, Request::Bearer(token), Want::Serves(answer))
}

fn auth(name: impl Into<String>, values: &[&[u8]], want: Want) -> Case {
    case(
        name,
        Request::Authorization(values.iter().map(|v| v.to_vec()).collect()),
        want,
    )
}

fn raw(name: impl Into<String>, bytes: impl Into<Vec<u8>>, want: Want, needles: &[&str]) -> Case {
    Case {
        needles: needles.iter().map(|n| n.to_string()).collect(),
        ..case(name, Request::Raw(bytes.into()), want)
    }
}

fn bearer_value(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

/// `GET /` claims text with a raw JSON value for `projectId` and the rest valid.
fn claims_raw_project(project_json: &str) -> String {
    let now = now();
    format!(
        r#"{{"projectId":{project_json},"nfObjectType":"service","nfObjectId":"api","iat":{now},"exp":{}}}"#,
        now + 3600
    )
}

/// `{"alg":ALG}` headers signed HMAC-SHA256 with the right key: only the algorithm
/// named is wrong.
fn alg_header(alg: &str) -> String {
    format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)
}

/// A valid token for [`BILLING`] padded by an extra (ignored) claim to exactly `len`
/// bytes.
fn token_of_length(len: usize) -> String {
    // Each byte of padding adds 4/3 characters: start a little short of the length.
    let start = len.saturating_sub(400) * 3 / 4;
    for pad in start..len {
        let claims = claims_with(|c| {
            c.insert("pad".into(), json!("p".repeat(pad)));
        });
        let token = jwt(HS256, &claims);
        if token.len() == len {
            return token;
        }
        if token.len() > len {
            break;
        }
    }
    panic!("no padding gives a token of {len} bytes");
}

/// A valid token whose signature holds `-` or `_`, so that its standard-alphabet
/// spelling differs.
fn token_with_urlsafe_signature_chars() -> String {
    (0..10_000)
        .map(|n| {
            jwt(
                HS256,
                &claims_with(|c| {
                    c.insert("jti".into(), json!(n));
                }),
            )
        })
        .find(|t| segments(t)[2].contains(['-', '_']))
        .expect("some signature has - or _")
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Replaces the part of `token` at segment `n`.
fn with_segment(token: &str, n: usize, value: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[n] = value.to_owned();
    parts.join(".")
}

/// Signs `input` (`header64.claims64` as given, even if malformed) with the right key.
fn sign_input(input: &str) -> String {
    format!("{input}.{}", b64(mac(MacAlg::Sha256, KEY.as_bytes(), input.as_bytes())))
}

/// What the parts of the table share: a valid token for [`BILLING`], its three
/// segments and its claims.
#[derive(Clone)]
struct Given {
    good: String,
    h64: String,
    c64: String,
    s64: String,
    claims: String,
}

pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    let good = good_token();
    let [h64, c64, s64] = [0, 1, 2].map(|n| segments(&good)[n].to_owned());
    let claims = claims_for(BILLING).to_string();
    let given = Given {
        good,
        h64,
        c64,
        s64,
        claims,
    };
    signing::push(&mut cases, &given);
    payloads::push(&mut cases);
    requests::push(&mut cases, &given);
    cases
}

/// `GET /` with a valid token and `kib` KiB of extra header fields (40 of them).
pub fn head_of_size(token: &str, kib: usize) -> String {
    let filler: String = (0..40)
        .map(|n| format!("X-Hostile-{n:02}: {}\r\n", "h".repeat(kib * 1024 / 40 - 17)))
        .collect();
    format!("GET / HTTP/1.1\r\nHost: envoi.test\r\nAuthorization: Bearer {token}\r\n{filler}Connection: close\r\n\r\n")
}

/// Sets `iat`, `exp` and `nbf` as offsets from now (`None`: leave `iat`/`exp` as they
/// are and `nbf` absent).
fn set_times(c: &mut serde_json::Map<String, Value>, iat: Option<i64>, exp: Option<i64>, nbf: Option<i64>) {
    let now = now();
    if let Some(iat) = iat {
        c.insert("iat".into(), json!(now + iat));
    }
    if let Some(exp) = exp {
        c.insert("exp".into(), json!(now + exp));
    }
    if let Some(nbf) = nbf {
        c.insert("nbf".into(), json!(now + nbf));
    }
}
