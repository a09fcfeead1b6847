//! Clients that stall after a first answer: actix-http times only a connection's first
//! request head and an idle connection only after a whole request, so these held their
//! connections forever (20,000 of them took envoi to its file limit) until every
//! connection became an `AnswerDeadline` (src/http/deadline.rs).

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use envoi::startup::{Edges, Limits};

use super::fixture::*;

/// Not shorter: actix-http takes the first head's deadline from a clock it updates every
/// 500 ms, so a shorter timeout can expire before an honest request arrives.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// How long past its bound a cut may take on a busy machine.
const GRACE: Duration = Duration::from_millis(2500);

fn server() -> TestApp {
    start_server_with(
        LEEWAY as u64,
        &Edges {
            limits: Limits {
                request_timeout: REQUEST_TIMEOUT,
                keep_alive: KEEP_ALIVE,
                ..Default::default()
            },
            ..Default::default()
        },
    )
}

/// Writes `drip` a byte every 50 ms (none if empty) until the server closes the
/// connection; how long that took from `started`, or `None` past `limit`.
fn closed_after(stream: &mut TcpStream, drip: &[u8], started: Instant, limit: Duration) -> Option<Duration> {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("a read timeout");
    let mut bytes = drip.iter().cycle();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < limit {
        if let Some(byte) = bytes.next() {
            if stream.write_all(&[*byte]).is_err() {
                return Some(started.elapsed());
            }
        }
        match read_some(stream, &mut buffer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

fn honest_request_served(server: &TestApp, context: &str) {
    match server.get_bearer(&good_token()) {
        Outcome::Answer(answer) => assert_eq!(answer.status, 200, "{context}: {}", answer.body_text()),
        other => panic!("{context}: no answer: {other:?}"),
    }
}

#[test]
fn a_next_request_dribbled_after_an_answer_is_cut_off() {
    let server = server();
    let mut slow = server.connect();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: envoi.test\r\n\r\n")
        .expect("the first request is sent");
    match read_answer(&mut slow, false, Duration::from_secs(5)) {
        Outcome::Answer(answer) => assert_eq!(answer.status, 200),
        other => panic!("the first request got no answer: {other:?}"),
    }
    let started = Instant::now();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: envoi.test\r\nAuthorization: Bearer {}\r\n",
        good_token()
    );
    let took = closed_after(&mut slow, head.as_bytes(), started, 2 * REQUEST_TIMEOUT + GRACE)
        .expect("a second head sent a byte at a time kept its connection");
    assert!(
        took >= REQUEST_TIMEOUT,
        "cut off after {took:?}, before the request timeout"
    );
    honest_request_served(&server, "after the dribbling client");
}

#[test]
fn a_body_that_never_ends_does_not_hold_its_connection() {
    let server = server();
    for (drip, bound, what) in [
        (&b"1\r\nx\r\n"[..], 2 * REQUEST_TIMEOUT, "sent slowly"),
        (&b""[..], KEEP_ALIVE + 2 * REQUEST_TIMEOUT, "never sent"),
    ] {
        for path in ["/", "/nowhere"] {
            let mut stream = server.connect();
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: envoi.test\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes(),
                )
                .expect("the head is sent");
            match read_answer(&mut stream, false, Duration::from_secs(5)) {
                Outcome::Answer(answer) => assert_eq!(
                    answer.header_text("connection").as_deref(),
                    Some("close"),
                    "{path}, a body {what}: the answer does not say the connection closes"
                ),
                other => panic!("{path}: no answer: {other:?}"),
            }
            let started = Instant::now();
            let took = closed_after(&mut stream, drip, started, bound + GRACE);
            assert!(took.is_some(), "{path}, a body {what}: the connection stayed open");
        }
    }
    honest_request_served(&server, "after the unfinished bodies");
}

#[test]
fn an_honest_kept_alive_connection_is_not_cut_off() {
    let server = server();
    let mut stream = server.connect();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: envoi.test\r\nAuthorization: Bearer {}\r\n\r\n",
        good_token()
    );
    let started = Instant::now();
    let mut answers = 0;
    // Requests 300 ms apart for over three request timeouts and past the keep-alive time.
    while started.elapsed() < KEEP_ALIVE + 3 * REQUEST_TIMEOUT {
        stream.write_all(request.as_bytes()).expect("a request is sent");
        match read_answer(&mut stream, false, Duration::from_secs(5)) {
            Outcome::Answer(answer) => assert_eq!(answer.status, 200, "{}", answer.body_text()),
            other => panic!("answer {answers} on a kept-alive connection: {other:?}"),
        }
        answers += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(answers >= 7, "{answers} answers");
}
