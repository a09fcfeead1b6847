//! HS256 by hand: an HMAC over `header.claims` with the `hmac` and `sha2` crates, never
//! envoi's own code (ring, jsonwebtoken), so that a test's token is the platform's, not
//! envoi's idea of it. Any header, any claims bytes, any MAC algorithm and any key can be
//! signed, for the hostile cases; [`verify`] checks a token `envoi token` printed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Sha256, Sha384, Sha512};

/// The signing key the process-level test servers share with their "platform".
pub const SIGNING_KEY: &str = "test-signing-key-0123456789abcdef";

/// The header of a well-formed token.
pub const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// Unpadded base64url, as JWT segments are written.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The MAC a token is signed with, whatever its header claims.
#[derive(Clone, Copy, Debug)]
pub enum MacAlg {
    Sha256,
    Sha384,
    Sha512,
}

pub fn mac(alg: MacAlg, key: &[u8], input: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        MacAlg::Sha256 => run::<Hmac<Sha256>>(key, input),
        MacAlg::Sha384 => run::<Hmac<Sha384>>(key, input),
        MacAlg::Sha512 => run::<Hmac<Sha512>>(key, input),
    }
}

/// `b64(header).b64(claims)`, the signing input.
pub fn signing_input(header: &[u8], claims: &[u8]) -> String {
    format!("{}.{}", b64(header), b64(claims))
}

/// A compact JWT of arbitrary header and claims bytes, signed with `alg` and `key`.
pub fn sign_bytes(alg: MacAlg, key: &[u8], header: &[u8], claims: &[u8]) -> String {
    let input = signing_input(header, claims);
    let signature = mac(alg, key, input.as_bytes());
    format!("{input}.{}", b64(signature))
}

/// A compact HS256 JWT over `claims`, keyed with the UTF-8 bytes of `key`.
pub fn sign(key: &str, claims: &Value) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"}).to_string();
    sign_bytes(
        MacAlg::Sha256,
        key.as_bytes(),
        header.as_bytes(),
        claims.to_string().as_bytes(),
    )
}

/// The claims a platform sends for a workload.
pub fn claims(project: &str, kind: &str, id: &str, iat: i64, exp: i64) -> Value {
    json!({"projectId": project, "nfObjectType": kind, "nfObjectId": id, "iat": iat, "exp": exp})
}

/// A token for the workload, valid for an hour, signed with [`SIGNING_KEY`].
pub fn token(project: &str, kind: &str, id: &str) -> String {
    let now = now();
    sign(SIGNING_KEY, &claims(project, kind, id, now, now + 3600))
}

/// Checks the signature of `token` with `key` and returns its header and claims.
pub fn verify(token: &str, key: &str) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(format!("not three segments: {} found", parts.len()));
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| format!("signature is not base64url: {e}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{header}.{claims}").as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| "the signature does not verify with this key".to_owned())?;
    let decode = |segment: &str, what: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|e| format!("{what} is not base64url: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{what} is not JSON: {e}"))
    };
    Ok((decode(header, "header")?, decode(claims, "claims")?))
}
