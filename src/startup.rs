//! Building and running the HTTP server: one builder for `serve` and the tests.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpServer};
use tracing_actix_web::TracingLogger;

use crate::http::{self, AppState};
use crate::telemetry::EnvoiRootSpan;

/// Server settings that are not part of the shared state.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: String,
    /// 0: one per core.
    pub workers: usize,
    pub shutdown_timeout: Duration,
}

pub struct Application {
    server: Server,
    address: SocketAddr,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the server.
    pub fn build(state: AppState, options: &ServerOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(&options.listen)?;
        let address = listener.local_addr()?;
        let state = web::Data::new(state);
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(
                    DefaultHeaders::new()
                        .add((header::CACHE_CONTROL, "no-store"))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
                )
                .wrap(TracingLogger::<EnvoiRootSpan>::new())
                .configure(http::configure(state.clone()))
        })
        .shutdown_timeout(options.shutdown_timeout.as_secs());
        if options.workers > 0 {
            server = server.workers(options.workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self { server, address })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then lets requests in flight finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
