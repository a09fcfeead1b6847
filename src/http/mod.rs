//! The route table and the handlers.

pub mod deadline;
mod error;
mod extract;
pub mod limit;

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

pub use error::ApiError;

use crate::auth::{Verifier, Workload};
use crate::metrics::Registry;
use crate::store::PolicyHolder;
use limit::FailureLimiter;

/// What every handler shares: built once at start, read-only afterwards.
pub struct AppState {
    pub verifier: Verifier,
    pub policy: Arc<PolicyHolder>,
    pub registry: Arc<Registry>,
    /// Past this, a snapshot not confirmed against its source is not served.
    pub max_staleness: Option<std::time::Duration>,
    pub limiter: Option<FailureLimiter>,
}

impl AppState {
    pub fn new(verifier: Verifier, policy: Arc<PolicyHolder>) -> Self {
        Self {
            registry: Arc::new(Registry::new(policy.clone(), verifier.key_count())),
            verifier,
            policy,
            max_staleness: None,
            limiter: None,
        }
    }

    pub fn with_max_staleness(mut self, max: Option<std::time::Duration>) -> Self {
        self.max_staleness = max;
        self
    }

    /// Refuse addresses with more than `limit` failed authentications a minute.
    pub fn with_failure_limit(mut self, limiter: Option<FailureLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// The state `configure` registered.
    pub(crate) fn of(request: &HttpRequest) -> &Self {
        request
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered by http::configure")
    }

    /// Whether the snapshot is too old to serve.
    fn too_stale(&self) -> bool {
        self.max_staleness
            .is_some_and(|max| self.policy.staleness().is_some_and(|age| age > max))
    }
}

/// Registers the routes and the shared state; used by the server and the tests alike.
/// `/metrics` is served here unless an admin listener takes it.
pub fn configure(state: web::Data<AppState>, with_metrics: bool) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state).service(
            web::resource("/")
                .route(web::get().to(secrets))
                .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::MethodNotAllowed) })),
        );
        configure_admin(cfg, with_metrics);
        cfg.default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::NotFound) }));
    }
}

/// The operational routes: health, readiness and, if asked, metrics.
pub fn configure_admin(cfg: &mut web::ServiceConfig, with_metrics: bool) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
    if with_metrics {
        cfg.route("/metrics", web::get().to(metrics));
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.registry.render())
}

/// `GET /`: the secrets of the workload the token names.
///
/// The state is borrowed from the request rather than extracted as `web::Data`: that
/// clones an `Arc` both workers share, and the two workers' count on it cost every
/// request a cache miss on the state beside it (perf, bench/README.md).
async fn secrets(workload: Workload, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let state = AppState::of(&request);
    let snapshot = state.policy.current();
    let Some(snapshot) = snapshot.as_ref().filter(|_| !state.too_stale()) else {
        // A stale snapshot is held but not served: the line says which of the two it is.
        let why = if snapshot.is_some() {
            "the policy snapshot is older than store.max_staleness_seconds"
        } else {
            "no policy loaded"
        };
        tracing::warn!(target: "envoi::audit", project = workload.project(), r#type = workload.kind(), id = workload.id(), status = 503u16, "{why}");
        return Err(ApiError::Unavailable);
    };
    let answer = snapshot.policy.answer(&workload);
    let mut body = Vec::new();
    answer.write_json(&workload, &mut body);
    tracing::info!(
        target: "envoi::audit",
        project = workload.project(),
        r#type = workload.kind(),
        id = workload.id(),
        status = 200u16,
        given = %AuditNames(&answer),
        "secrets served"
    );
    Ok(HttpResponse::Ok().content_type(error::mime_json()).body(body))
}

/// The names (never the values) of what an answer gives: `["ENV:KEY","FILE:/path"]` in
/// a JSON log, `ENV:KEY,FILE:/path` on a pretty line.
struct AuditNames<'a, 'p>(&'a crate::policy::Answer<'p>);

impl std::fmt::Display for AuditNames<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = self.0.items().map(|item| {
            let kind = match item.target() {
                crate::policy::Target::Env(_) => "ENV:",
                crate::policy::Target::File(_) => "FILE:",
            };
            [kind, item.target().name()]
        });
        crate::telemetry::write_names(f, names)
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(error::mime_json())
        .body(r#"{"status":"ok"}"#)
}

/// Ready when a snapshot is loaded (and, with a maximum staleness, fresh enough). The
/// body tells the snapshot's age: how long since it was last confirmed current.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (ready, body) = match state.policy.staleness() {
        None => (false, r#"{"status":"no policy loaded"}"#.to_owned()),
        Some(age) => {
            let status = if state.too_stale() { "stale" } else { "ready" };
            let source = if state.policy.source_reachable() {
                "reachable"
            } else {
                "unreachable"
            };
            (
                status == "ready",
                format!(
                    r#"{{"status":"{status}","snapshot_age_seconds":{},"source":"{source}"}}"#,
                    age.as_secs()
                ),
            )
        }
    };
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        let mut unavailable = HttpResponse::ServiceUnavailable();
        unavailable.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
        unavailable
    };
    response.content_type(error::mime_json()).body(body)
}
