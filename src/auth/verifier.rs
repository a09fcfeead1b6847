//! HS256 verification: the signature by ring's HMAC with each key's state computed once
//! at start (`jsonwebtoken::crypto::verify` derived it again, copied the secret and
//! base64-encoded a fresh signature to compare, for every token: a fifth of a token's
//! verification, bench/README.md), with envoi's strict checks around it:
//! the size cap before anything is parsed, the header read strictly (RFC 8725: no
//! `jku`, `x5u`, `jwk`, `crit`, `cty`), claims that must be a JSON object of the right
//! types, and the times (`exp`, `nbf`, `iat`, the maximum lifetime) checked against the
//! caller's clock. `jsonwebtoken` also mints tokens (`envoi token`, `serve --dev`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::Workload;

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused. The reason is for logs and metrics; the client only ever
/// learns that it is unauthorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no Authorization header")]
    Missing,
    #[error("Authorization is not a Bearer token")]
    NotBearer,
    #[error("token larger than 8 KiB")]
    TooLarge,
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token header refused (only alg HS256 without key-sourcing or critical parameters)")]
    BadHeader,
    #[error("token signature matches no configured key")]
    BadSignature,
    #[error("token claims missing or of the wrong type")]
    BadClaims,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("token lifetime longer than the configured maximum")]
    TooLongLived,
    #[error("too many failed authentications from this address")]
    RateLimited,
}

impl AuthError {
    /// A short stable name for logs and metric labels.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NotBearer => "not_bearer",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::BadHeader => "bad_header",
            Self::BadSignature => "bad_signature",
            Self::BadClaims => "bad_claims",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::TooLongLived => "too_long_lived",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// A shared secret with the platform. Its bytes are the secret's UTF-8 bytes.
#[derive(Clone)]
pub struct SigningKey(SecretString);

impl SigningKey {
    pub fn new(secret: SecretString) -> Self {
        Self(secret)
    }

    fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// The time rules a token must meet.
#[derive(Debug, Clone, Copy)]
pub struct TokenRules {
    pub leeway_seconds: u64,
    pub max_lifetime_seconds: u64,
}

/// Verifies bearer tokens. Built once at start (keys and validation included);
/// `verify` takes `&self`.
pub struct Verifier {
    keys: Vec<hmac::Key>,
    rules: TokenRules,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .field("rules", &self.rules)
            .finish()
    }
}

/// The JOSE header. Only these members are understood; anything else (`jku`, `x5u`,
/// `jwk`, `crit`, `cty`...) makes the token refused rather than silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    #[allow(dead_code)] // accepted and ignored: every configured key is tried
    kid: Option<std::borrow::Cow<'a, str>>,
}

/// Borrowed from the decoded JSON where it holds no escape: the three names are copied
/// once, into the [`Workload`].
#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(rename = "projectId", borrow)]
    project: std::borrow::Cow<'a, str>,
    #[serde(rename = "nfObjectType", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(rename = "nfObjectId", borrow)]
    id: std::borrow::Cow<'a, str>,
    exp: NumericDate,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    iat: Option<NumericDate>,
}

/// The claims, from a JSON object only: RFC 7519 wants one, and serde's derived structs
/// would also take an array of the fields in order.
struct ObjectClaims<'a>(Claims<'a>);

impl<'de> Deserialize<'de> for ObjectClaims<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = ObjectClaims<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Claims::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ObjectClaims)
            }
        }
        d.deserialize_map(Object)
    }
}

/// Seconds since the epoch, as JSON numbers (integral or not) only.
#[derive(Clone, Copy)]
struct NumericDate(i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        if let Some(i) = n.as_i64() {
            return Ok(Self(i));
        }
        match n.as_f64() {
            Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Self(f.floor() as i64)),
            _ => Err(serde::de::Error::custom("NumericDate out of range")),
        }
    }
}

impl Verifier {
    pub fn new(keys: &[SigningKey], rules: TokenRules) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| hmac::Key::new(hmac::HMAC_SHA256, k.bytes()))
                .collect(),
            rules,
        }
    }

    /// How many signing keys tokens are checked against.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Verifies an `Authorization` header value, as [`Self::verify_with`] does.
    pub fn verify_header(&self, header: Option<&[u8]>, verified: impl FnOnce(usize)) -> Result<Workload, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = bearer_token(header)?;
        self.verify_with(token, now(), verified)
    }

    /// Verifies a compact JWT at the time `now` (seconds since the epoch).
    pub fn verify(&self, token: &[u8], now: i64) -> Result<Workload, AuthError> {
        self.verify_with(token, now, |_| ())
    }

    /// Verifies a compact JWT at the time `now`, and tells `verified` the position of the
    /// key whose signature it holds (for rotation, SPEC §6) once the signature holds,
    /// whatever the claims say: an expired token signed with an old key still shows the
    /// key in use.
    pub fn verify_with(&self, token: &[u8], now: i64, verified: impl FnOnce(usize)) -> Result<Workload, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let token = std::str::from_utf8(token).map_err(|_| AuthError::Malformed)?;
        let mut parts = token.split('.');
        let (Some(header64), Some(payload64), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        strict_header(header64)?;
        // An HS256 signature is 32 bytes: 43 base64url characters without padding, in
        // their one canonical spelling (the decoder refuses stray trailing bits).
        let mut mac = [0u8; 32];
        if signature.len() != 43 || URL_SAFE_NO_PAD.decode_slice(signature, &mut mac) != Ok(32) {
            return Err(AuthError::BadSignature);
        }
        // The signature before the claims are read; compared in constant time.
        let message = &token[..header64.len() + 1 + payload64.len()];
        let key = self
            .keys
            .iter()
            .position(|key| hmac::verify(key, message.as_bytes(), &mac).is_ok())
            .ok_or(AuthError::BadSignature)?;
        verified(key);
        let json = URL_SAFE_NO_PAD.decode(payload64).map_err(|_| AuthError::Malformed)?;
        let ObjectClaims(claims) = serde_json::from_slice(&json).map_err(|_| AuthError::BadClaims)?;
        self.check_times(&claims, now)?;
        Workload::new(&claims.project, &claims.kind, &claims.id)
    }

    fn check_times(&self, claims: &Claims<'_>, now: i64) -> Result<(), AuthError> {
        let leeway = i64::try_from(self.rules.leeway_seconds).unwrap_or(i64::MAX);
        let max_lifetime = i64::try_from(self.rules.max_lifetime_seconds).unwrap_or(i64::MAX);
        // RFC 7519: the current time must be before `exp`, and not before `nbf`.
        if now >= claims.exp.0.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf.0 > now.saturating_add(leeway)) {
            return Err(AuthError::NotYetValid);
        }
        if claims.iat.is_some_and(|iat| iat.0 > now.saturating_add(leeway)) {
            return Err(AuthError::NotYetValid);
        }
        if claims.exp.0 > now.saturating_add(max_lifetime).saturating_add(leeway) {
            return Err(AuthError::TooLongLived);
        }
        // SPEC §1: the cap bounds the whole lifetime too, so a token minted long ago for a
        // long life is refused even near its end.
        if claims
            .iat
            .is_some_and(|iat| claims.exp.0.saturating_sub(iat.0) > max_lifetime.saturating_add(leeway))
        {
            return Err(AuthError::TooLongLived);
        }
        Ok(())
    }
}

/// The header, read before `jsonwebtoken` sees the token: a JSON object with `alg`
/// HS256 and nothing but `typ` (JWT) and `kid` beside it. `jsonwebtoken` would accept
/// and ignore key-sourcing members (`jku`, `x5u`, `jwk`) and `crit`.
fn strict_header(header64: &str) -> Result<(), AuthError> {
    if USUAL_HEADERS
        .iter()
        .any(|usual| header64.len() == usual.len() && header64.bytes().eq(usual.bytes()))
    {
        return Ok(());
    }
    parse_header(header64)
}

/// The headers platforms send, spelt as they spell them: known good without decoding
/// (what [`parse_header`] makes of them, checked by a test).
const USUAL_HEADERS: [&str; 2] = [
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", // {"alg":"HS256","typ":"JWT"}
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9", // {"typ":"JWT","alg":"HS256"}
];

fn parse_header(header64: &str) -> Result<(), AuthError> {
    let json = URL_SAFE_NO_PAD.decode(header64).map_err(|_| AuthError::Malformed)?;
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AuthError::BadHeader);
    }
    let header: Header = serde_json::from_slice(&json).map_err(|_| AuthError::BadHeader)?;
    if header.alg != "HS256" || header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return Err(AuthError::BadHeader);
    }
    Ok(())
}

/// Takes the token out of `Bearer <token>`; the scheme is case-insensitive (RFC 9110).
pub fn bearer_token(header: &[u8]) -> Result<&[u8], AuthError> {
    const SCHEME: &[u8] = b"bearer ";
    if header.len() < SCHEME.len() || !header[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Err(AuthError::NotBearer);
    }
    let token = header[SCHEME.len()..].trim_ascii();
    if token.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Mints an HS256 token for `workload` valid for `ttl_seconds`, as the platform would.
pub fn mint_token(key: &SigningKey, workload: &Workload, ttl_seconds: u64) -> String {
    #[derive(serde::Serialize)]
    struct Minted<'a> {
        #[serde(rename = "projectId")]
        project: &'a str,
        #[serde(rename = "nfObjectType")]
        kind: &'a str,
        #[serde(rename = "nfObjectId")]
        id: &'a str,
        iat: i64,
        exp: i64,
    }
    let iat = now();
    let claims = Minted {
        project: workload.project(),
        kind: workload.kind(),
        id: workload.id(),
        iat,
        exp: iat.saturating_add(i64::try_from(ttl_seconds).unwrap_or(i64::MAX)),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.bytes()),
    )
    .expect("HS256 signing of plain claims cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_headers_are_what_the_parser_accepts() {
        for usual in USUAL_HEADERS {
            assert_eq!(parse_header(usual), Ok(()), "{usual}");
            let json = URL_SAFE_NO_PAD.decode(usual).unwrap();
            let header: serde_json::Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));
        }
        // One character off is not the usual header, and goes to the parser.
        let changed = USUAL_HEADERS[0].replacen('J', "K", 1);
        assert_eq!(strict_header(&changed), parse_header(&changed));
    }
}
