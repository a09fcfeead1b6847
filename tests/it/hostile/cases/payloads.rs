//! What a signed token says: duplicate claims, claims of the wrong type, clock edges,
//! hostile names, sizes and shapes.

use serde_json::{json, Value};

use super::*;

pub(super) fn push(cases: &mut Vec<Case>) {
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

    // ---- Names written with JSON escapes are the names they spell. ----
    {
        let now = now();
        cases.push(serves(
            "claims spelt with JSON escapes (\\u0062illing, servic\\u0065, a\\u0070i)",
            jwt(
                HS256,
                &format!(
                    r#"{{"projectId":"\u0062illing","nfObjectType":"servic\u0065","nfObjectId":"a\u0070i","iat":{now},"exp":{}}}"#,
                    now + 3600
                ),
            ),
            billing_answer(),
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
}
