//! HTTP/1.1 by hand over a `std::net::TcpStream`: any bytes can be sent (requests no
//! well-behaved client would send), the answer is read until it is whole, the server
//! closes, or the time allowed runs out, and nothing waits on a runtime.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a connection, a write or an answer may take in [`exchange`].
const PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum Outcome {
    /// A complete HTTP answer.
    Answer(Answer),
    /// The server closed (or reset) the connection without a complete answer.
    Closed { partial: Vec<u8> },
    /// Nothing conclusive within the time allowed: a hang.
    TimedOut { partial: Vec<u8> },
}

pub struct Answer {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The answer as received, head and body.
    pub raw: Vec<u8>,
}

impl Answer {
    /// The first value of the header `name` (in any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub fn header_text(&self, name: &str) -> Option<String> {
        self.header(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// The answer as text, so that a failure message can be read.
impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("headers", &headers)
            .field("body", &self.body_text())
            .finish()
    }
}

/// A connection to `addr`, with 5 s timeouts; panics if the server does not accept.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("the server accepts");
    stream.set_read_timeout(Some(PATIENCE)).expect("a read timeout");
    stream.set_write_timeout(Some(PATIENCE)).expect("a write timeout");
    stream
}

/// Sends `request` on a new connection and reads until the answer is whole, the server
/// closes, or 5 s pass.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Outcome {
    let mut stream = connect(addr);
    // The server may answer and close before it has read everything (a refused body, an
    // oversized head): a failed write is not yet a verdict.
    let _ = stream.write_all(request);
    let head_only = request.starts_with(b"HEAD ");
    read_answer(&mut stream, head_only, PATIENCE)
}

/// `GET path` on `address`, with a bearer token when given; the whole exchange takes at
/// most `timeout`. A refused connection, a hang and a connection closed early are errors.
pub fn get(address: SocketAddr, path: &str, token: Option<&str>, timeout: Duration) -> std::io::Result<Answer> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_write_timeout(Some(timeout))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let left = deadline.saturating_duration_since(Instant::now());
    match read_answer(&mut stream, false, left) {
        Outcome::Answer(answer) => Ok(answer),
        Outcome::TimedOut { .. } => Err(std::io::Error::new(ErrorKind::TimedOut, "no full answer in time")),
        Outcome::Closed { partial } => Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            format!("closed after {} bytes, without a full answer", partial.len()),
        )),
    }
}

/// `stream.read(buf)`, read again when a signal interrupts it. A socket read with a
/// timeout is never restarted after a signal handler runs (signal(7)), and this process
/// has one: assert_cmd's wait for a child with a timeout handles SIGCHLD, so any child
/// of any test that ends interrupts the reads of the others.
pub fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            done => return done,
        }
    }
}

/// Reads one answer from `stream`: status line, headers, then a body framed by
/// Content-Length, chunked coding or the end of the connection.
pub fn read_answer(stream: &mut TcpStream, head_only: bool, limit: Duration) -> Outcome {
    let deadline = Instant::now() + limit;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(answer) = parse_answer(&buffer, head_only, false) {
            return Outcome::Answer(answer);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::TimedOut { partial: buffer };
        }
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("a read timeout");
        match stream.read(&mut chunk) {
            Ok(0) => {
                return match parse_answer(&buffer, head_only, true) {
                    Some(answer) => Outcome::Answer(answer),
                    None => Outcome::Closed { partial: buffer },
                }
            }
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Outcome::TimedOut { partial: buffer }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                return match parse_answer(&buffer, head_only, true) {
                    Some(answer) => Outcome::Answer(answer),
                    None => Outcome::Closed { partial: buffer },
                }
            }
        }
    }
}

/// An answer if `bytes` hold a whole one (`closed`: the connection has ended, so a body
/// without framing ends here).
pub fn parse_answer(bytes: &[u8], head_only: bool, closed: bool) -> Option<Answer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut words = status_line.splitn(3, ' ');
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = words.next()?.parse().ok()?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().as_bytes().to_vec()));
    }
    let rest = &bytes[end + 4..];
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let body = if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if let Some(length) = find("content-length") {
        let length: usize = std::str::from_utf8(&length).ok()?.parse().ok()?;
        if rest.len() < length {
            return None;
        }
        rest[..length].to_vec()
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked")) {
        dechunk(rest)?
    } else if closed {
        rest.to_vec()
    } else {
        return None;
    };
    Some(Answer {
        status,
        headers,
        body,
        raw: bytes.to_vec(),
    })
}

/// Every whole answer in `bytes`, in order (answers framed by Content-Length).
pub fn parse_answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while let Some(answer) = parse_answer(bytes, false, false) {
        let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
            break;
        };
        let used = end + 4 + answer.body.len();
        answers.push(Answer {
            raw: bytes[..used].to_vec(),
            ..answer
        });
        bytes = &bytes[used..];
    }
    answers
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if rest.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Whether `haystack` contains `needle`, bytewise.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
