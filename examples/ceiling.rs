//! The "ceiling" for the load benchmark (bench/load.sh): a bare actix-web server that
//! answers `GET /` with a constant JSON body of the same size as envoi's answer, with no
//! authentication and no policy: what the HTTP stack alone costs on this machine.
//!
//! Usage: ceiling ADDRESS BODY_BYTES [WORKERS]

use actix_web::{web, App, HttpResponse, HttpServer};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(400);
    let workers: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
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
        server.bind(&address)?.run().await
    })
}
