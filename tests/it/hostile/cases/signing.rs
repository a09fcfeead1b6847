//! How a token is signed: controls, `alg` none and algorithm confusion, signatures,
//! keys and near misses, key-sourcing and critical header parameters, encodings.

use serde_json::json;

use super::*;

pub(super) fn push(cases: &mut Vec<Case>, given: &Given) {
    let Given {
        good,
        h64,
        c64,
        s64,
        claims,
    } = given.clone();

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
}
