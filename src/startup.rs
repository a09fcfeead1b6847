//! Building and running the HTTP server: one builder for `serve` and the tests.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::{HttpService, Protocol, Request, Response};
use actix_server::ServerBuilder;
use actix_service::{map_config, IntoServiceFactory, ServiceFactoryExt as _};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{fn_service, AppConfig, Server, Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::rt::net::TcpStream;
use actix_web::{web, App, HttpServer};
use futures_util::future::{Either, FutureExt as _};

use crate::config::{ConfigError, ServerSettings};
use crate::http::deadline::AnswerDeadline;
use crate::http::{self, ApiError, AppState};
use crate::metrics::{Route, WorkerMetrics};
use crate::telemetry;
use crate::tls::handshake::{self, HandshakeLimits, Handshakes};
use crate::tls::CertStore;

/// Server settings that are not part of the shared state.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: String,
    /// 0: one per core.
    pub workers: usize,
    pub shutdown_timeout: Duration,
}

impl ServerOptions {
    pub fn from_settings(server: &ServerSettings) -> Self {
        Self {
            listen: server.listen.clone(),
            workers: server.workers,
            shutdown_timeout: Duration::from_secs(server.shutdown_timeout_seconds),
        }
    }
}

/// Bounds on what a client may take (SPEC §6, issue "production edges"). Each is a
/// setting; the defaults suit a platform fetching secrets at workload start.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Idle time a kept-alive connection may sit; zero closes after each answer.
    pub keep_alive: Duration,
    /// Time a client has to send the whole request head; slow clients get 408.
    pub request_timeout: Duration,
    /// Time allowed to shut a connection down.
    pub disconnect_timeout: Duration,
    /// Time a TLS client has, from its connection's acceptance, to finish the handshake.
    pub tls_handshake_timeout: Duration,
    /// Concurrent connections per worker.
    pub max_connections: usize,
    /// TLS handshakes in flight per worker; past it, the oldest is closed.
    pub max_tls_handshakes: usize,
    /// TLS handshakes in flight from one client address; past it, that address's oldest
    /// is closed. 0: no such limit.
    pub max_tls_handshakes_per_address: usize,
    pub backlog: u32,
    /// The request head's header fields, names and values, in bytes; past it, 431.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            request_timeout: Duration::from_secs(5),
            disconnect_timeout: Duration::from_secs(2),
            tls_handshake_timeout: Duration::from_secs(3),
            max_connections: 10_000,
            max_tls_handshakes: 256,
            max_tls_handshakes_per_address: 64,
            backlog: 1024,
            max_header_bytes: 32 * 1024,
        }
    }
}

/// Everything beyond the plain listener: limits, TLS, a separate admin listener.
#[derive(Debug, Clone, Default)]
pub struct Edges {
    pub limits: Limits,
    pub tls: Option<Arc<CertStore>>,
    /// Serve `/metrics` (and health) here instead of on the main listener.
    pub admin_listen: Option<String>,
}

impl Edges {
    /// The edges that `[server]` asks for; the certificate and key are read here.
    pub fn from_settings(server: &ServerSettings) -> Result<Self, ConfigError> {
        let ms = Duration::from_millis;
        let limits = Limits {
            keep_alive: Duration::from_secs(server.keep_alive_seconds),
            request_timeout: ms(server.request_timeout_ms),
            disconnect_timeout: ms(server.disconnect_timeout_ms),
            tls_handshake_timeout: ms(server.tls_handshake_timeout_ms),
            max_connections: server.max_connections.max(1),
            max_tls_handshakes: server.max_tls_handshakes.max(1),
            max_tls_handshakes_per_address: server.max_tls_handshakes_per_address,
            backlog: server.backlog.max(1),
            max_header_bytes: server.max_header_bytes.max(1024),
        };
        let tls = match (&server.tls.cert, &server.tls.key) {
            (Some(cert), Some(key)) => Some(CertStore::load(cert, key).map_err(|e| ConfigError::Invalid {
                key: "server.tls",
                problem: e.to_string(),
            })?),
            (None, None) => None,
            _ => return Err(ConfigError::Invalid {
                key: "server.tls",
                problem:
                    "give both server.tls.cert and server.tls.key (ENVOI__SERVER__TLS__CERT, ENVOI__SERVER__TLS__KEY)"
                        .into(),
            }),
        };
        Ok(Edges {
            limits,
            tls,
            admin_listen: server.admin_listen.clone(),
        })
    }
}

pub struct Application {
    server: Server,
    address: SocketAddr,
    admin: Option<(Server, SocketAddr)>,
}

/// A listener whose queue of connections not yet accepted holds `backlog`. std's `bind`
/// listens with 128, and actix's own backlog setting applies only to the sockets it binds
/// itself: a fleet starting at once overflowed those 128, and every connection whose SYN
/// was dropped waited a second for its retry (bench/README.md, "Fleet start").
fn bind(address: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(address)?;
    // Listening again on a listening socket sets its queue's length (Linux, BSDs); the
    // kernel caps it at net.core.somaxconn.
    socket2::SockRef::from(&listener).listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(listener)
}

/// Why a request is refused before routing, if it is.
fn refuse(req: &ServiceRequest, max_header_bytes: usize) -> Option<ApiError> {
    let headers = req.headers();
    // actix-http itself takes heads up to 128 KiB; the protocol needs one short header.
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > max_header_bytes {
        return Some(ApiError::HeadersTooLarge);
    }
    (is_protocol_request(req) && has_body(req)).then_some(ApiError::BodyNotAllowed)
}

/// `GET /`, the one request whose body is judged here. The route and the method are
/// judged first (SPEC §1): another method on `/` is a 405 and an unknown path a 404,
/// body or not, and neither reads the body.
fn is_protocol_request(req: &ServiceRequest) -> bool {
    req.method() == actix_web::http::Method::GET && req.path() == "/"
}

/// A request with a body is refused: the protocol has none.
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0")
}

fn keep_alive(limits: &Limits) -> actix_web::http::KeepAlive {
    if limits.keep_alive.is_zero() {
        actix_web::http::KeepAlive::Disabled
    } else {
        limits.keep_alive.into()
    }
}

/// What each worker's HTTP service is built with.
#[derive(Clone)]
struct HttpSettings {
    address: SocketAddr,
    shutdown: actix_server::GracefulShutdownSignal,
    keep_alive: actix_web::http::KeepAlive,
    request_timeout: Duration,
    disconnect_timeout: Duration,
}

impl HttpSettings {
    /// One worker's HTTP/1 service for `app` over connections of type `T`, `secure` over TLS.
    fn service<T, I, S, B>(
        &self,
        app: I,
        secure: bool,
    ) -> impl ServiceFactory<(T, Protocol, Option<SocketAddr>), Config = (), Response = (), Error = (), InitError = ()>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: std::fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let app = app.into_factory().map_err(|e| e.into().error_response());
        // What actix-web gives an app behind its own listener; its constructor is
        // crate-private, and this is the one actix-web keeps for servers built outside it.
        let app_config = AppConfig::__priv_test_new(secure, self.address.to_string(), self.address);
        let shutdown = self.shutdown.clone();
        HttpService::build()
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            .keep_alive(self.keep_alive)
            .client_request_timeout(self.request_timeout)
            .client_disconnect_timeout(self.disconnect_timeout)
            .local_addr(self.address)
            .finish(map_config(app, move |()| app_config.clone()))
            .map_err(|_| ())
    }
}

/// The main listener's server, plain or TLS: what `HttpServer` builds, with two changes.
/// Over TLS, envoi's own handshake stage takes the place of actix's acceptor, whose fixed
/// slots silent clients could fill (`tls::handshake`). And every connection, under its
/// TLS if any, is an [`AnswerDeadline`]: actix-http times only a connection's first
/// request head, and a client could hold a connection forever after it.
fn main_server<F, I, S, B>(
    app: F,
    listener: TcpListener,
    tls: Option<(&Arc<CertStore>, &Arc<crate::metrics::Registry>)>,
    options: &ServerOptions,
    limits: &Limits,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let address = listener.local_addr()?;
    let mut builder = ServerBuilder::new()
        .shutdown_timeout(options.shutdown_timeout.as_secs())
        .max_concurrent_connections(limits.max_connections)
        .backlog(limits.backlog);
    if options.workers > 0 {
        builder = builder.workers(options.workers);
    }
    let (request_timeout, idle) = (limits.request_timeout, limits.keep_alive);
    let http = HttpSettings {
        address,
        shutdown: builder.graceful_shutdown_signal(),
        keep_alive: keep_alive(limits),
        request_timeout,
        disconnect_timeout: limits.disconnect_timeout,
    };
    let server = match tls {
        Some((certs, metrics)) => {
            let config = Arc::new(certs.server_config());
            let handshake_limits = HandshakeLimits {
                timeout: limits.tls_handshake_timeout,
                per_worker: limits.max_tls_handshakes,
                per_address: limits.max_tls_handshakes_per_address,
            };
            let shared = Arc::new(handshake::Shared::default());
            let metrics = metrics.clone();
            builder.listen("envoi-https", listener, move || {
                let stage = Handshakes::new(config.clone(), handshake_limits, shared.clone(), metrics.clone());
                fn_service(move |tcp: TcpStream| {
                    let peer = tcp.peer_addr().ok();
                    let io = AnswerDeadline::new(tcp, request_timeout, idle);
                    stage.clone().handshake(io, peer).map(|done| {
                        done.map(|(tls, peer)| (tls, Protocol::Http1, peer))
                            .map_err(|e| tracing::debug!("{e}"))
                    })
                })
                .and_then(http.service(app(), true))
            })?
        }
        None => builder.listen("envoi-http", listener, move || {
            fn_service(move |tcp: TcpStream| {
                let peer = tcp.peer_addr().ok();
                let io = AnswerDeadline::new(tcp, request_timeout, idle);
                std::future::ready(Ok::<_, ()>((io, Protocol::Http1, peer)))
            })
            .and_then(http.service(app(), false))
        })?,
    };
    Ok(server.run())
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the server with the
    /// default limits, no TLS and `/metrics` on the main listener.
    pub fn build(state: AppState, options: &ServerOptions) -> std::io::Result<Self> {
        Self::build_with(state, options, &Edges::default())
    }

    pub fn build_with(state: AppState, options: &ServerOptions, edges: &Edges) -> std::io::Result<Self> {
        let listener = bind(&options.listen, edges.limits.backlog)?;
        let address = listener.local_addr()?;
        let state = web::Data::new(state);
        let metrics_here = edges.admin_listen.is_none();
        let app_state = state.clone();
        let limits = &edges.limits;
        let max_header_bytes = limits.max_header_bytes;
        let app = move || {
            let state = app_state.clone();
            // Each worker counts into its own metrics: no shared cache line per request.
            let worker: Arc<WorkerMetrics> = state.registry.worker();
            let observe = worker.clone();
            App::new()
                .app_data(web::Data::from(worker))
                .configure(http::configure(state.clone(), metrics_here))
                .wrap_fn(move |req: ServiceRequest, service| {
                    let started = Instant::now();
                    let observe = observe.clone();
                    let route = Route::of_path(req.path());
                    // Whatever the route, a body is never read: the answer closes the
                    // connection, so that the rest of the body cannot hold it open.
                    let sends_body = has_body(&req);
                    let answer = if let Some(refusal) = refuse(&req, max_header_bytes) {
                        if matches!(refusal, ApiError::BodyNotAllowed) {
                            state
                                .registry
                                .bodies_refused
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        let refused: ServiceResponse<BoxBody> = req.error_response(refusal);
                        Either::Left(std::future::ready(Ok(refused)))
                    } else {
                        Either::Right(service.call(req))
                    };
                    answer.map(move |mut result| {
                        if let Ok(response) = &mut result {
                            // Every answer, error or not: nothing envoi says may be cached.
                            let headers = response.headers_mut();
                            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
                            observe.observe(route, response.status().as_u16(), started.elapsed());
                            if sends_body {
                                response
                                    .response_mut()
                                    .head_mut()
                                    .set_connection_type(actix_http::ConnectionType::Close);
                            }
                        }
                        result
                    })
                })
                // Outermost: the refusals above and the audit line happen inside its span.
                .wrap(tracing_actix_web::TracingLogger::<telemetry::RequestSpan>::new())
        };
        let tls = edges.tls.as_ref().map(|certs| (certs, &state.registry));
        let server = main_server(app, listener, tls, options, limits)?;

        let admin = match &edges.admin_listen {
            Some(listen) => {
                let listener = bind(listen, edges.limits.backlog)?;
                let admin_address = listener.local_addr()?;
                let admin_state = state.clone();
                let admin = HttpServer::new(move || {
                    App::new()
                        .app_data(admin_state.clone())
                        .configure(|cfg| http::configure_admin(cfg, true))
                })
                .workers(1)
                .shutdown_timeout(options.shutdown_timeout.as_secs())
                .listen(listener)?
                .run();
                Some((admin, admin_address))
            }
            None => None,
        };
        Ok(Self { server, address, admin })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, a)| *a)
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then lets requests in flight finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.admin {
            Some((admin, _)) => {
                let admin_handle = admin.handle();
                let admin = actix_web::rt::spawn(admin);
                let result = self.server.await;
                admin_handle.stop(true).await;
                let _ = admin.await;
                result
            }
            None => self.server.await,
        }
    }
}
