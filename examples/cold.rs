//! The cold-start client of bench/cold.sh (issue 15): every request on a NEW TCP
//! connection with a FULL TLS handshake, as a workload that has just started makes it.
//!
//! rustls (ring) with `Resumption::disabled()` (no tickets, no session ids: nothing is
//! ever resumed), TLS 1.3 only, ALPN http/1.1; or plain HTTP. Each connection sends
//! `GET / HTTP/1.1` with `Host`, `Authorization: Bearer <token>` and `Connection: close`,
//! reads the whole answer until the server closes, checks its status (and, in a burst,
//! that it names its workload), and closes.
//!
//! Modes:
//!   --duration S --concurrency C   sustained cold connections for S seconds
//!   --burst N --concurrency C      N distinct workloads of the `gen_policy.py --policy`
//!                                  fleet, each its own HS256 token, each on its own new
//!                                  connection; all C start at once (a fleet starting)
//!
//! Tokens, requests, the TLS configuration and the expected answers are all made before
//! the clock starts. `--pid PID` reads the server's CPU time (/proc/PID/task/*/schedstat,
//! nanoseconds; /proc/PID/stat as a fallback) around the timed window; the client's own
//! CPU (getrusage) is reported beside it. `--reload-pid PID` (SIGHUP) or `--reload-file F`
//! (rewritten by rename) reloads the server's policy `--reload-after-ms` into the window,
//! and `--metrics URL` (plain HTTP) is polled until `envoi_policy_loads_total` moves: the
//! reload's start → completion time.
//!
//! Output: one JSON line (machine-readable), then one human line. Both carry the kernel's
//! ListenOverflows, ListenDrops and TCPSynRetrans over the window (system-wide, from
//! /proc/net/netstat): a SYN dropped at a full accept queue costs its connection 1 s.
//!
//! Usage: cold --addr 127.0.0.1:8443 [--ca PEM [--verify pinned|nosig|webpki] [--server-name localhost]]
//!             (--duration S | --burst N) [--concurrency 64] [--threads 2] [--sources 1]
//!             [--secret bench-shared-secret] [--policy 100000] [--tokens 1000] [--token T]
//!             [--expect 200] [--check-body | --no-check-body] [--pid PID] [--label L]
//!             [--warmup-ms 500] [--timeout-ms 10000] [--tls12]
//!             [--reload-pid PID | --reload-file F] [--reload-after-ms 500] [--metrics URL]
//!             [--pregen K | --fresh-key-shares]
//! Without `--ca`, plain HTTP. `--verify`: `pinned` (default) accepts exactly the
//! certificates of the PEM and checks the handshake's signature; `nosig` accepts them
//! without checking the signature (the server's work is the same, the client's is less);
//! `webpki` takes the PEM as roots and validates the chain and name as a browser would.
//! The client's X25519 key shares are generated before the clock (`--pregen K`, by default
//! one per connection of a burst, or 5,000 a second of a sustained run); each is used once,
//! so the server sees what it sees from fresh clients. `--fresh-key-shares` makes them in
//! the handshake instead (rustls's own X25519, P-256 and P-384 offered).

#[path = "support/pinned.rs"]
mod pinned;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls::client::Resumption;
use rustls::crypto::{ActiveKeyExchange, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, NamedGroup};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;

use pinned::Pinned;

const USAGE: &str = "usage: cold --addr HOST:PORT [--ca PEM [--verify pinned|nosig|webpki]] (--duration S | --burst N) [--concurrency C] [--threads T] [--sources K] [--secret S] [--policy N] [--tokens K] [--token T] [--expect STATUS] [--check-body|--no-check-body] [--pid PID] [--label L] [--warmup-ms MS] [--timeout-ms MS] [--tls12] [--reload-pid PID | --reload-file F] [--reload-after-ms MS] [--metrics URL] [--pregen K | --fresh-key-shares]";

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("cold: {message}");
    eprintln!("{USAGE}");
    std::process::exit(2);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verify {
    Pinned,
    NoSig,
    WebPki,
}

struct Args {
    addr: SocketAddr,
    ca: Option<String>,
    verify: Verify,
    server_name: String,
    duration: Option<f64>,
    burst: Option<usize>,
    concurrency: usize,
    threads: usize,
    sources: usize,
    secret: String,
    policy: usize,
    tokens: usize,
    token: Option<String>,
    expect: u16,
    check_body: Option<bool>,
    pid: Option<u32>,
    label: String,
    warmup_ms: Option<u64>,
    timeout_ms: u64,
    tls12: bool,
    reload_pid: Option<i32>,
    reload_file: Option<String>,
    reload_after_ms: u64,
    metrics: Option<String>,
    pregen: Option<usize>,
    fresh_key_shares: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:8443".parse().unwrap(),
        ca: None,
        verify: Verify::Pinned,
        server_name: "localhost".into(),
        duration: None,
        burst: None,
        concurrency: 64,
        threads: 2,
        sources: 1,
        secret: "bench-shared-secret".into(),
        policy: 100_000,
        tokens: 1000,
        token: None,
        expect: 200,
        check_body: None,
        pid: None,
        label: String::new(),
        warmup_ms: None,
        timeout_ms: 10_000,
        tls12: false,
        reload_pid: None,
        reload_file: None,
        reload_after_ms: 500,
        metrics: None,
        pregen: None,
        fresh_key_shares: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| fail(format!("{name} needs a value")));
        fn num<T: std::str::FromStr>(name: &str, v: String) -> T {
            v.parse().unwrap_or_else(|_| fail(format!("{name}: not a number: {v}")))
        }
        match flag.as_str() {
            "--addr" => a.addr = num("--addr", value("--addr")),
            "--ca" => a.ca = Some(value("--ca")),
            "--verify" => {
                a.verify = match value("--verify").as_str() {
                    "pinned" => Verify::Pinned,
                    "nosig" => Verify::NoSig,
                    "webpki" => Verify::WebPki,
                    other => fail(format!("--verify: {other}: pinned, nosig or webpki")),
                }
            }
            "--server-name" => a.server_name = value("--server-name"),
            "--duration" => a.duration = Some(num("--duration", value("--duration"))),
            "--burst" => a.burst = Some(num("--burst", value("--burst"))),
            "--concurrency" => a.concurrency = num("--concurrency", value("--concurrency")),
            "--threads" => a.threads = num("--threads", value("--threads")),
            "--sources" => a.sources = num("--sources", value("--sources")),
            "--secret" => a.secret = value("--secret"),
            "--policy" => a.policy = num("--policy", value("--policy")),
            "--tokens" => a.tokens = num("--tokens", value("--tokens")),
            "--token" => a.token = Some(value("--token")),
            "--expect" => a.expect = num("--expect", value("--expect")),
            "--check-body" => a.check_body = Some(true),
            "--no-check-body" => a.check_body = Some(false),
            "--pid" => a.pid = Some(num("--pid", value("--pid"))),
            "--label" => a.label = value("--label"),
            "--warmup-ms" => a.warmup_ms = Some(num("--warmup-ms", value("--warmup-ms"))),
            "--timeout-ms" => a.timeout_ms = num("--timeout-ms", value("--timeout-ms")),
            "--tls12" => a.tls12 = true,
            "--reload-pid" => a.reload_pid = Some(num("--reload-pid", value("--reload-pid"))),
            "--reload-file" => a.reload_file = Some(value("--reload-file")),
            "--reload-after-ms" => a.reload_after_ms = num("--reload-after-ms", value("--reload-after-ms")),
            "--metrics" => a.metrics = Some(value("--metrics")),
            "--pregen" => a.pregen = Some(num("--pregen", value("--pregen"))),
            "--fresh-key-shares" => a.fresh_key_shares = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => fail(format!("unknown argument {other}")),
        }
    }
    if a.duration.is_some() == a.burst.is_some() {
        fail("give exactly one of --duration and --burst");
    }
    if a.concurrency == 0 || a.threads == 0 || a.sources == 0 || a.sources > 250 {
        fail("--concurrency and --threads must be at least 1, --sources 1 to 250");
    }
    if a.burst.is_some_and(|n| n > a.policy) && a.token.is_none() {
        fail("--burst N must not exceed --policy (distinct workloads)");
    }
    if (a.reload_pid.is_some() || a.reload_file.is_some()) && a.metrics.is_none() {
        fail("a reload needs --metrics URL to see it complete");
    }
    a
}

// ------------------------------------------------------------------------- workloads

/// Workload `i` of `bench/gen_policy.py n`: (project, type, id).
fn workload(i: usize, n: usize) -> (String, &'static str, String) {
    let projects = (n / 20).max(1);
    let kind = if i % 5 == 0 { "job" } else { "service" };
    let id = if i % 7 == 0 {
        format!("worker-{i}")
    } else {
        format!("svc-{i}")
    };
    (format!("proj-{}", i % projects), kind, id)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The k-th distinct workload index: a fixed permutation of 0..n (k * step mod n, step
/// coprime with n), so that any N of them spread over every file, project and type.
fn pick(k: usize, n: usize) -> usize {
    let step = [7919usize, 104_729, 15_485_863, 1]
        .into_iter()
        .find(|&s| gcd(s, n) == 1)
        .unwrap_or(1);
    (k as u128 * step as u128 % n as u128) as usize
}

/// An HS256 token for the workload, minted with ring's HMAC.
fn mint(key: &ring::hmac::Key, project: &str, kind: &str, id: &str, now: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "projectId": project, "nfObjectType": kind, "nfObjectId": id,
        "iat": now, "exp": now + 3600,
    });
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialise"));
    let signed = format!("{header}.{body}");
    let mac = ring::hmac::sign(key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
}

struct Job {
    request: Vec<u8>,
    /// A string the answer must contain (the workload's SERVICE_NAME value), if checked.
    expect_in_body: Option<Vec<u8>>,
}

fn request(host: &str, token: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").into_bytes()
}

// ------------------------------------------------------------------------- TLS

/// X25519 key shares generated before the clock starts: inside the window the client
/// pays one X25519 operation per connection (the agreement), not two. A connection that
/// finds the pool empty generates its own, and is counted.
struct KeyShares {
    pool: Mutex<Vec<Box<dyn ActiveKeyExchange>>>,
    misses: AtomicUsize,
}

impl std::fmt::Debug for KeyShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("X25519 (pre-generated)")
    }
}

impl KeyShares {
    fn fill(&self, n: usize) {
        let mut fresh = Vec::with_capacity(n);
        for _ in 0..n {
            fresh.push(
                rustls::crypto::ring::kx_group::X25519
                    .start()
                    .expect("X25519 key generation"),
            );
        }
        let mut pool = self.pool.lock().unwrap();
        pool.clear();
        pool.extend(fresh);
        self.misses.store(0, Ordering::Relaxed);
    }
}

impl SupportedKxGroup for KeyShares {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        if let Some(share) = self.pool.lock().unwrap().pop() {
            return Ok(share);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        rustls::crypto::ring::kx_group::X25519.start()
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

fn client_config(args: &Args, pem: &str, shares: &'static KeyShares) -> ClientConfig {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pem)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| fail(format!("--ca {pem}: {e}")));
    if certs.is_empty() {
        fail(format!("--ca {pem}: no certificate"));
    }
    let mut provider = rustls::crypto::ring::default_provider();
    if !args.fresh_key_shares {
        provider.kx_groups = vec![shares];
    }
    let provider: Arc<CryptoProvider> = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = if args.tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("ring supports TLS 1.2 and 1.3");
    let mut config = match args.verify {
        Verify::WebPki => {
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                fail(format!("--ca {pem}: no usable root certificate"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Verify::Pinned | Verify::NoSig => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                certs,
                check_signature: args.verify == Verify::Pinned,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    // Nothing is ever resumed: no tickets kept, no session ids, no early data.
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

// ------------------------------------------------------------------------- one connection

#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    expect: u16,
    timeout: Duration,
}

/// Reads the whole answer until the server closes; an error after a complete answer (a
/// TCP close without close_notify, say) still counts as the end.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> Result<(), String> {
    stream.write_all(request).await.map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("write: {e}"))?;
    buffer.clear();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) => {
                if complete(buffer) {
                    break;
                }
                return Err(format!("read: {}", e.kind()));
            }
        }
    }
    Ok(())
}

/// Whether the buffer holds a whole answer (its head and Content-Length bytes of body).
fn complete(buffer: &[u8]) -> bool {
    let Some(end) = find(buffer, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    length.is_some_and(|n| buffer.len() >= end + 4 + n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn connection(target: &Target, source: Option<IpAddr>, job: &Job, buffer: &mut Vec<u8>) -> Result<(), String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {}", e.kind()))?;
    if let Some(source) = source {
        // Let connect(2) pick the port (per destination), not bind(2).
        set_bind_no_port(&socket);
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| format!("bind: {}", e.kind()))?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {}", e.kind()))?;
    match &target.tls {
        Some((connector, name)) => {
            let tls = connector
                .connect(name.clone(), stream)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            // Every handshake full: a resumed one (or one the server retried) is a failure.
            match tls.get_ref().1.handshake_kind() {
                Some(rustls::HandshakeKind::Full) => {}
                other => return Err(format!("not a plain full handshake: {other:?}")),
            }
            exchange(tls, &job.request, buffer).await?;
        }
        None => exchange(stream, &job.request, buffer).await?,
    }
    let status = buffer
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(s) if s == target.expect => {}
        Some(s) => return Err(format!("status {s}")),
        None if buffer.is_empty() => return Err("closed without an answer".into()),
        None => return Err("not an HTTP answer".into()),
    }
    if let Some(expected) = &job.expect_in_body {
        if find(buffer, expected).is_none() {
            return Err("answer does not name its workload".into());
        }
    }
    Ok(())
}

fn set_bind_no_port(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

// ------------------------------------------------------------------------- CPU clocks

/// The process's CPU time in ns: the sum over its threads' schedstat (ns precision) and,
/// from /proc/PID/stat, utime + stime (clock ticks, but counting threads that exited).
struct ProcessCpu {
    threads: BTreeMap<u64, u64>,
    ticks_ns: u64,
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

fn read_cpu(pid: u32) -> Option<ProcessCpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from after the command's ')': index 11 and 12.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let mut threads = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for entry in dir.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            if let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) {
                if let Some(ns) = text.split_whitespace().next().and_then(|s| s.parse::<u64>().ok()) {
                    threads.insert(tid, ns);
                }
            }
        }
    }
    Some(ProcessCpu {
        threads,
        ticks_ns: ticks * 1_000_000_000 / clock_ticks(),
    })
}

/// CPU ns between two readings, and where the figure comes from: schedstat when every
/// thread of the first reading is still there (threads started since count whole),
/// else the ticks of /proc/PID/stat.
fn cpu_between(before: &ProcessCpu, after: &ProcessCpu) -> (u64, u64, &'static str) {
    let ticks = after.ticks_ns.saturating_sub(before.ticks_ns);
    let all_there = !after.threads.is_empty() && before.threads.keys().all(|t| after.threads.contains_key(t));
    if all_there {
        let sched: u64 = after
            .threads
            .iter()
            .map(|(tid, ns)| ns.saturating_sub(before.threads.get(tid).copied().unwrap_or(0)))
            .sum();
        (sched, ticks, "schedstat")
    } else {
        (ticks, ticks, "stat")
    }
}

fn own_cpu_ns() -> u64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(usage.ru_utime) + us(usage.ru_stime)) * 1000
}

/// The kernel's TCP counters that explain a latency spike of a second or more: SYNs
/// dropped because a listener's accept queue was full (the client retransmits its SYN
/// after 1 s, then 3 s), and SYN retransmissions. System-wide (/proc/net/netstat).
const TCP_COUNTERS: [&str; 3] = ["ListenOverflows", "ListenDrops", "TCPSynRetrans"];

fn tcp_counters() -> [u64; 3] {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let mut out = [0; 3];
    if let [names, values, ..] = lines[..] {
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Some(at) = TCP_COUNTERS.iter().position(|c| *c == name) {
                out[at] = value.parse().unwrap_or(0);
            }
        }
    }
    out
}

// ------------------------------------------------------------------------- reload

fn metrics_loads(url: &str) -> Option<(u64, u64)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/metrics"),
    };
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
    };
    Some((
        value("envoi_policy_loads_total")?,
        value("envoi_policy_load_failures_total").unwrap_or(0),
    ))
}

fn rewrite_by_rename(path: &str) -> std::io::Result<()> {
    let mut text = std::fs::read_to_string(path)?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    text.push_str(&format!("# touched by bench cold {stamp}\n"));
    let temporary = format!("{path}.cold-tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

#[derive(Default, Debug)]
struct Reload {
    triggered_at: Option<Duration>,
    completed_at: Option<Duration>,
    failed: u64,
}

// ------------------------------------------------------------------------- driver

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Outcome {
    latencies_us: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

/// Runs the connections of one window: `jobs` taken in turn (a burst: each once; a
/// sustained run: round and round until `until`).
fn run_window(
    target: &Target,
    jobs: &Arc<Vec<Job>>,
    args: &Args,
    limit: Option<usize>,
    until: Option<Instant>,
    concurrency: usize,
) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Outcome {
        latencies_us: Vec::new(),
        errors: BTreeMap::new(),
    }));
    let threads = args.threads.min(concurrency);
    let sources: Vec<Option<IpAddr>> = if args.sources <= 1 {
        vec![None]
    } else {
        (0..args.sources)
            .map(|k| Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + k as u8))))
            .collect()
    };
    let sources = Arc::new(sources);
    let start_gate = Arc::new(std::sync::Barrier::new(threads));
    let mut handles = Vec::new();
    for t in 0..threads {
        let tasks = concurrency / threads + usize::from(t < concurrency % threads);
        let (target, jobs, next, results, sources, gate) = (
            target.clone(),
            jobs.clone(),
            next.clone(),
            results.clone(),
            sources.clone(),
            start_gate.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                gate.wait();
                for _ in 0..tasks {
                    let (target, jobs, next, sources) = (target.clone(), jobs.clone(), next.clone(), sources.clone());
                    set.spawn(async move {
                        let mut latencies = Vec::with_capacity(4096);
                        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                        let mut buffer = Vec::with_capacity(16384);
                        loop {
                            if until.is_some_and(|u| Instant::now() >= u) {
                                break;
                            }
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            if limit.is_some_and(|n| k >= n) {
                                break;
                            }
                            let job = &jobs[k % jobs.len()];
                            let source = sources[k % sources.len()];
                            let started = Instant::now();
                            let result =
                                tokio::time::timeout(target.timeout, connection(&target, source, job, &mut buffer))
                                    .await;
                            match result {
                                Ok(Ok(())) => latencies.push(started.elapsed().as_micros() as u64),
                                Ok(Err(e)) => *errors.entry(e).or_default() += 1,
                                Err(_) => *errors.entry("timeout".into()).or_default() += 1,
                            }
                        }
                        (latencies, errors)
                    });
                }
                while let Some(done) = set.join_next().await {
                    let (latencies, errors) = done.expect("a connection task panicked");
                    let mut r = results.lock().unwrap();
                    r.latencies_us.extend(latencies);
                    for (k, v) in errors {
                        *r.errors.entry(k).or_default() += v;
                    }
                }
            });
        }));
    }
    for h in handles {
        h.join().expect("a client thread panicked");
    }
    Arc::try_unwrap(results)
        .ok()
        .expect("threads joined")
        .into_inner()
        .unwrap()
}

fn main() {
    let args = parse_args();
    let shares: &'static KeyShares = Box::leak(Box::new(KeyShares {
        pool: Mutex::new(Vec::new()),
        misses: AtomicUsize::new(0),
    }));
    let tls = args.ca.as_ref().map(|pem| {
        let config = client_config(&args, pem, shares);
        let name =
            ServerName::try_from(args.server_name.clone()).unwrap_or_else(|e| fail(format!("--server-name: {e}")));
        (TlsConnector::from(Arc::new(config)), name)
    });
    let target = Target {
        addr: args.addr,
        tls,
        expect: args.expect,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let host = args.server_name.clone();

    // Tokens and requests, made before the clock starts.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, args.secret.as_bytes());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let check_body = args.check_body.unwrap_or(args.burst.is_some()) && args.token.is_none();
    let count = match (args.burst, &args.token) {
        (_, Some(_)) => 1,
        (Some(n), None) => n,
        (None, None) => args.tokens.clamp(1, args.policy),
    };
    let make_job = |k: usize| -> Job {
        match &args.token {
            Some(token) => Job {
                request: request(&host, token),
                expect_in_body: None,
            },
            None => {
                let i = pick(k, args.policy);
                let (project, kind, id) = workload(i, args.policy);
                Job {
                    request: request(&host, &mint(&key, &project, kind, &id, now)),
                    expect_in_body: check_body.then(|| format!("\"{id}\"").into_bytes()),
                }
            }
        }
    };
    let jobs: Arc<Vec<Job>> = Arc::new((0..count).map(make_job).collect());

    // One connection outside the window: the server answers as expected (a workload
    // outside a burst's, when there is one).
    let probe = make_job(if args.burst.is_some_and(|n| n < args.policy) {
        count
    } else {
        0
    });
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut buffer = Vec::new();
        let probe_target = Target {
            timeout: Duration::from_secs(10),
            ..target.clone()
        };
        if let Err(e) = runtime.block_on(connection(&probe_target, None, &probe, &mut buffer)) {
            eprintln!("cold: the probe connection to {} failed: {e}", args.addr);
            eprintln!("{}", String::from_utf8_lossy(&buffer[..buffer.len().min(400)]));
            std::process::exit(1);
        }
    }
    // A sustained run warms up first (the server's caches, the client's allocator).
    if args.duration.is_some() {
        let warm = args.warmup_ms.unwrap_or(500);
        if warm > 0 {
            let until = Instant::now() + Duration::from_millis(warm);
            run_window(&target, &jobs, &args, None, Some(until), args.concurrency);
        }
    }

    // The reload watcher: a thread of its own, plain blocking HTTP to the metrics.
    let reload_wanted = args.reload_pid.is_some() || args.reload_file.is_some();
    let reload = Arc::new(Mutex::new(Reload::default()));
    let baseline = if reload_wanted {
        let url = args.metrics.clone().unwrap();
        Some(metrics_loads(&url).unwrap_or_else(|| fail(format!("--metrics {url}: no envoi_policy_loads_total"))))
    } else {
        None
    };

    // The key shares of the window, made now (a sustained run: as many as 5,000
    // connections a second would use, unless --pregen says otherwise).
    if target.tls.is_some() && !args.fresh_key_shares {
        let n = args.pregen.unwrap_or_else(|| match (args.burst, args.duration) {
            (Some(n), _) => n,
            (None, Some(s)) => ((s * 5000.0) as usize).clamp(1000, 200_000),
            _ => 0,
        });
        shares.fill(n);
    }
    let server_before = args.pid.and_then(read_cpu);
    if let (Some(pid), None) = (args.pid, &server_before) {
        fail(format!("--pid {pid}: cannot read /proc/{pid}"));
    }
    let client_before = own_cpu_ns();
    let tcp_before = tcp_counters();
    let started = Instant::now();
    let watcher = baseline.map(|(loads0, failures0)| {
        let reload = reload.clone();
        let url = args.metrics.clone().unwrap();
        let (pid, file, after) = (args.reload_pid, args.reload_file.clone(), args.reload_after_ms);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(after));
            let at = started.elapsed();
            let ok = match (pid, &file) {
                // SAFETY: kill(2) with a pid and a signal number.
                (Some(pid), _) => unsafe { libc::kill(pid, libc::SIGHUP) == 0 },
                (None, Some(file)) => rewrite_by_rename(file).is_ok(),
                _ => false,
            };
            if !ok {
                eprintln!("cold: could not trigger the reload");
                return;
            }
            reload.lock().unwrap().triggered_at = Some(at);
            // Polled until it completes, also after the window (up to 60 s).
            let give_up = Instant::now() + Duration::from_secs(60);
            while Instant::now() < give_up {
                if let Some((loads, failures)) = metrics_loads(&url) {
                    if failures > failures0 {
                        reload.lock().unwrap().failed = failures - failures0;
                    }
                    if loads > loads0 || failures > failures0 {
                        reload.lock().unwrap().completed_at = Some(started.elapsed());
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    });

    let outcome = match (args.burst, args.duration) {
        (Some(n), _) => run_window(&target, &jobs, &args, Some(n), None, args.concurrency),
        (None, Some(s)) => run_window(
            &target,
            &jobs,
            &args,
            None,
            Some(started + Duration::from_secs_f64(s)),
            args.concurrency,
        ),
        _ => unreachable!(),
    };
    let elapsed = started.elapsed();
    let client_ns = own_cpu_ns().saturating_sub(client_before);
    let misses = shares.misses.load(Ordering::Relaxed);
    let tcp_after = tcp_counters();
    let tcp: Vec<(&str, u64)> = TCP_COUNTERS
        .iter()
        .zip(tcp_before.iter().zip(tcp_after))
        .map(|(n, (b, a))| (*n, a.saturating_sub(*b)))
        .collect();
    let server = server_before
        .zip(args.pid.and_then(read_cpu))
        .map(|(b, a)| cpu_between(&b, &a));
    if let Some(w) = watcher {
        let _ = w.join();
    }

    let mut latencies = outcome.latencies_us;
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    let failures: u64 = outcome.errors.values().sum();
    let total = ok + failures;
    let secs = elapsed.as_secs_f64();
    let per_conn = |ns: u64| {
        if total > 0 {
            ns as f64 / 1000.0 / total as f64
        } else {
            f64::NAN
        }
    };
    let (p50, p99, max) = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0),
    );
    let mean = if ok > 0 {
        latencies.iter().sum::<u64>() as f64 / ok as f64
    } else {
        0.0
    };
    let mode = if args.burst.is_some() { "burst" } else { "sustained" };
    let scheme = if target.tls.is_some() {
        if args.tls12 {
            "tls1.2"
        } else {
            "tls1.3"
        }
    } else {
        "http"
    };

    let mut summary = serde_json::json!({
        "label": args.label, "mode": mode, "addr": args.addr.to_string(), "scheme": scheme,
        "verify": if target.tls.is_some() { format!("{:?}", args.verify).to_lowercase() } else { "-".into() },
        "concurrency": args.concurrency, "threads": args.threads, "sources": args.sources,
        "connections": total, "ok": ok, "failures": failures, "errors": outcome.errors,
        "elapsed_s": secs, "conns_per_s": ok as f64 / secs,
        "p50_us": p50, "p99_us": p99, "max_us": max, "mean_us": mean,
        "client_cpu_us_per_conn": per_conn(client_ns), "client_cores": client_ns as f64 / 1e9 / secs,
        "key_shares": if target.tls.is_none() { "-" } else if args.fresh_key_shares { "fresh" } else { "pre-generated" },
        "key_share_misses": misses,
    });
    let map = summary.as_object_mut().unwrap();
    for (name, delta) in &tcp {
        map.insert(format!("tcp_{}", name.to_lowercase()), (*delta).into());
    }
    if let Some((ns, ticks_ns, source)) = server {
        map.insert("server_cpu_us_per_conn".into(), per_conn(ns).into());
        map.insert("server_cpu_us_per_conn_stat".into(), per_conn(ticks_ns).into());
        map.insert("server_cpu_source".into(), source.into());
        map.insert("server_cores".into(), (ns as f64 / 1e9 / secs).into());
    }
    let reload = reload.lock().unwrap();
    if reload_wanted {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        map.insert("reload_triggered_ms".into(), ms(reload.triggered_at).into());
        map.insert("reload_completed_ms".into(), ms(reload.completed_at).into());
        let took = reload
            .triggered_at
            .zip(reload.completed_at)
            .map(|(t, c)| (c - t).as_secs_f64() * 1000.0);
        map.insert("reload_ms".into(), took.into());
        map.insert(
            "reload_within_window".into(),
            reload.completed_at.is_some_and(|c| c <= elapsed).into(),
        );
        map.insert("reload_failed".into(), reload.failed.into());
    }
    println!("{summary}");

    let mut human = format!(
        "{label}{mode} {scheme} c={c}: {ok}/{total} ok in {secs:.2} s ({rate:.0} conn/s), p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        label = if args.label.is_empty() { String::new() } else { format!("{}: ", args.label) },
        c = args.concurrency,
        rate = ok as f64 / secs,
        p50 = p50 as f64 / 1000.0,
        p99 = p99 as f64 / 1000.0,
        max = max as f64 / 1000.0,
    );
    if let Some((ns, _, source)) = server {
        human += &format!(
            ", server {:.0} µs CPU/conn ({source}, {:.2} cores)",
            per_conn(ns),
            ns as f64 / 1e9 / secs
        );
    }
    human += &format!(
        ", client {:.0} µs CPU/conn ({:.2} cores)",
        per_conn(client_ns),
        client_ns as f64 / 1e9 / secs
    );
    if misses > 0 {
        human += &format!(" ({misses} key shares made inside the window)");
    }
    if tcp.iter().any(|(_, d)| *d > 0) {
        let named: Vec<String> = tcp.iter().map(|(n, d)| format!("{n} +{d}")).collect();
        human += &format!(", kernel (system-wide): {}", named.join(", "));
    }
    if failures > 0 {
        human += &format!(", FAILURES {failures}: {:?}", outcome.errors);
    }
    if reload_wanted {
        match (reload.triggered_at, reload.completed_at) {
            (Some(t), Some(c)) => {
                human += &format!(
                    "; reload at {:.0} ms completed after {:.0} ms{}{}",
                    t.as_secs_f64() * 1000.0,
                    (c - t).as_secs_f64() * 1000.0,
                    if c <= elapsed {
                        " (inside the window)"
                    } else {
                        " (AFTER the window)"
                    },
                    if reload.failed > 0 { ", FAILED" } else { "" }
                )
            }
            (Some(t), None) => {
                human += &format!(
                    "; reload at {:.0} ms NOT completed within 60 s",
                    t.as_secs_f64() * 1000.0
                )
            }
            _ => human += "; reload NOT triggered",
        }
    }
    println!("{human}");
    if failures > 0 || (reload_wanted && reload.completed_at.is_none()) {
        std::process::exit(1);
    }
}
