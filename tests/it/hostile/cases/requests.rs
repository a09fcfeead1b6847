//! How the token is carried: the `Authorization` field, and whole requests (methods,
//! bodies, heads).

use super::*;

pub(super) fn push(cases: &mut Vec<Case>, given: &Given) {
    let Given { good, .. } = given.clone();

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
}
