//! TLS with rustls from PEM files: TLS 1.2 and 1.3 only, AEAD suites only, and a
//! certificate that can be replaced (SIGHUP, or the files changing) without dropping a
//! connection: new handshakes pick up the new certificate, open connections keep theirs.
//!
//! Every workload opens a new connection for its one request, so the full handshake is
//! what a fleet start costs (bench/README.md, "Cold connections"). Measured per handshake
//! on the server, in memory (ECDSA P-256 / RSA-2048): ring with rustls's defaults 150 /
//! 918 µs; without session tickets 128 / 790; choosing AES-128-GCM-SHA256 over the
//! client's AES-256-GCM-SHA384 (OpenSSL's first choice; SHA-256 has CPU instructions of
//! its own, SHA-384 does not) 111 / 765; aws-lc-rs instead of ring 88 / 444. The server
//! side therefore runs on aws-lc-rs; envoi's clients (Postgres, `envoi fetch`) stay on ring.

pub mod handshake;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls.cert {path}: {problem}")]
    Cert { path: PathBuf, problem: String },
    #[error("server.tls.key {path}: {problem}")]
    Key { path: PathBuf, problem: String },
    #[error("server.tls.cert and server.tls.key do not belong together")]
    Mismatch,
}

/// The certificate and key files, and the pair currently served.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    stamp: std::sync::Mutex<Option<(SystemTime, SystemTime)>>,
}

fn stamp(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}

impl CertStore {
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(provider());
        let pair = read_pair(&provider, cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: ArcSwap::from_pointee(pair),
            stamp: std::sync::Mutex::new(stamp(cert, key)),
        }))
    }

    /// Reads the files again; on any problem the current certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.provider, &self.cert, &self.key)?;
        self.current.store(Arc::new(pair));
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamp(&self.cert, &self.key);
        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    /// Reloads if either file's modification time changed.
    pub fn reload_if_changed(&self) {
        let now = stamp(&self.cert, &self.key);
        let changed = now.is_some() && *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) != now;
        if changed {
            if let Err(e) = self.reload() {
                tracing::error!("{e}; the current certificate keeps serving");
            }
        }
    }

    /// A rustls configuration that resolves to whatever pair is current.
    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("aws-lc-rs supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // The suites in `provider()`'s order, not the client's.
        config.ignore_client_order = true;
        // A workload asks once, as it starts, from a process that has never talked to
        // envoi: no client ever presents a ticket or a session id, so issuing them is
        // work (two tickets sealed and written after each TLS 1.3 handshake, a locked
        // cache insert) that nothing uses. bench/README.md, "Cold connections".
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config
    }

    /// Checks the files for changes every `every`, until the task is dropped.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            self.reload_if_changed();
        }
    }
}

#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

/// aws-lc-rs's suites, AES-128-GCM first: as strong as a workload's secrets need, and the
/// cheapest handshake (above).
fn provider() -> CryptoProvider {
    use rustls::CipherSuite::{
        TLS13_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    };
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // A stable sort: the rest keep aws-lc-rs's order.
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            TLS13_AES_128_GCM_SHA256 | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}

fn read_pair(provider: &CryptoProvider, cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_error = |problem: String| TlsError::Cert {
        path: cert.to_path_buf(),
        problem,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no certificate in the file".into()));
    }
    // The key's error text never includes key material.
    let key_error = |problem: String| TlsError::Key {
        path: key.to_path_buf(),
        problem,
    };
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| key_error(e.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| key_error(e.to_string()))?;
    let pair = CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        Ok(()) => Ok(pair),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch),
        // Keys whose public half cannot be derived cannot be checked; rustls will fail the handshake.
        Err(_) => Ok(pair),
    }
}
