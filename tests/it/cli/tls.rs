//! `envoi serve` over TLS with a certificate of our own (made by `openssl`, checked by
//! `curl`, both independent of envoi): TLS 1.2+ only, the protocol answered over HTTPS,
//! a new certificate picked up on SIGHUP without a restart, and clients that stall in
//! the handshake unable to hold up others.

use std::io::{ErrorKind, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::raw_http::read_some;
use crate::support::{jwt, toml_string, Server, Workspace};

const KEY: &str = "tls-test-shared-secret";

/// `openssl` and `curl` are CI prerequisites (`.ci/run` installs them); without them the
/// test says so loudly and does nothing.
pub(crate) fn tools_present() -> bool {
    let present = |tool: &str, arg: &str| Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success());
    let ok = present("openssl", "version") && present("curl", "--version");
    if !ok {
        eprintln!("SKIPPED: the TLS test needs `openssl` and `curl` on PATH");
    }
    ok
}

/// A fresh self-signed certificate for `localhost` (its own CA), written to `cert`/`key`.
pub(crate) fn make_certificate(cert: &Path, key: &Path, subject: &str) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .args([
            "-subj",
            &format!("/CN={subject}"),
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl made a certificate");
}

/// `curl` against the server trusting only `ca`; returns (exit code, body).
fn curl(port: u16, ca: &Path, path: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A running HTTPS server of one worker, with its certificate (which is its own CA).
struct TlsServer {
    server: Server,
    port: u16,
    cert: PathBuf,
    key: PathBuf,
}

/// Starts `envoi serve` over TLS with `server_settings` added to its `[server]` table,
/// and waits until it answers `/healthz` over HTTPS (a plain HTTP probe would count as a
/// failed handshake).
fn start_tls_server(ws: &Workspace, server_settings: &str) -> TlsServer {
    let (cert, key) = (ws.path().join("tls.crt"), ws.path().join("tls.key"));
    make_certificate(&cert, &key, "first");
    let policy = ws.write(
        "policy.toml",
        "[[grants]]\nproject = \"billing\"\nenv = { REGION = { value = \"eu-west\" } }\n",
    );
    let config = ws.write(
        "envoi.toml",
        format!(
            "[server]\nworkers = 1\n{server_settings}\n\n\
             [server.tls]\ncert = {}\nkey = {}\n\n[auth]\nsecrets = [{}]\n\n[store]\npath = {}\n",
            toml_string(&cert.display().to_string()),
            toml_string(&key.display().to_string()),
            toml_string(KEY),
            toml_string(&policy.display().to_string()),
        ),
    );
    let server = Server::launch(ws.path())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .ready_when(|server| curl(server.port, &cert, "/healthz", &[]).0 == 0)
        .start();
    TlsServer {
        port: server.port,
        server,
        cert,
        key,
    }
}

#[test]
fn serves_https_with_its_own_certificate_refuses_old_tls_and_reloads_the_certificate_on_sighup() {
    if !tools_present() {
        return;
    }
    let ws = Workspace::new();
    let TlsServer {
        server,
        port,
        cert,
        key,
    } = start_tls_server(&ws, "");
    let first_ca = ws.path().join("first-ca.pem");
    std::fs::copy(&cert, &first_ca).expect("keep the first certificate");

    let now = jwt::now();
    let token = jwt::sign(KEY, &jwt::claims("billing", "service", "api", now, now + 300));
    let (code, body) = curl(port, &first_ca, "/", &["-H", &format!("Authorization: Bearer {token}")]);
    assert_eq!(code, 0, "curl over TLS");
    assert_eq!(body, r#"{"secrets":[{"type":"ENV","key":"REGION","value":"eu-west"}]}"#);

    let (code, _) = curl(port, &first_ca, "/healthz", &["--tls-max", "1.1"]);
    assert_ne!(code, 0, "a TLS 1.1 handshake must fail");
    let (code, _) = curl(
        port,
        &first_ca,
        "/healthz",
        &["--http1.1", "--tlsv1.2", "--tls-max", "1.2"],
    );
    assert_eq!(code, 0, "TLS 1.2 is accepted");

    // A new certificate, then SIGHUP: new handshakes present it, with no restart.
    make_certificate(&cert, &key, "second");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while curl(port, &cert, "/healthz", &[]).0 != 0 {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 5 s of SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(
        curl(port, &first_ca, "/healthz", &[]).0,
        0,
        "the old certificate is no longer presented"
    );
    let mut server = server;
    assert!(server.is_running(), "SIGHUP does not stop the server");
}

/// A connection from 127.0.0.1 that stalls in the handshake: silent, or having sent the
/// first bytes of a ClientHello (a handshake record of 512 bytes, of which 10 are sent).
fn stalled_connection(port: u16, partial_hello: bool) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    if partial_hello {
        stream
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03])
            .expect("send the start of a ClientHello");
    }
    stream
}

/// `count` connections stalled in the handshake, alternately silent and mid-ClientHello.
fn stalled_connections(port: u16, count: usize) -> Vec<TcpStream> {
    (0..count).map(|n| stalled_connection(port, n % 2 == 1)).collect()
}

/// A server whose handshakes do not time out within a test, with room for 100 handshakes
/// in flight per worker and 3 per client address.
fn three_per_address_server(ws: &Workspace) -> TlsServer {
    start_tls_server(
        ws,
        &format!("{LONG_HANDSHAKE_TIMEOUT}\nmax_tls_handshakes = 100\nmax_tls_handshakes_per_address = 3"),
    )
}

/// Waits for the server to close `stream` (end of file or a reset); a connection still
/// open after `patience` fails the test.
fn assert_closed_by_server(stream: &mut TcpStream, patience: Duration, what: &str) {
    stream.set_read_timeout(Some(patience)).expect("read timeout");
    let mut byte = [0u8; 1];
    match read_some(stream, &mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("{what}: the server sent bytes to a client that sent no ClientHello"),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        Err(e) => panic!("{what}: still open after {patience:?} ({e})"),
    }
}

/// `curl` from `source` (a loopback address) to the server, trusting its certificate.
fn curl_from(server: &TlsServer, source: &str, path: &str) -> (i32, String) {
    let resolve = format!("localhost:{}:127.0.0.1", server.port);
    curl(
        server.port,
        &server.cert,
        path,
        &["--interface", source, "--resolve", &resolve],
    )
}

/// The handshake timeout is a minute: nothing below can be explained by it.
const LONG_HANDSHAKE_TIMEOUT: &str = "tls_handshake_timeout_ms = 60000";

#[test]
fn stalled_handshakes_filling_every_slot_of_the_worker_do_not_keep_another_client_waiting() {
    if !tools_present() {
        return;
    }
    let ws = Workspace::new();
    let server = start_tls_server(&ws, &format!("{LONG_HANDSHAKE_TIMEOUT}\nmax_tls_handshakes = 4"));
    // Four handshakes in flight fill the worker: two silent, two stalled mid-ClientHello,
    // old enough to be taken for stalling.
    let mut stalled: Vec<TcpStream> = stalled_connections(server.port, 4);
    std::thread::sleep(OLD_ENOUGH);

    // Another client is answered at once (curl gives up after 5 s; the stalled ones
    // would hold their slots for a minute)...
    let started = Instant::now();
    let (code, body) = curl_from(&server, "127.0.0.2", "/healthz");
    assert_eq!(code, 0, "curl from another address was not answered: {body}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the honest handshake waited {:?}",
        started.elapsed()
    );
    // ...because the oldest stalled handshake made room for it.
    assert_closed_by_server(&mut stalled[0], Duration::from_secs(10), "the oldest stalled handshake");
}

#[test]
fn stalled_handshakes_from_one_address_push_out_only_their_own_oldest_beyond_the_per_address_limit() {
    if !tools_present() {
        return;
    }
    let ws = Workspace::new();
    let server = three_per_address_server(&ws);
    let mut stalled: Vec<TcpStream> = stalled_connections(server.port, 3);
    std::thread::sleep(OLD_ENOUGH);
    stalled.extend(stalled_connections(server.port, 2));
    // Five from 127.0.0.1 against a limit of three: the two oldest are closed.
    assert_closed_by_server(&mut stalled[0], Duration::from_secs(10), "the oldest of five");
    assert_closed_by_server(&mut stalled[1], Duration::from_secs(10), "the second oldest of five");

    // A client from another address is answered, and closes nothing of 127.0.0.1's.
    let (code, body) = curl_from(&server, "127.0.0.2", "/metrics");
    assert_eq!(code, 0, "curl from another address was not answered: {body}");
    assert!(
        body.contains("envoi_tls_handshakes_cut_total{reason=\"evicted\"} 2\n"),
        "two handshakes were evicted, none more:\n{body}"
    );
    assert!(
        body.contains("envoi_tls_handshakes_cut_total{reason=\"timeout\"} 0\n"),
        "{body}"
    );

    // An honest client from the flood's own address is answered too: it takes the place
    // of that address's oldest stalled handshake.
    let (code, body) = curl_from(&server, "127.0.0.1", "/healthz");
    assert_eq!(
        code, 0,
        "curl from the stalled clients' address was not answered: {body}"
    );
    assert_closed_by_server(&mut stalled[2], Duration::from_secs(10), "the oldest left");
}

/// Longer than a handshake must have been in flight to be closed to make room.
const OLD_ENOUGH: Duration = Duration::from_millis(700);

/// Fails if the server closes `stream` or sends anything within `patience`.
fn assert_still_open(stream: &mut TcpStream, patience: Duration, what: &str) {
    stream.set_read_timeout(Some(patience)).expect("read timeout");
    let mut byte = [0u8; 1];
    match read_some(stream, &mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("{what}: closed or answered within {patience:?} ({other:?})"),
    }
}

#[test]
fn handshakes_over_the_per_address_limit_are_closed_only_once_old_enough_to_be_stalling() {
    if !tools_present() {
        return;
    }
    let ws = Workspace::new();
    let server = three_per_address_server(&ws);
    // Many workloads behind one address start at once: six handshakes in flight against a
    // limit of three, all of them young. None is closed: they are a burst, not a stall.
    let mut burst: Vec<TcpStream> = stalled_connections(server.port, 6);
    assert_still_open(&mut burst[0], Duration::from_millis(300), "the oldest of a young burst");
    // Once they are old, the next arrival from that address closes the oldest.
    std::thread::sleep(OLD_ENOUGH);
    let _late = stalled_connection(server.port, false);
    assert_closed_by_server(&mut burst[0], Duration::from_secs(10), "the oldest, now stalling");
}

#[test]
fn a_silent_connection_is_closed_at_the_handshake_timeout() {
    if !tools_present() {
        return;
    }
    let ws = Workspace::new();
    let server = start_tls_server(&ws, "tls_handshake_timeout_ms = 300");
    let started = Instant::now();
    let mut silent = stalled_connection(server.port, false);
    assert_closed_by_server(&mut silent, Duration::from_secs(10), "a silent connection");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed after {:?}, before the timeout",
        started.elapsed()
    );
    let (code, body) = curl_from(&server, "127.0.0.2", "/metrics");
    assert_eq!(code, 0, "{body}");
    assert!(
        body.contains("envoi_tls_handshakes_cut_total{reason=\"timeout\"} 1\n"),
        "{body}"
    );
}

/// A CA (`ca.pem`) and a `localhost` certificate it signed (`tls.crt`, `tls.key`): rustls,
/// unlike curl, refuses a self-signed CA certificate used as the server's own.
fn make_ca_and_leaf(ws: &Workspace) -> PathBuf {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(ws.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-days",
            "2",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=test-ca",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=localhost"],
    ]
    .concat());
    ws.write("leaf.ext", "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n");
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "tls.crt",
        "-extfile",
        "leaf.ext",
    ]);
    ws.join("ca.pem")
}

#[test]
fn fetch_speaks_https_trusting_the_cafile_and_refuses_an_unknown_certificate() {
    if !tools_present() {
        return;
    }
    let ws = Workspace::new();
    let ca = make_ca_and_leaf(&ws);
    let policy = ws.write(
        "policy.toml",
        "[[grants]]\nproject = \"billing\"\nenv = { REGION = { value = \"eu-west\" } }\n",
    );
    let config = ws.write(
        "envoi.toml",
        format!(
            "[server]\nworkers = 1\n\n[server.tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n\n\
             [auth]\nsecrets = [{}]\n\n[store]\npath = {}\n",
            toml_string(KEY),
            toml_string(&policy.display().to_string()),
        ),
    );
    let server = Server::launch(ws.path())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .ready_when(|server| curl(server.port, &ca, "/healthz", &[]).0 == 0)
        .start();
    let now = jwt::now();
    ws.write(
        "token",
        jwt::sign(KEY, &jwt::claims("billing", "service", "api", now, now + 300)),
    );
    let url = format!("https://localhost:{}/", server.port);
    let fetch = |extra: &[&str]| {
        crate::support::Ran::of(
            ws.envoi([
                "fetch",
                "--url",
                url.as_str(),
                "--token-file",
                "token",
                "--format",
                "dotenv",
            ])
            .args(extra),
        )
    };

    let trusted = fetch(&["--cafile", "ca.pem"]);
    assert_eq!(trusted.stdout, "REGION=\"eu-west\"\n", "{trusted}\n{}", server.output());

    let started = Instant::now();
    let untrusted = fetch(&[]).failure();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a certificate is not retried: {untrusted}"
    );
    untrusted
        .stderr_names("localhost")
        .stderr_names("certificate")
        .stderr_names("not retried");
    assert!(untrusted.stdout.is_empty(), "{untrusted}");
}
