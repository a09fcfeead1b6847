//! The table: every hostile request, what it sends, and what a correct server answers.
//!
//! Tokens are crafted here byte by byte (HMAC over `header.claims` with whatever key and
//! algorithm the attack needs), never with envoi's own minting.

use serde_json::{json, Value};

use super::fixture::*;

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

pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    let good = good_token();
    let [h64, c64, s64] = [0, 1, 2].map(|n| segments(&good)[n].to_owned());
    let claims = claims_for(BILLING).to_string();

    // ---- Controls: without them a server refusing everything would pass. ----
    cases.push(serves("control: a valid token", good.clone(), billing_answer()));
    cases.push(serves(
        "control: a token signed with the previous key (rotation)",
        jwt_with(MacAlg::Sha256, OLD_KEY.as_bytes(), HS256, &claims),
        billing_answer(),
    ));
    cases.push(serves(
        "control: a header without typ",
        jwt(r#"{"alg":"HS256"}"#, &claims),
        billing_answer(),
    ));

    // ---- RFC 8725 §2.1 / §3.1: alg none and algorithm confusion. ----
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = alg_header(alg);
        let unsigned = signing_input(header.as_bytes(), claims.as_bytes());
        cases.push(refused(format!("alg {alg}, empty signature"), format!("{unsigned}.")));
        cases.push(refused(
            format!("alg {alg}, signed with the right key"),
            jwt(&header, &claims),
        ));
    }
    cases.push(refused(
        "alg none, signature stripped (2 segments)",
        signing_input(alg_header("none").as_bytes(), claims.as_bytes()),
    ));
    cases.push(refused(
        "alg HS384, HMAC-SHA384 with the right key",
        jwt_with(MacAlg::Sha384, KEY.as_bytes(), &alg_header("HS384"), &claims),
    ));
    cases.push(refused(
        "alg HS512, HMAC-SHA512 with the right key",
        jwt_with(MacAlg::Sha512, KEY.as_bytes(), &alg_header("HS512"), &claims),
    ));
    for alg in [
        "HS384", "HS512", "RS256", "RS512", "ES256", "PS256", "EdDSA", "hs256", "HS256 ", "HS2560",
    ] {
        cases.push(refused(
            format!("alg {alg:?} header, HMAC-SHA256 with the right key"),
            jwt(&alg_header(alg), &claims),
        ));
    }
    cases.push(refused("header without alg", jwt(r#"{"typ":"JWT"}"#, &claims)));
    cases.push(refused("alg null", jwt(r#"{"alg":null}"#, &claims)));
    cases.push(refused("alg as an array", jwt(r#"{"alg":["HS256"]}"#, &claims)));
    cases.push(refused(
        "duplicate alg in the header: none then HS256",
        jwt(r#"{"alg":"none","alg":"HS256"}"#, &claims),
    ));
    cases.push(refused(
        "duplicate alg in the header: HS256 then none",
        jwt(r#"{"alg":"HS256","alg":"none"}"#, &claims),
    ));
    cases.push(refused("header is a JSON array", jwt(r#"["HS256"]"#, &claims)));
    cases.push(refused("header is a JSON string", jwt(r#""HS256""#, &claims)));
    cases.push(refused("header is not JSON", jwt("alg=HS256", &claims)));

    // ---- Signatures. ----
    cases.push(refused("empty signature", format!("{h64}.{c64}.")));
    cases.push(refused("signature stripped (2 segments)", format!("{h64}.{c64}")));
    cases.push(refused("one segment only", h64.clone()));
    cases.push(refused("four segments", format!("{good}.{s64}")));
    cases.push(refused("a trailing dot", format!("{good}.")));
    cases.push(refused("a leading dot", format!(".{good}")));
    let admin_claims = claims_for(["admin", "job", "root"]).to_string();
    cases.push(refused(
        "another token's signature on other claims",
        format!("{}.{s64}", signing_input(HS256.as_bytes(), admin_claims.as_bytes())),
    ));
    cases.push(refused("signature padded with =", format!("{good}=")));
    cases.push(refused("signature padded with ==", format!("{good}==")));
    cases.push(refused(
        "signature truncated by one character",
        good[..good.len() - 1].to_owned(),
    ));
    {
        let last = *s64.as_bytes().last().expect("a signature");
        let index = B64URL.iter().position(|&c| c == last).expect("base64url");
        // 32 bytes take 43 characters; the last carries 4 bits and 2 unused ones.
        let sibling = B64URL[index ^ 1] as char;
        cases.push(refused(
            "signature with non-canonical trailing bits (same bytes)",
            format!("{}{sibling}", &good[..good.len() - 1]),
        ));
    }
    {
        let token = token_with_urlsafe_signature_chars();
        let standard = segments(&token)[2].replace('-', "+").replace('_', "/");
        cases.push(refused(
            "signature in the standard base64 alphabet",
            with_segment(&token, 2, &standard),
        ));
    }
    cases.push(refused(
        "signature of 32 zero bytes",
        with_segment(&good, 2, &b64([0u8; 32])),
    ));
    cases.push(refused(
        "signature is the raw MAC bytes as hex",
        with_segment(
            &good,
            2,
            &mac(MacAlg::Sha256, KEY.as_bytes(), format!("{h64}.{c64}").as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        ),
    ));

    // ---- Keys: a stranger's and near misses of the right one. ----
    let mut changed = KEY.as_bytes().to_vec();
    *changed.last_mut().expect("a key") ^= 0x01;
    let near_misses: [(&str, Vec<u8>); 6] = [
        ("a stranger's key", STRANGER_KEY.as_bytes().to_vec()),
        ("the right key with one byte changed", changed),
        ("a prefix of the right key", KEY.as_bytes()[..KEY.len() - 1].to_vec()),
        ("the right key plus a trailing newline", format!("{KEY}\n").into_bytes()),
        ("the right key in upper case", KEY.to_uppercase().into_bytes()),
        ("an empty key", Vec::new()),
    ];
    for (label, key) in near_misses {
        cases.push(refused(
            format!("signed with {label}"),
            jwt_with(MacAlg::Sha256, &key, HS256, &claims),
        ));
    }
    cases.push(refused(
        "signed with a near miss of the previous key",
        jwt_with(MacAlg::Sha256, format!("{OLD_KEY} ").as_bytes(), HS256, &claims),
    ));

    // ---- Key-sourcing and critical header parameters (RFC 8725 §3.10, RFC 7515). ----
    let kid_traversal = r#"{"alg":"HS256","typ":"JWT","kid":"../../etc/passwd"}"#;
    cases.push(serves(
        "kid ../../etc/passwd is ignored: a valid signature still serves",
        jwt(kid_traversal, &claims),
        billing_answer(),
    ));
    cases.push(refused(
        "kid ../../etc/passwd signed with an empty key",
        jwt_with(MacAlg::Sha256, b"", kid_traversal, &claims),
    ));
    cases.push(refused(
        "kid /dev/null signed with an empty key",
        jwt_with(MacAlg::Sha256, b"", r#"{"alg":"HS256","kid":"/dev/null"}"#, &claims),
    ));
    cases.push(refused(
        "kid with SQL injection, signed with a stranger's key",
        jwt_with(
            MacAlg::Sha256,
            STRANGER_KEY.as_bytes(),
            r#"{"alg":"HS256","kid":"x' UNION SELECT 'hostile-key"}"#,
            &claims,
        ),
    ));
    let stranger_jwk = format!(r#"{{"alg":"HS256","jwk":{{"kty":"oct","k":"{}"}}}}"#, b64(STRANGER_KEY));
    let sourcing: [(&str, String); 6] = [
        (
            "jku",
            r#"{"alg":"HS256","jku":"https://attacker.example/jwks.json"}"#.into(),
        ),
        (
            "x5u",
            r#"{"alg":"HS256","x5u":"https://attacker.example/cert.pem"}"#.into(),
        ),
        (
            "x5c",
            r#"{"alg":"HS256","x5c":["MIIBszCCAVmgAwIBAgIUHostileCert"]}"#.into(),
        ),
        ("jwk (embedded key)", stranger_jwk),
        ("x5t", r#"{"alg":"HS256","x5t":"aG9zdGlsZS10aHVtYnByaW50"}"#.into()),
        ("an unknown member", r#"{"alg":"HS256","hostile":true}"#.into()),
    ];
    for (label, header) in sourcing {
        cases.push(refused(
            format!("header {label}, signed with the stranger's key it points to"),
            jwt_with(MacAlg::Sha256, STRANGER_KEY.as_bytes(), &header, &claims),
        ));
        cases.push(refused(
            format!("header {label}, signed with the right key"),
            jwt(&header, &claims),
        ));
    }
    cases.push(refused(
        "crit [exp], signed with the right key",
        jwt(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, &claims),
    ));
    cases.push(refused(
        "crit [b64] with b64 false, signed with the right key",
        jwt(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, &claims),
    ));
    cases.push(refused(
        "cty JWT with a nested valid token as payload",
        jwt(r#"{"alg":"HS256","cty":"JWT"}"#, &good),
    ));
    cases.push(refused(
        "cty JWT over valid claims",
        jwt(r#"{"alg":"HS256","cty":"JWT"}"#, &claims),
    ));

    // ---- Encodings of the segments. ----
    cases.push(refused(
        "header segment not base64 (valid MAC over it)",
        sign_input(&format!("!!{h64}!!.{c64}")),
    ));
    cases.push(refused(
        "header segment with = padding (valid MAC over it)",
        sign_input(&format!("{h64}=.{c64}")),
    ));
    cases.push(refused("empty header segment", sign_input(&format!(".{c64}"))));
    cases.push(refused(
        "claims segment not base64 (valid MAC over it)",
        sign_input(&format!("{h64}.@@{c64}@@")),
    ));
    {
        // JSON allows trailing spaces: pad the claims so that standard base64 needs `==`.
        let mut spaced = claims.clone();
        while spaced.len() % 3 != 1 {
            spaced.push(' ');
        }
        let padded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &spaced);
        assert!(padded.ends_with("=="));
        cases.push(refused(
            "claims segment with = padding (valid MAC over it)",
            sign_input(&format!("{h64}.{padded}")),
        ));
    }
    cases.push(refused("empty claims segment", sign_input(&format!("{h64}."))));
    cases.push(refused(
        "claims are not JSON",
        jwt(HS256, "projectId=billing&nfObjectType=service&nfObjectId=api"),
    ));
    cases.push(refused("claims are a JSON array", jwt(HS256, &format!("[{claims}]"))));
    cases.push(refused(
        "claims as a positional JSON array",
        jwt(HS256, &json!(["billing", "service", "api", now() + 3600]).to_string()),
    ));
    cases.push(refused(
        "header as a positional JSON array",
        jwt(r#"["HS256","JWT"]"#, &claims),
    ));
    cases.push(refused("claims are a JSON string", jwt(HS256, r#""billing""#)));
    cases.push(refused("claims are JSON null", jwt(HS256, "null")));
    cases.push(refused(
        "claims are invalid UTF-8",
        sign_bytes(
            MacAlg::Sha256,
            KEY.as_bytes(),
            HS256.as_bytes(),
            b"\xff\xfe{\"projectId\":\x80}",
        ),
    ));
    {
        let mut bytes = claims_raw_project("\"bill\u{1}ing\"").into_bytes();
        let at = bytes.iter().position(|&b| b == 1).expect("a marker");
        bytes[at] = 0xff;
        cases.push(refused(
            "a claim string with an invalid UTF-8 byte",
            sign_bytes(MacAlg::Sha256, KEY.as_bytes(), HS256.as_bytes(), &bytes),
        ));
    }
    cases.push(refused(
        "claims with a UTF-8 byte order mark",
        jwt(HS256, &format!("\u{feff}{claims}")),
    ));
    cases.push(refused(
        "claims with trailing garbage",
        jwt(HS256, &format!("{claims}{{\"projectId\":\"admin\"}}")),
    ));
    cases.push(refused(
        "a lone surrogate escape in projectId",
        jwt(HS256, &claims_raw_project(r#""bill\ud800ing""#)),
    ));

    // ---- Duplicate claims: ambiguous, so refused whichever comes first. ----
    for (first, second) in [("billing", "admin"), ("admin", "billing")] {
        let now = now();
        cases.push(refused(
            format!("two projectId claims: {first} then {second}"),
            jwt(
                HS256,
                &format!(
                    r#"{{"projectId":"{first}","projectId":"{second}","nfObjectType":"service","nfObjectId":"api","iat":{now},"exp":{}}}"#,
                    now + 3600
                ),
            ),
        ));
    }
    {
        let now = now();
        cases.push(refused(
            "two exp claims: valid then long expired",
            jwt(
                HS256,
                &format!(
                    r#"{{"projectId":"billing","nfObjectType":"service","nfObjectId":"api","exp":{},"exp":1}}"#,
                    now + 3600
                ),
            ),
        ));
    }

    // ---- Claims of the wrong type, empty, missing. ----
    let wrong: [(&str, Value); 7] = [
        ("a number", json!(42)),
        ("a bool", json!(true)),
        ("null", Value::Null),
        ("an array", json!(["billing"])),
        ("an object", json!({"name": "billing"})),
        ("an empty string", json!("")),
        ("a float", json!(1.5)),
    ];
    for claim in ["projectId", "nfObjectType", "nfObjectId"] {
        for (label, value) in &wrong {
            cases.push(refused(
                format!("{claim} is {label}"),
                jwt(
                    HS256,
                    &claims_with(|c| {
                        c.insert(claim.into(), value.clone());
                    }),
                ),
            ));
        }
        cases.push(refused(
            format!("{claim} missing"),
            jwt(
                HS256,
                &claims_with(|c| {
                    c.remove(claim);
                }),
            ),
        ));
    }
    let now = now();
    let bad_times: [(&str, &str, Option<Value>); 11] = [
        ("exp", "a numeric string", Some(json!((now + 3600).to_string()))),
        ("exp", "null", Some(Value::Null)),
        ("exp", "missing", None),
        ("exp", "a bool", Some(json!(true))),
        ("exp", "an array", Some(json!([now + 3600]))),
        ("exp", "1e300", Some(json!(1e300))),
        ("exp", "u64::MAX", Some(json!(u64::MAX))),
        ("exp", "i64::MAX", Some(json!(i64::MAX))),
        ("exp", "negative", Some(json!(-1))),
        ("nbf", "a string", Some(json!("0"))),
        ("iat", "a string", Some(json!("0"))),
    ];
    for (claim, label, value) in bad_times {
        cases.push(refused(
            format!("{claim} is {label}"),
            jwt(
                HS256,
                &claims_with(|c| match value {
                    Some(v) => {
                        c.insert(claim.into(), v);
                    }
                    None => {
                        c.remove(claim);
                    }
                }),
            ),
        ));
    }
    cases.push(refused(
        "exp is a 400-digit number",
        jwt(
            HS256,
            &format!(
                r#"{{"projectId":"billing","nfObjectType":"service","nfObjectId":"api","exp":9{}}}"#,
                "9".repeat(399)
            ),
        ),
    ));
    cases.push(serves(
        "exp with a fraction (a NumericDate may have one)",
        jwt(
            HS256,
            &format!(
                r#"{{"projectId":"billing","nfObjectType":"service","nfObjectId":"api","exp":{}.5}}"#,
                now + 3600
            ),
        ),
        billing_answer(),
    ));

    // ---- Clock edges (leeway 30 s, maximum lifetime 7 days). ----
    cases.push(refused(
        "expired an hour ago",
        jwt(HS256, &claims_with(|c| set_times(c, Some(-7200), Some(-3600), None))),
    ));
    cases.push(case(
        "exp = now - leeway - 1",
        Request::Timed(|| {
            jwt(
                HS256,
                &claims_with(|c| set_times(c, Some(-600), Some(-LEEWAY - 1), None)),
            )
        }),
        Want::Refused,
    ));
    cases.push(case(
        "exp = now - leeway + 1 (inside the leeway)",
        Request::Timed(|| {
            jwt(
                HS256,
                &claims_with(|c| set_times(c, Some(-600), Some(-LEEWAY + 1), None)),
            )
        }),
        Want::Serves(billing_answer()),
    ));
    cases.push(case(
        "nbf = now + leeway + 5",
        Request::Timed(|| jwt(HS256, &claims_with(|c| set_times(c, None, None, Some(LEEWAY + 5))))),
        Want::Refused,
    ));
    cases.push(case(
        "nbf = now + 10 (inside the leeway)",
        Request::Timed(|| jwt(HS256, &claims_with(|c| set_times(c, None, None, Some(10))))),
        Want::Serves(billing_answer()),
    ));
    cases.push(case(
        "iat = now + 10 (in the future, inside the leeway)",
        Request::Timed(|| jwt(HS256, &claims_with(|c| set_times(c, Some(10), None, None)))),
        Want::Serves(billing_answer()),
    ));
    cases.push(case(
        "iat = now + leeway + 5",
        Request::Timed(|| jwt(HS256, &claims_with(|c| set_times(c, Some(LEEWAY + 5), None, None)))),
        Want::Refused,
    ));
    cases.push(case(
        "exp = now + max lifetime + leeway + 5",
        Request::Timed(|| {
            jwt(
                HS256,
                &claims_with(|c| set_times(c, None, Some(MAX_LIFETIME + LEEWAY + 5), None)),
            )
        }),
        Want::Refused,
    ));
    cases.push(case(
        "exp = now + max lifetime (the limit itself)",
        Request::Timed(|| jwt(HS256, &claims_with(|c| set_times(c, None, Some(MAX_LIFETIME), None)))),
        Want::Serves(billing_answer()),
    ));
    cases.push(case(
        "iat 30 days ago, exp in one hour (a lifetime over the maximum)",
        Request::Timed(|| {
            jwt(
                HS256,
                &claims_with(|c| set_times(c, Some(-30 * 86_400), Some(3_600), None)),
            )
        }),
        Want::Refused,
    ));
    cases.push(refused(
        "exp in the year 3000",
        jwt(
            HS256,
            &claims_with(|c| set_times(c, None, Some(32_503_680_000 - now), None)),
        ),
    ));

    // ---- Hostile but signed names. ----
    for (label, value) in [
        ("NUL", "bill\u{0}ing"),
        ("a newline (log injection)", "billing\n2024-01-01 INFO granted"),
        ("a carriage return", "billing\r"),
        ("an ANSI escape", "\u{1b}[31mbilling"),
        ("DEL", "billing\u{7f}"),
        ("a C1 control (NEL)", "billing\u{85}"),
        ("a tab", "bill\ting"),
    ] {
        cases.push(refused(
            format!("projectId with {label}"),
            token_for([value, "service", "api"]),
        ));
    }
    cases.push(refused(
        "NUL joining two names (index key confusion)",
        token_for(["admin\u{0}job", "root", "x"]),
    ));
    cases.push(refused("nfObjectId with NUL", token_for(["admin", "job", "root\u{0}"])));
    cases.push(refused(
        "a 300-character projectId",
        token_for([&"p".repeat(300), "service", "api"]),
    ));
    cases.push(refused(
        "a 257-character nfObjectId",
        token_for(["billing", "service", &"i".repeat(257)]),
    ));
    cases.push(serves(
        "a 256-character nfObjectType (the limit) matches nothing",
        token_for(["billing", &"t".repeat(256), "api"]),
        empty_answer(),
    ));
    cases.push(serves(
        "path traversal in every claim matches nothing",
        token_for(["../../x", "../../etc", "../../../etc/passwd"]),
        empty_answer(),
    ));
    cases.push(serves(
        "a claim of * is a name, not a glob",
        token_for(["*", "*", "*"]),
        empty_answer(),
    ));
    cases.push(serves(
        "nfObjectId * does not reach an exact grant",
        token_for(["billing", "service", "*"]),
        empty_answer(),
    ));
    cases.push(serves(
        "a near-miss name (trailing space) matches nothing",
        token_for(["billing ", "service", "api"]),
        empty_answer(),
    ));
    cases.push(serves(
        "a near-miss name (upper case) matches nothing",
        token_for(["BILLING", "service", "api"]),
        empty_answer(),
    ));
    for project in [
        "shop-${secret.stripe_key}",
        "shop-$${secret.admin_root}",
        r#"shop-","key":"STRIPE_KEY","value":"pwned"#,
        r#"shop-\"}]}"#,
        "shop-ünïcødé-🦀",
        "shop-\u{2028}",
    ] {
        cases.push(serves(
            format!("projectId {project:?} is spliced as text"),
            token_for([project, "service", "api"]),
            shop_answer(project),
        ));
    }

    // ---- Size and shape. ----
    cases.push(serves(
        "a valid token of exactly 8 KiB",
        token_of_length(8192),
        billing_answer(),
    ));
    cases.push(refused("a valid token of 8 KiB + 1", token_of_length(8193)));
    // Over the token bound and over the 16 KiB header bound: the header check answers first.
    cases.push(case(
        "a valid token of 16 KiB",
        Request::Bearer(token_of_length(16 * 1024)),
        Want::RejectedOrClosed(&[401, 431]),
    ));
    {
        let depth = 2900;
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let token = jwt(HS256, &claims_raw_project(&deep));
        assert!(token.len() < 8192, "deep nesting stays under 8 KiB");
        cases.push(refused(format!("projectId nested {depth} arrays deep"), token));
        let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(900), "}".repeat(900));
        let token = jwt(HS256, &claims_raw_project(&deep_objects));
        assert!(token.len() < 8192);
        cases.push(refused("projectId nested 900 objects deep", token));
        let token = jwt(
            HS256,
            &claims_with(|c| {
                c.insert("hostile".into(), json!(0));
            })
            .replacen(r#""hostile":0"#, &format!(r#""hostile":{deep}"#), 1),
        );
        assert!(token.len() < 8192);
        cases.push(case(
            format!("an unknown claim nested {depth} arrays deep"),
            Request::Bearer(token),
            Want::ServesOrRefused(billing_answer()),
        ));
    }
    {
        let mut claims = claims_for(BILLING);
        for n in 0..500 {
            claims[format!("k{n}")] = json!(n);
        }
        let token = jwt(HS256, &claims.to_string());
        assert!(token.len() < 8192);
        cases.push(serves("500 unknown claims are ignored", token, billing_answer()));
    }

    // ---- The Authorization field. ----
    cases.push(auth("no Authorization field", &[], Want::Refused));
    cases.push(auth("a token without a scheme", &[good.as_bytes()], Want::Refused));
    cases.push(Case {
        needles: vec!["hostile-user".into(), "aG9zdGlsZS11c2VyOmhvc3RpbGUtcGFzcw".into()],
        ..auth(
            "Basic credentials",
            &[b"Basic aG9zdGlsZS11c2VyOmhvc3RpbGUtcGFzcw=="],
            Want::Refused,
        )
    });
    cases.push(auth(
        "Basic with a valid token",
        &[format!("Basic {good}").as_bytes()],
        Want::Refused,
    ));
    cases.push(auth(
        "Token scheme with a valid token",
        &[format!("Token {good}").as_bytes()],
        Want::Refused,
    ));
    cases.push(auth(
        "Bearer: with a colon",
        &[format!("Bearer:{good}").as_bytes()],
        Want::Refused,
    ));
    cases.push(auth(
        "the scheme glued to the token",
        &[format!("Bearer{good}").as_bytes()],
        Want::Refused,
    ));
    cases.push(auth("Bearer alone", &[b"Bearer"], Want::Refused));
    cases.push(auth("Bearer and spaces only", &[b"Bearer      "], Want::Refused));
    cases.push(auth(
        "a tab between scheme and token",
        &[format!("Bearer\t{good}").as_bytes()],
        Want::Refused,
    ));
    cases.push(auth(
        "two valid tokens in two Authorization fields",
        &[&bearer_value(&good), &bearer_value(&good)],
        Want::Refused,
    ));
    let admin = token_for(["admin", "job", "root"]);
    cases.push(auth(
        "two Authorization fields: a bad token then a valid one",
        &[b"Bearer x.y.z", &bearer_value(&admin)],
        Want::Refused,
    ));
    cases.push(auth(
        "two Authorization fields: a valid token then a bad one",
        &[&bearer_value(&admin), b"Bearer x.y.z"],
        Want::Refused,
    ));
    cases.push(auth(
        "two tokens in one field, space-separated",
        &[format!("Bearer {good} {admin}").as_bytes()],
        Want::Refused,
    ));
    cases.push(auth(
        "two credentials in one field, comma-separated",
        &[format!("Bearer {good}, Bearer {admin}").as_bytes()],
        Want::Refused,
    ));
    cases.push(auth(
        "a token followed by a semicolon",
        &[format!("Bearer {good};").as_bytes()],
        Want::Refused,
    ));
    cases.push(auth(
        "a token with obs-text bytes",
        &[b"Bearer \xff\xfe\xfd.\xc3\x28.\x80"],
        Want::Refused,
    ));
    cases.push(auth(
        "scheme in lower case is valid",
        &[format!("bearer {good}").as_bytes()],
        Want::Serves(billing_answer()),
    ));
    cases.push(auth(
        "scheme in upper case is valid",
        &[format!("BEARER {good}").as_bytes()],
        Want::Serves(billing_answer()),
    ));
    cases.push(auth(
        "several spaces after the scheme (RFC 6750: 1*SP)",
        &[format!("Bearer    {good}").as_bytes()],
        Want::Serves(billing_answer()),
    ));
    cases.push(auth(
        "leading and trailing whitespace around the field value",
        &[format!("   Bearer {good}   ").as_bytes()],
        Want::Serves(billing_answer()),
    ));
    for (label, byte) in [("NUL", b'\0'), ("SOH", 1u8), ("a bare CR", b'\r'), ("a bare LF", b'\n')] {
        let mut value = bearer_value(&good);
        value.insert(20, byte);
        cases.push(auth(
            format!("{label} inside the Authorization field"),
            &[&value],
            Want::RejectedOrClosed(&[400, 401]),
        ));
    }

    // ---- Whole requests. ----
    let host = "Host: envoi.test\r\n";
    let auth_line = format!("Authorization: Bearer {good}\r\n");
    cases.push(raw(
        "authorization field name in lower case is valid",
        format!("GET / HTTP/1.1\r\n{host}authorization: Bearer {good}\r\nConnection: close\r\n\r\n"),
        Want::Serves(billing_answer()),
        &[],
    ));
    cases.push(raw(
        "HTTP/1.0 with a valid token",
        format!("GET / HTTP/1.0\r\n{auth_line}\r\n"),
        Want::Serves(billing_answer()),
        &[],
    ));
    cases.push(raw(
        "absolute-form request target with a valid token",
        format!("GET http://envoi.test/ HTTP/1.1\r\n{host}{auth_line}Connection: close\r\n\r\n"),
        Want::Serves(billing_answer()),
        &[],
    ));
    cases.push(raw(
        "Proxy-Authorization instead of Authorization",
        format!("GET / HTTP/1.1\r\n{host}Proxy-Authorization: Bearer {good}\r\nConnection: close\r\n\r\n"),
        Want::Refused,
        &[&good],
    ));
    cases.push(raw(
        "a space before the colon of Authorization",
        format!("GET / HTTP/1.1\r\n{host}Authorization : Bearer {good}\r\nConnection: close\r\n\r\n"),
        Want::RejectedOrClosed(&[400, 401]),
        &[&good],
    ));
    cases.push(raw(
        "Authorization folded over two lines (obs-fold)",
        format!("GET / HTTP/1.1\r\n{host}Authorization: Bearer\r\n {good}\r\nConnection: close\r\n\r\n"),
        Want::RejectedOrClosed(&[400, 401]),
        &[&good],
    ));
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HOSTILE"] {
        cases.push(raw(
            format!("{method} / with a valid token"),
            format!("{method} / HTTP/1.1\r\n{host}{auth_line}Connection: close\r\n\r\n"),
            Want::Status(405),
            &[&good],
        ));
    }
    cases.push(raw(
        "a lower-case get (methods are case-sensitive)",
        format!("get / HTTP/1.1\r\n{host}{auth_line}Connection: close\r\n\r\n"),
        Want::RejectedOrClosed(&[400, 405]),
        &[&good],
    ));
    cases.push(raw(
        "HEAD / with a valid token",
        format!("HEAD / HTTP/1.1\r\n{host}{auth_line}Connection: close\r\n\r\n"),
        Want::Status(405),
        &[&good],
    ));
    cases.push(raw(
        "CONNECT with a valid token",
        format!("CONNECT envoi.test:443 HTTP/1.1\r\n{host}{auth_line}Connection: close\r\n\r\n"),
        Want::RejectedOrClosed(&[400, 404, 405]),
        &[&good],
    ));
    cases.push(raw(
        "GET with a Content-Length body and a valid token",
        format!("GET / HTTP/1.1\r\n{host}{auth_line}Content-Length: 16\r\nConnection: close\r\n\r\nhostile-body-123"),
        Want::Status(413),
        &[&good, "hostile-body-123"],
    ));
    cases.push(raw(
        "GET with a chunked body and a valid token",
        format!(
            "GET / HTTP/1.1\r\n{host}{auth_line}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n10\r\nhostile-body-456\r\n0\r\n\r\n"
        ),
        Want::Status(413),
        &[&good, "hostile-body-456"],
    ));
    cases.push(raw(
        "POST with a body and a valid token",
        format!("POST / HTTP/1.1\r\n{host}{auth_line}Content-Length: 16\r\nConnection: close\r\n\r\nhostile-body-789"),
        // SPEC §1: the method is judged before the body.
        Want::Status(405),
        &[&good, "hostile-body-789"],
    ));
    cases.push(raw(
        "PUT with a chunked body and a valid token",
        format!(
            "PUT / HTTP/1.1\r\n{host}{auth_line}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n10\r\nhostile-body-abc\r\n0\r\n\r\n"
        ),
        Want::Status(405),
        &[&good, "hostile-body-abc"],
    ));
    for method in ["GET", "POST"] {
        cases.push(raw(
            format!("{method} with a body to an unknown path"),
            format!(
                "{method} /no/such/route HTTP/1.1\r\n{host}{auth_line}Content-Length: 16\r\nConnection: close\r\n\r\nhostile-body-def"
            ),
            Want::Status(404),
            &[&good, "hostile-body-def"],
        ));
    }
    cases.push(raw(
        "Content-Length and Transfer-Encoding together (smuggling)",
        format!(
            "GET / HTTP/1.1\r\n{host}{auth_line}Content-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
        ),
        Want::RejectedOrClosed(&[400, 413]),
        &[&good],
    ));
    cases.push(raw(
        "a negative Content-Length",
        format!("GET / HTTP/1.1\r\n{host}{auth_line}Content-Length: -1\r\nConnection: close\r\n\r\n"),
        Want::RejectedOrClosed(&[400, 413]),
        &[&good],
    ));
    cases.push(raw(
        "two different Content-Length fields",
        format!(
            "GET / HTTP/1.1\r\n{host}{auth_line}Content-Length: 0\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhostile"
        ),
        Want::RejectedOrClosed(&[400, 413]),
        &[&good],
    ));
    cases.push(raw(
        "the token in the query string only",
        format!("GET /?access_token={good} HTTP/1.1\r\n{host}Connection: close\r\n\r\n"),
        Want::Refused,
        &[&good],
    ));
    cases.push(raw(
        "the token in the query string, a bad one in the field",
        format!("GET /?token={good} HTTP/1.1\r\n{host}Authorization: Bearer x.y.z\r\nConnection: close\r\n\r\n"),
        Want::Refused,
        &[&good],
    ));
    cases.push(raw(
        "the token as the path",
        format!("GET /{good} HTTP/1.1\r\n{host}{auth_line}Connection: close\r\n\r\n"),
        Want::Status(404),
        &[&good],
    ));
    cases.push(raw(
        "a path traversal path with a valid token",
        format!("GET /../../etc/passwd HTTP/1.1\r\n{host}{auth_line}Connection: close\r\n\r\n"),
        Want::RejectedOrClosed(&[400, 404]),
        &[&good],
    ));
    cases.push(raw(
        "an encoded path traversal with a valid token",
        format!("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n{host}{auth_line}Connection: close\r\n\r\n"),
        Want::RejectedOrClosed(&[400, 404]),
        &[&good],
    ));
    cases.push(raw(
        "a garbage request line",
        format!("\u{1}\u{2}HOSTILE\r\n{auth_line}\r\n"),
        Want::RejectedOrClosed(&[400]),
        &[&good],
    ));
    cases.push(raw(
        "a TLS ClientHello on the plain port",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03hostile-client-hello-random-bytes\r\n\r\n".to_vec(),
        Want::RejectedOrClosed(&[400]),
        &[],
    ));
    cases.push(raw(
        "an HTTP/2 prior-knowledge preface",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        Want::RejectedOrClosed(&[400, 404, 405, 505]),
        &[],
    ));
    cases.push(raw(
        "160 KiB of headers with a valid token",
        head_of_size(&good, 160),
        Want::RejectedOrClosed(&[400, 431]),
        &[&good],
    ));
    cases.push(raw(
        "a 40 KiB Authorization field",
        format!(
            "GET / HTTP/1.1\r\n{host}Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
            "A".repeat(40 * 1024)
        ),
        Want::RejectedOrClosed(&[400, 401, 431]),
        &[&"A".repeat(64)],
    ));
    cases.push(raw(
        "200 header fields with a valid token",
        format!(
            "GET / HTTP/1.1\r\n{host}{auth_line}{}Connection: close\r\n\r\n",
            (0..200).map(|n| format!("X-H{n}: v\r\n")).collect::<String>()
        ),
        Want::RejectedOrClosed(&[400, 431]),
        &[&good],
    ));
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
