//! Slow clients and connection floods: a client that never finishes its request head
//! is cut off within about the request timeout, and neither it nor hundreds of idle
//! connections keep honest clients from being served.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use envoi::http::limit::FailureLimiter;
use envoi::startup::{Edges, Limits};

use super::fixture::*;

const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// How long past the request timeout a cut may take on a busy machine.
const GRACE: Duration = Duration::from_millis(2500);

fn short_timeout_server() -> TestApp {
    start_server_with(
        LEEWAY as u64,
        &Edges {
            limits: Limits {
                request_timeout: REQUEST_TIMEOUT,
                ..Default::default()
            },
            ..Default::default()
        },
    )
}

/// An honest request on its own connection is served in full.
fn assert_honest_request_served(server: &TestApp, context: &str) {
    let started = Instant::now();
    match server.get_bearer(&good_token()) {
        Outcome::Answer(answer) => {
            assert_eq!(
                answer.status,
                200,
                "{context}: honest request got {}",
                answer.body_text()
            );
            let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
            assert_eq!(body, billing_answer(), "{context}: honest answer");
        }
        other => panic!("{context}: honest request got no answer: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{context}: honest request took {:?}",
        started.elapsed()
    );
}

/// What ending a stalled connection may look like: closed, or a 408 that echoes nothing.
fn assert_cut_off(outcome: &Outcome, token: &str, context: &str) {
    match outcome {
        Outcome::Closed { partial } => assert!(
            !contains(partial, token.as_bytes()),
            "{context}: echoed the token while closing"
        ),
        Outcome::Answer(answer) => {
            assert_eq!(answer.status, 408, "{context}: {}", answer.body_text());
            for needle in [token, segments(token)[2]] {
                assert!(
                    !contains(&answer.raw, needle.as_bytes()),
                    "{context}: 408 echoes the token"
                );
            }
        }
        Outcome::TimedOut { partial } => panic!(
            "{context}: still open after the time allowed (got {:?})",
            String::from_utf8_lossy(partial)
        ),
    }
}

#[test]
fn a_stalled_request_head_is_cut_off_while_an_honest_client_is_served() {
    let server = short_timeout_server();
    let token = good_token();
    let mut slow = server.connect();
    let started = Instant::now();
    // A whole valid request but for the blank line that ends the head.
    slow.write_all(format!("GET / HTTP/1.1\r\nHost: envoi.test\r\nAuthorization: Bearer {token}\r\n").as_bytes())
        .expect("the partial head is sent");

    assert_honest_request_served(&server, "while a client stalls");
    let outcome = read_answer(&mut slow, false, REQUEST_TIMEOUT + GRACE + Duration::from_secs(2));
    let took = started.elapsed();
    assert_cut_off(&outcome, &token, "stalled head");
    assert!(
        took >= REQUEST_TIMEOUT - Duration::from_millis(100),
        "cut off after {took:?}, before the request timeout: not the timeout at work"
    );
    assert!(took <= REQUEST_TIMEOUT + GRACE, "cut off only after {took:?}");
}

#[test]
fn a_head_dribbled_byte_by_byte_is_cut_off() {
    let server = short_timeout_server();
    let token = good_token();
    let mut slow = server.connect();
    let mut head = format!("GET / HTTP/1.1\r\nHost: envoi.test\r\nAuthorization: Bearer {token}\r\n").into_bytes();
    head.extend(
        std::iter::repeat_n(b'x', 10_000)
            .enumerate()
            .map(|(n, b)| if n % 50 == 0 { b'\n' } else { b }),
    );
    slow.set_read_timeout(Some(Duration::from_millis(40)))
        .expect("a read timeout");
    let started = Instant::now();
    let limit = REQUEST_TIMEOUT + GRACE + Duration::from_secs(2);
    let mut received = Vec::new();
    let mut ended = None;
    for byte in head {
        // A byte every ~40 ms: each one arrives well within any per-read timeout.
        if slow.write_all(&[byte]).is_err() {
            ended = Some(started.elapsed());
            break;
        }
        let mut buffer = [0u8; 4096];
        match read_some(&mut slow, &mut buffer) {
            Ok(0) => {
                ended = Some(started.elapsed());
                break;
            }
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                ended = Some(started.elapsed());
                break;
            }
        }
        if !received.is_empty() || started.elapsed() > limit {
            ended = Some(started.elapsed());
            break;
        }
    }
    assert_honest_request_served(&server, "after a dribbling client");
    let took = ended.expect("the loop ends");
    assert!(
        took <= REQUEST_TIMEOUT + GRACE,
        "a dribbling client kept its connection {took:?}"
    );
    if !received.is_empty() {
        let _ = slow.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = slow.read_to_end(&mut received);
        assert!(
            received.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&received)
        );
        assert!(!contains(&received, token.as_bytes()), "the 408 echoes the token");
    }
}

#[test]
fn three_hundred_idle_connections_do_not_stop_honest_requests() {
    // The default limits: a 5 s request timeout, so the flood stays open throughout.
    let server = start_server();
    let mut flood: Vec<TcpStream> = (0..300).map(|_| server.connect()).collect();
    for (n, stream) in flood.iter_mut().enumerate() {
        // Half of them idle silently, half stall after a partial head.
        if n % 2 == 1 {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: envoi.test\r\n")
                .expect("a partial head");
        }
    }
    let started = Instant::now();
    for n in 0..10 {
        assert_honest_request_served(&server, &format!("honest request {n} among 300 idle connections"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "10 honest requests took {:?} beside the flood",
        started.elapsed()
    );
    // The flood was not merely refused at once: its connections are still open.
    let mut probe = [0u8; 1];
    flood[0]
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("a read timeout");
    assert!(
        matches!(read_some(&mut flood[0], &mut probe), Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "an idle connection of the flood was closed at once"
    );
}

#[test]
fn failed_authentications_are_limited_per_peer_whatever_forwarded_headers_say() {
    const LIMIT: u32 = 5;
    let server = start_server_limited(
        LEEWAY as u64,
        &Edges::default(),
        Some(FailureLimiter::new(LIMIT, Vec::new())),
    );
    let bad = jwt_with(
        MacAlg::Sha256,
        STRANGER_KEY.as_bytes(),
        HS256,
        &claims_for(BILLING).to_string(),
    );
    let good = good_token();
    let get = |token: &str, forwarded: u32| {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: envoi.test\r\nAuthorization: Bearer {token}\r\n\
             X-Forwarded-For: 203.0.113.{forwarded}\r\nX-Real-IP: 198.51.100.{forwarded}\r\n\
             Forwarded: for=192.0.2.{forwarded}\r\nConnection: close\r\n\r\n"
        );
        match server.exchange(request.as_bytes()) {
            Outcome::Answer(answer) => answer,
            other => panic!("no answer: {other:?}"),
        }
    };
    // Under the limit, a valid token is served between failures.
    assert_eq!(get(&good, 0).status, 200);
    for n in 0..LIMIT {
        // Each failure claims another client address: the peer is what counts.
        let answer = get(&bad, n + 1);
        assert_eq!(answer.status, 401, "failure {n}: {}", answer.body_text());
    }
    for (token, label) in [(&bad, "a bad token"), (&good, "a valid token")] {
        let answer = get(token, 99);
        assert_eq!(answer.status, 429, "{label} past the limit: {}", answer.body_text());
        assert_eq!(
            answer.header_text("retry-after").as_deref(),
            Some("60"),
            "{label}: Retry-After"
        );
        assert_eq!(answer.body_text(), r#"{"error":"too many failed authentications"}"#);
        for needle in [token.as_str(), segments(token)[2], "203.0.113", "198.51.100", "192.0.2"] {
            assert!(
                !contains(&answer.raw, needle.as_bytes()),
                "{label}: 429 echoes {needle}"
            );
        }
        for secret in SECRET_VALUES {
            assert!(!contains(&answer.raw, secret.as_bytes()), "{label}: 429 holds a value");
        }
    }
}

#[test]
fn pipelined_requests_get_their_own_answers_in_order() {
    let server = start_server();
    let admin = token_for(["admin", "job", "root"]);
    let request = |token: &str, last: bool| {
        format!(
            "GET / HTTP/1.1\r\nHost: envoi.test\r\nAuthorization: Bearer {token}\r\n{}\r\n",
            if last { "Connection: close\r\n" } else { "" }
        )
    };
    // Three requests in one write: billing, an attacker's bad token, admin.
    let pipelined = [
        request(&good_token(), false),
        request("x.y.z", false),
        request(&admin, true),
    ]
    .concat();
    let mut stream = server.connect();
    stream.write_all(pipelined.as_bytes()).expect("the requests are sent");
    let mut received = Vec::new();
    let started = Instant::now();
    let mut chunk = [0u8; 16 * 1024];
    while started.elapsed() < Duration::from_secs(5) {
        match read_some(&mut stream, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
    let answers = parse_answers(&received);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 401, 200], "{}", String::from_utf8_lossy(&received));
    let body = |n: usize| serde_json::from_slice::<serde_json::Value>(&answers[n].body).expect("JSON");
    assert_eq!(body(0), billing_answer());
    assert_eq!(answers[1].body_text(), r#"{"error":"unauthorized"}"#);
    assert!(!contains(&answers[1].raw, SECRET_VALUES[0].as_bytes()));
    assert_eq!(
        body(2),
        serde_json::json!({"secrets": [{"type": "ENV", "key": "ROOT", "value": "admin-root-HOSTILE-c0de"}]})
    );
}

/// The queue of connections not yet accepted is as long as `server.backlog` says: a
/// fleet starting at once overflowed std's 128, and each connection whose SYN was dropped
/// waited a second for its retry. `ss` shows a listener's queue length as its Send-Q.
#[test]
fn the_listener_queues_as_many_connections_as_the_backlog_setting_says() {
    let server = start_server_with(
        LEEWAY as u64,
        &Edges {
            limits: Limits {
                backlog: 777,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let port = server.addr.port();
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let queue: Vec<&str> = text.lines().filter_map(|line| line.split_whitespace().nth(2)).collect();
    assert_eq!(queue, ["777"], "ss -ltn for port {port}:\n{text}");
}
