//! HS256 by hand (HMAC-SHA256 over `header.claims`), independent of envoi's code, so
//! that a token `envoi token` prints is checked against the key as the platform would.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub use crate::shared::cli_run::{now, sign};

/// The claims a platform sends for a workload.
pub fn claims(project: &str, kind: &str, id: &str, iat: i64, exp: i64) -> Value {
    json!({"projectId": project, "nfObjectType": kind, "nfObjectId": id, "iat": iat, "exp": exp})
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
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
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
