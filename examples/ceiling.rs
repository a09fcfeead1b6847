//! The "ceiling" for the load benchmarks (bench/load.sh, bench/cold.sh): a bare actix-web
//! server that answers `GET /` with a constant JSON body of the same size as envoi's
//! answer, with no authentication and no policy: what the HTTP stack alone costs on this
//! machine.
//!
//! Usage: ceiling ADDRESS BODY_BYTES [WORKERS] [--tls CERT KEY]
//! With `--tls`, HTTPS with envoi's own rustls configuration: the ServerConfig is built by
//! `envoi::tls::CertStore::server_config`, so whatever envoi's TLS setup is, the ceiling's
//! is the same (only the listener differs: actix's rustls acceptor, not envoi's stage).

#[path = "support/peer.rs"]
mod peer;

use actix_web::{web, App, HttpResponse, HttpServer};

fn main() -> std::io::Result<()> {
    let (positional, tls) = peer::split_tls("ceiling ADDRESS BODY_BYTES [WORKERS] [--tls CERT KEY]");
    let address = positional.first().cloned().unwrap_or_else(|| "127.0.0.1:18090".into());
    let size: usize = positional.get(1).and_then(|s| s.parse().ok()).unwrap_or(400);
    let workers: usize = positional.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    // A valid JSON body of exactly `size` bytes.
    let filler = size.saturating_sub(r#"{"secrets":[],"pad":""}"#.len());
    let body: &'static str = Box::leak(format!(r#"{{"secrets":[],"pad":"{}"}}"#, "x".repeat(filler)).into_boxed_str());
    actix_web::rt::System::new().block_on(async move {
        let mut server = HttpServer::new(move || {
            App::new().route(
                "/",
                web::get().to(move || async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .insert_header(("cache-control", "no-store"))
                        .body(body)
                }),
            )
        });
        if workers > 0 {
            server = server.workers(workers);
        }
        match peer::tls_config(tls)? {
            Some(config) => server.bind_rustls_0_23(&address, config)?.run().await,
            None => server.bind(&address)?.run().await,
        }
    })
}
