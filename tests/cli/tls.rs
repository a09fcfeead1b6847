//! `envoi serve` over TLS with a certificate of our own (made by `openssl`, checked by
//! `curl`, both independent of envoi): TLS 1.2+ only, the protocol answered over HTTPS,
//! and a new certificate picked up on SIGHUP without a restart.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{clean_command, free_port, jwt, toml_string, Workspace};

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

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serves_https_with_its_own_certificate_refuses_old_tls_and_reloads_the_certificate_on_sighup() {
    if !tools_present() {
        return;
    }
    let ws = Workspace::new();
    let (cert, key) = (ws.path().join("tls.crt"), ws.path().join("tls.key"));
    make_certificate(&cert, &key, "first");
    let first_ca = ws.path().join("first-ca.pem");
    std::fs::copy(&cert, &first_ca).expect("keep the first certificate");
    let policy = ws.write(
        "policy.toml",
        "[[grants]]\nproject = \"billing\"\nenv = { REGION = { value = \"eu-west\" } }\n",
    );
    let port = free_port();
    let config = ws.write(
        "envoi.toml",
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = 1\n\n[server.tls]\ncert = {}\nkey = {}\n\n\
             [auth]\nsecrets = [{}]\n\n[store]\npath = {}\n",
            toml_string(&cert.display().to_string()),
            toml_string(&key.display().to_string()),
            toml_string(KEY),
            toml_string(&policy.display().to_string()),
        ),
    );
    let child = clean_command(ws.path())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("envoi starts");
    let server = Killed(child);

    let deadline = Instant::now() + Duration::from_secs(15);
    while curl(port, &first_ca, "/healthz", &[]).0 != 0 {
        assert!(
            Instant::now() < deadline,
            "envoi answered no HTTPS /healthz within 15 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

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
    let status = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
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
    assert!(
        server.0.try_wait().expect("poll").is_none(),
        "SIGHUP does not stop the server"
    );
}
