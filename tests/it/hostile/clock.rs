//! The time rules to the second: at a fixed clock through `Verifier::verify`, and over
//! HTTP on a server with no leeway.

use envoi::auth::{AuthError, SigningKey, TokenRules, Verifier};
use envoi::startup::Edges;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::cases::{Case, Request, Want};
use super::fixture::*;

/// 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

fn verifier(leeway: u64) -> Verifier {
    Verifier::new(
        &[SigningKey::new(SecretString::from(KEY))],
        TokenRules {
            leeway_seconds: leeway,
            max_lifetime_seconds: MAX_LIFETIME as u64,
        },
    )
}

/// A token for [`BILLING`] with these times (absent when `None`).
fn token_at(iat: Option<i64>, exp: Option<i64>, nbf: Option<i64>) -> String {
    let mut claims = json!({"projectId": BILLING[0], "nfObjectType": BILLING[1], "nfObjectId": BILLING[2]});
    for (name, value) in [("iat", iat), ("exp", exp), ("nbf", nbf)] {
        if let Some(value) = value {
            claims[name] = Value::from(value);
        }
    }
    jwt(HS256, &claims.to_string())
}

/// A label, a verifier, `iat`, `exp`, `nbf`, and the outcome a correct verifier gives.
type Row<'a> = (
    &'a str,
    &'a Verifier,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Result<(), AuthError>,
);

#[test]
fn time_limits_hold_to_the_second_at_a_fixed_clock() {
    let (v30, v0) = (verifier(LEEWAY as u64), verifier(0));
    let max = MAX_LIFETIME;
    #[rustfmt::skip]
    let table: [Row; 20] = [
        ("leeway 0: exp = now", &v0, None, Some(NOW), None, Err(AuthError::Expired)),
        ("leeway 0: exp = now + 1", &v0, None, Some(NOW + 1), None, Ok(())),
        ("leeway 0: exp = now - 1", &v0, None, Some(NOW - 1), None, Err(AuthError::Expired)),
        ("leeway 30: exp = now - 30", &v30, None, Some(NOW - 30), None, Err(AuthError::Expired)),
        ("leeway 30: exp = now - 29", &v30, None, Some(NOW - 29), None, Ok(())),
        ("leeway 30: exp = now - 31", &v30, None, Some(NOW - 31), None, Err(AuthError::Expired)),
        ("leeway 30: exp missing", &v30, Some(NOW), None, None, Err(AuthError::BadClaims)),
        ("leeway 0: nbf = now", &v0, None, Some(NOW + 60), Some(NOW), Ok(())),
        ("leeway 0: nbf = now + 1", &v0, None, Some(NOW + 60), Some(NOW + 1), Err(AuthError::NotYetValid)),
        ("leeway 30: nbf = now + 30", &v30, None, Some(NOW + 60), Some(NOW + 30), Ok(())),
        ("leeway 30: nbf = now + 31", &v30, None, Some(NOW + 60), Some(NOW + 31), Err(AuthError::NotYetValid)),
        ("leeway 0: iat = now + 1", &v0, Some(NOW + 1), Some(NOW + 60), None, Err(AuthError::NotYetValid)),
        ("leeway 30: iat = now + 30", &v30, Some(NOW + 30), Some(NOW + 60), None, Ok(())),
        ("leeway 30: iat = now + 31", &v30, Some(NOW + 31), Some(NOW + 60), None, Err(AuthError::NotYetValid)),
        ("leeway 0: exp = now + max", &v0, Some(NOW), Some(NOW + max), None, Ok(())),
        ("leeway 0: exp = now + max + 1", &v0, Some(NOW), Some(NOW + max + 1), None, Err(AuthError::TooLongLived)),
        ("leeway 30: exp = now + max + 31", &v30, Some(NOW), Some(NOW + max + 31), None, Err(AuthError::TooLongLived)),
        ("leeway 0: iat = now - 30 days, exp = now + 1 h", &v0, Some(NOW - 30 * 86_400), Some(NOW + 3_600), None, Err(AuthError::TooLongLived)),
        ("leeway 0: exp - iat = max, minted 100 s ago", &v0, Some(NOW - 100), Some(NOW - 100 + max), None, Ok(())),
        ("leeway 0: exp - iat = max + 1, minted 100 s ago", &v0, Some(NOW - 100), Some(NOW - 99 + max), None, Err(AuthError::TooLongLived)),
    ];
    let mut failures = Vec::new();
    for (label, verifier, iat, exp, nbf, want) in table {
        let token = token_at(iat, exp, nbf);
        let got = verifier.verify(token.as_bytes(), NOW).map(|workload| {
            assert_eq!(
                [workload.project(), workload.kind(), workload.id()],
                BILLING,
                "{label}: the workload the token names"
            );
        });
        if got != want {
            failures.push(format!("{label}: {got:?} instead of {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn without_leeway_the_clock_edges_hold_over_http() {
    let server = start_server_with(0, &Edges::default());
    let cases = [
        case("leeway 0: exp = now is refused", Want::Refused, || {
            jwt(HS256, &claims_with(|c| shift(c, "exp", 0)))
        }),
        case(
            "leeway 0: exp = now + 2 is served",
            Want::Serves(billing_answer()),
            || jwt(HS256, &claims_with(|c| shift(c, "exp", 2))),
        ),
        case("leeway 0: nbf = now + 2 is refused", Want::Refused, || {
            jwt(HS256, &claims_with(|c| shift(c, "nbf", 2)))
        }),
        case("leeway 0: iat = now + 2 is refused", Want::Refused, || {
            jwt(HS256, &claims_with(|c| shift(c, "iat", 2)))
        }),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| super::run(&server, case).0.err().map(|e| format!("{}: {e}", case.name)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn case(name: &str, want: Want, mint: fn() -> String) -> Case {
    Case {
        name: name.into(),
        request: Request::Timed(mint),
        want,
        needles: Vec::new(),
    }
}

fn shift(claims: &mut serde_json::Map<String, Value>, name: &str, offset: i64) {
    claims.insert(name.into(), json!(now() + offset));
}
