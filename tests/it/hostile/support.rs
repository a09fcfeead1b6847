//! The harness: a real envoi server on a free port, a raw HTTP/1.1 client over
//! `std::net::TcpStream` (so that requests no well-behaved client would send can be
//! sent), tokens crafted byte by byte, and a capture of every log line the process
//! writes.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use envoi::auth::{SigningKey, TokenRules, Verifier};
use envoi::http::limit::FailureLimiter;
use envoi::http::AppState;
use envoi::startup::{Application, Edges, ServerOptions};
use envoi::store::PolicyHolder;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::{Sha256, Sha384, Sha512};

// ---- Keys, policy and workloads: obviously fake, for these tests only. ----

/// The key every test server trusts first.
pub const KEY: &str = "hostile-test-key-current-0d5e9a";
/// The previous key of a rotation: trusted too.
pub const OLD_KEY: &str = "hostile-test-key-previous-77b1";
/// A key no test server trusts.
pub const STRANGER_KEY: &str = "hostile-test-key-of-a-stranger";

pub const LEEWAY: i64 = 30;
pub const MAX_LIFETIME: i64 = 7 * 24 * 3600;

/// Every secret value the policy holds. None may appear in an error answer, in a
/// response header or in a log line, ever.
pub const SECRET_VALUES: [&str; 4] = [
    "sk_live_HOSTILE_stripe_4242",
    "db-pass-HOSTILE-91ac",
    "shop-token-HOSTILE-5e3f",
    "admin-root-HOSTILE-c0de",
];

pub const POLICY: &str = r#"
[secrets.stripe_key]
value = "sk_live_HOSTILE_stripe_4242"

[secrets.db_password]
value = "db-pass-HOSTILE-91ac"

[secrets.shop_token]
value = "shop-token-HOSTILE-5e3f"

[secrets.admin_root]
value = "admin-root-HOSTILE-c0de"

[[grants]]
name = "billing-api"
project = "billing"
type = "service"
id = "api"
env = { STRIPE_KEY = "stripe_key" }

[[grants.files]]
path = "/etc/billing/db_password"
secret = "db_password"
mode = "0400"

[[grants]]
name = "shops"
project = "shop-*"
env = { SHOP_TOKEN = "shop_token", DB_URL = { template = "postgres://app@db/${projectId}" } }

[[grants]]
name = "admin"
project = "admin"
type = "job"
id = "root"
env = { ROOT = "admin_root" }
"#;

/// The workload most cases speak for, and what it receives.
pub const BILLING: [&str; 3] = ["billing", "service", "api"];

pub fn billing_answer() -> Value {
    json!({"secrets": [
        {"type": "ENV", "key": "STRIPE_KEY", "value": "sk_live_HOSTILE_stripe_4242"},
        {"type": "FILE", "path": "/etc/billing/db_password", "data": "db-pass-HOSTILE-91ac",
         "permissions": {"policy": "AlwaysSet", "mode": "0400"}},
    ]})
}

/// What a `shop-*` project receives: its name spliced into a template, as text.
pub fn shop_answer(project: &str) -> Value {
    json!({"secrets": [
        {"type": "ENV", "key": "DB_URL", "value": format!("postgres://app@db/{project}")},
        {"type": "ENV", "key": "SHOP_TOKEN", "value": "shop-token-HOSTILE-5e3f"},
    ]})
}

pub fn empty_answer() -> Value {
    json!({"secrets": []})
}

// ---- Tokens ----

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// Waits, if need be, until the clock is early in a second, so that a case whose
/// outcome hangs on one second cannot straddle a tick between minting and checking.
pub fn early_in_a_second() {
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .subsec_nanos();
        if nanos < 400_000_000 {
            return;
        }
        std::thread::sleep(Duration::from_nanos(u64::from(1_000_000_000 - nanos) + 1_000_000));
    }
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Clone, Copy, Debug)]
pub enum MacAlg {
    Sha256,
    Sha384,
    Sha512,
}

pub fn mac(alg: MacAlg, key: &[u8], input: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        MacAlg::Sha256 => run::<Hmac<Sha256>>(key, input),
        MacAlg::Sha384 => run::<Hmac<Sha384>>(key, input),
        MacAlg::Sha512 => run::<Hmac<Sha512>>(key, input),
    }
}

/// `b64(header).b64(claims)`, the signing input.
pub fn signing_input(header: &[u8], claims: &[u8]) -> String {
    format!("{}.{}", b64(header), b64(claims))
}

/// A compact JWT of arbitrary header and claims bytes, HMAC-signed with `alg` and
/// `key` whatever the header says.
pub fn jwt_with(alg: MacAlg, key: &[u8], header: &str, claims: &str) -> String {
    jwt_bytes(alg, key, header.as_bytes(), claims.as_bytes())
}

pub fn jwt_bytes(alg: MacAlg, key: &[u8], header: &[u8], claims: &[u8]) -> String {
    let input = signing_input(header, claims);
    let signature = mac(alg, key, input.as_bytes());
    format!("{input}.{}", b64(signature))
}

/// HS256 with [`KEY`].
pub fn jwt(header: &str, claims: &str) -> String {
    jwt_with(MacAlg::Sha256, KEY.as_bytes(), header, claims)
}

pub const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Claims for `[project, type, id]`, issued now, valid an hour, as JSON text.
pub fn claims_for(w: [&str; 3]) -> Value {
    let now = now();
    json!({"projectId": w[0], "nfObjectType": w[1], "nfObjectId": w[2], "iat": now, "exp": now + 3600})
}

/// Claims of [`BILLING`] changed by `edit`.
pub fn claims_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut claims = claims_for(BILLING);
    edit(claims.as_object_mut().expect("an object"));
    claims.to_string()
}

/// A valid token for [`BILLING`].
pub fn good_token() -> String {
    jwt(HS256, &claims_for(BILLING).to_string())
}

pub fn token_for(w: [&str; 3]) -> String {
    jwt(HS256, &claims_for(w).to_string())
}

/// Splits a compact token into its segments.
pub fn segments(token: &str) -> Vec<&str> {
    token.split('.').collect()
}

// ---- Logs ----

/// Every log line of this process (the server runs in it), from the first server on.
pub fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        // Everything envoi and its HTTP stack log, at every level, in both formats'
        // source: the fields, not only the messages.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init();
        buffer
    })
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured logs as text.
pub fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

// ---- The server ----

pub struct Server {
    pub addr: SocketAddr,
    /// Runs the server's accept loop; its workers have threads of their own.
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    /// A server trusting [`KEY`] and [`OLD_KEY`] with the default limits.
    pub fn start() -> Self {
        Self::start_with(LEEWAY as u64, &Edges::default())
    }

    pub fn start_with(leeway: u64, edges: &Edges) -> Self {
        Self::start_limited(leeway, edges, None)
    }

    /// As [`Server::start_with`], with a bound on failed authentications per address.
    pub fn start_limited(leeway: u64, edges: &Edges, limiter: Option<FailureLimiter>) -> Self {
        logs();
        let keys = [KEY, OLD_KEY].map(|k| SigningKey::new(SecretString::from(k)));
        let verifier = Verifier::new(
            &keys,
            TokenRules {
                leeway_seconds: leeway,
                max_lifetime_seconds: MAX_LIFETIME as u64,
            },
        );
        let policy = envoi::policy::load_str("hostile.toml", POLICY, None).expect("the test policy loads");
        let state = AppState::new(verifier, Arc::new(PolicyHolder::with_policy(policy))).with_failure_limit(limiter);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let app = runtime
            .block_on(async {
                Application::build_with(
                    state,
                    &ServerOptions {
                        listen: "127.0.0.1:0".into(),
                        workers: 1,
                        shutdown_timeout: Duration::from_secs(1),
                    },
                    edges,
                )
            })
            .expect("the test server binds a free port");
        let addr = app.address();
        runtime.spawn(app.run_until_stopped());
        let server = Self {
            addr,
            _runtime: runtime,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let request = b"GET /healthz HTTP/1.1\r\nHost: envoi.test\r\nConnection: close\r\n\r\n";
            if let Outcome::Answer(answer) = self.exchange(request) {
                if answer.status == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the test server never became healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).expect("the server accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("a write timeout");
        stream
    }

    /// Sends `request` on a new connection and reads until the answer is whole, the
    /// server closes, or 5 s pass.
    pub fn exchange(&self, request: &[u8]) -> Outcome {
        let mut stream = self.connect();
        // The server may answer and close before it has read everything (a refused
        // body, an oversized head): a failed write is not yet a verdict.
        let _ = stream.write_all(request);
        let head_only = request.starts_with(b"HEAD ");
        read_answer(&mut stream, head_only, Duration::from_secs(5))
    }

    /// `GET /` with exactly these `Authorization` field values (raw bytes).
    pub fn get_with_authorization(&self, values: &[&[u8]]) -> Outcome {
        let mut request = b"GET / HTTP/1.1\r\nHost: envoi.test\r\n".to_vec();
        for value in values {
            request.extend_from_slice(b"Authorization: ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"Connection: close\r\n\r\n");
        self.exchange(&request)
    }

    pub fn get_bearer(&self, token: &str) -> Outcome {
        self.get_with_authorization(&[format!("Bearer {token}").as_bytes()])
    }
}

// ---- Answers ----

#[derive(Debug)]
pub enum Outcome {
    /// A complete HTTP answer.
    Answer(Answer),
    /// The server closed (or reset) the connection without a complete answer.
    Closed { partial: Vec<u8> },
    /// Nothing conclusive within the time allowed: a hang.
    TimedOut { partial: Vec<u8> },
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The answer as received, head and body.
    pub raw: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    pub fn header_text(&self, name: &str) -> Option<String> {
        self.header(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
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

/// An answer if `bytes` hold a whole one (`closed`: the connection has ended, so a
/// body without framing ends here).
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
