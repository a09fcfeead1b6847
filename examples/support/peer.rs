//! What the benchmark servers (examples/ceiling.rs, examples/naive.rs) share: their
//! `--tls CERT KEY`, and HTTPS with envoi's own rustls configuration (built by
//! `envoi::tls::CertStore::server_config`, so whatever envoi's TLS setup is, theirs is the
//! same; only the listener differs: actix's rustls acceptor, not envoi's stage).

/// The positional arguments, and the pair after `--tls` if given; exits 2 with `usage`
/// if `--tls` lacks its two files.
pub fn split_tls(usage: &str) -> (Vec<String>, Option<(String, String)>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().position(|a| a == "--tls") {
        Some(at) if args.len() >= at + 3 => (args[..at].to_vec(), Some((args[at + 1].clone(), args[at + 2].clone()))),
        Some(_) => {
            eprintln!("usage: {usage}");
            std::process::exit(2);
        }
        None => (args, None),
    }
}

/// envoi's server configuration for the pair, if one was given.
pub fn tls_config(tls: Option<(String, String)>) -> std::io::Result<Option<rustls::ServerConfig>> {
    let Some((cert, key)) = tls else { return Ok(None) };
    let store = envoi::tls::CertStore::load(cert.as_ref(), key.as_ref())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok(Some(store.server_config()))
}
