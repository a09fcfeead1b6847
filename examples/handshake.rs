//! Server-side CPU of full TLS 1.3 handshakes, in memory (no sockets, no kernel): the
//! choices src/tls.rs made, measured one against another. rustls's crypto providers
//! (ring, aws-lc-rs), session tickets sent or not, and the client's suite order
//! (AES-256-GCM-SHA384 first, as OpenSSL and rustls clients ask) against the server's
//! (AES-128-GCM-SHA256 first), for the certificate and key given.
//!
//! Usage: handshake CERT.pem KEY.pem [HANDSHAKES]   (bench/README.md, "Cold connections")
//! The client is rustls on ring with resumption disabled; only the server's calls are
//! timed, by the thread's CPU clock.

#[path = "support/pinned.rs"]
mod pinned;

use std::sync::Arc;
use std::time::Duration;

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use pinned::Pinned;

fn thread_cpu() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec, as clock_gettime(2) asks.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// One full handshake: the server's CPU time, and the suite it chose.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> (Duration, Option<rustls::CipherSuite>) {
    let mut c =
        ClientConnection::new(client.clone(), ServerName::try_from("localhost").expect("a name")).expect("client");
    let started = thread_cpu();
    let mut s = ServerConnection::new(server.clone()).expect("server");
    let mut spent = thread_cpu() - started;
    loop {
        let mut moved = false;
        let mut bytes = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut bytes).expect("client writes");
        }
        if !bytes.is_empty() {
            moved = true;
            let started = thread_cpu();
            let mut rd = &bytes[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).expect("server reads");
            }
            s.process_new_packets().expect("server handshakes");
            spent += thread_cpu() - started;
        }
        let mut bytes = Vec::new();
        let started = thread_cpu();
        while s.wants_write() {
            s.write_tls(&mut bytes).expect("server writes");
        }
        spent += thread_cpu() - started;
        if !bytes.is_empty() {
            moved = true;
            let mut rd = &bytes[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).expect("client reads");
            }
            c.process_new_packets().expect("client handshakes");
        }
        if !moved && !s.is_handshaking() && !c.is_handshaking() {
            break;
        }
    }
    let suite = s.negotiated_cipher_suite().map(|suite| suite.suite());
    let started = thread_cpu();
    drop(s);
    (spent + (thread_cpu() - started), suite)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cert), Some(key)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: handshake CERT.pem KEY.pem [HANDSHAKES]");
        std::process::exit(2);
    };
    let count: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("certificate file")
        .map(|c| c.expect("a certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("key file");
    let ring = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(ring.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            certs: chain.clone(),
            check_signature: true,
            algorithms: ring.signature_verification_algorithms,
        }))
        .with_no_client_auth();
    client.resumption = Resumption::disabled();
    let client = Arc::new(client);
    let providers = [
        ("ring", rustls::crypto::ring::default_provider()),
        ("aws-lc-rs", rustls::crypto::aws_lc_rs::default_provider()),
    ];
    println!("provider\ttickets\tsuites\tnegotiated\tserver_us_per_handshake");
    for (name, provider) in providers {
        for tickets in [2, 0] {
            for server_order in [false, true] {
                let mut provider = provider.clone();
                if server_order {
                    provider
                        .cipher_suites
                        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
                }
                let mut server = ServerConfig::builder_with_provider(Arc::new(provider))
                    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                    .expect("TLS 1.2 and 1.3")
                    .with_no_client_auth()
                    .with_single_cert(chain.clone(), key.clone_key())
                    .expect("certificate and key");
                server.ignore_client_order = server_order;
                server.send_tls13_tickets = tickets;
                if tickets == 0 {
                    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
                }
                let server = Arc::new(server);
                let (_, negotiated) = handshake(&client, &server); // warm-up
                let spent: Duration = (0..count).map(|_| handshake(&client, &server).0).sum();
                let order = if server_order { "server's" } else { "client's" };
                println!(
                    "{name}\t{tickets}\t{order}\t{negotiated:?}\t{:.1}",
                    spent.as_secs_f64() * 1e6 / count as f64
                );
            }
        }
    }
}
