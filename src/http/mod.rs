//! The route table and the handlers.

mod error;
mod extract;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

pub use error::ApiError;

use crate::auth::{AuthError, Verifier, Workload};
use crate::store::PolicyHolder;

/// What every handler shares: built once at start, read-only afterwards.
pub struct AppState {
    pub verifier: Verifier,
    pub policy: Arc<PolicyHolder>,
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(verifier: Verifier, policy: Arc<PolicyHolder>) -> Self {
        Self {
            verifier,
            policy,
            metrics: Metrics::default(),
        }
    }
}

/// Counters kept now for the metrics endpoint of a later release.
#[derive(Debug, Default)]
pub struct Metrics {
    pub tokens_refused: AtomicU64,
}

impl Metrics {
    fn token_refused(&self, _reason: AuthError) {
        self.tokens_refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Registers the routes and the shared state; used by the server and the tests alike.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .service(
                web::resource("/")
                    .route(web::get().to(secrets))
                    .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::MethodNotAllowed) })),
            )
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::NotFound) }));
    }
}

/// `GET /`: the secrets of the workload the token names.
async fn secrets(workload: Workload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let snapshot = state.policy.current();
    let Some(snapshot) = snapshot.as_ref() else {
        tracing::warn!(target: "envoi::audit", project = workload.project(), r#type = workload.kind(), id = workload.id(), status = 503u16, "no policy loaded");
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

/// The names (never the values) of what an answer gives: `ENV:KEY,FILE:/path`.
struct AuditNames<'a, 'p>(&'a crate::policy::Answer<'p>);

impl std::fmt::Display for AuditNames<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, item) in self.0.items().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            match &item.target {
                crate::policy::Target::Env(key) => write!(f, "ENV:{key}")?,
                crate::policy::Target::File(path) => write!(f, "FILE:{path}")?,
            }
        }
        Ok(())
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(error::mime_json())
        .body(r#"{"status":"ok"}"#)
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.policy.current().as_ref() {
        Some(snapshot) => {
            let age = snapshot.loaded_at.elapsed().map(|d| d.as_secs()).unwrap_or(0);
            HttpResponse::Ok()
                .content_type(error::mime_json())
                .body(format!(r#"{{"status":"ready","snapshot_age_seconds":{age}}}"#))
        }
        None => HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")))
            .content_type(error::mime_json())
            .body(r#"{"status":"no policy loaded"}"#),
    }
}
