//! Tokens: the valid ones are accepted, every other one gets a bare 401, and any
//! configured key verifies.

use serde_json::{json, Value};

use super::*;

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
