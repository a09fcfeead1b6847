//! Authentication as an extractor: a handler that takes a [`Workload`] only ever runs
//! for a verified token.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};

use super::error::ApiError;
use super::AppState;
use crate::auth::{AuthError, Workload};
use crate::metrics::WorkerMetrics;

impl FromRequest for Workload {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = AppState::of(req);
        let worker = req.app_data::<web::Data<WorkerMetrics>>();
        let peer = req.peer_addr().map(|a| a.ip());
        let limiter = state.limiter.as_ref().zip(peer);
        let result = if limiter.is_some_and(|(limiter, peer)| limiter.is_blocked(peer)) {
            Err(AuthError::RateLimited)
        } else {
            let mut headers = req.headers().get_all(AUTHORIZATION);
            let header = headers.next();
            // Two Authorization headers are ambiguous: refuse rather than pick one.
            if headers.next().is_some() {
                Err(AuthError::Malformed)
            } else {
                state.verifier.verify_header(header.map(|h| h.as_bytes()), |key| {
                    if let Some(worker) = worker {
                        worker.token_verified(key);
                    }
                })
            }
        };
        ready(result.map_err(|reason| {
            tracing::warn!(target: "envoi::audit", status = if reason == AuthError::RateLimited { 429u16 } else { 401 }, reason = reason.reason(), "token refused");
            if let Some(worker) = worker {
                worker.token_refused(reason);
            }
            if let (Some((limiter, peer)), false) = (limiter, reason == AuthError::RateLimited) {
                limiter.record_failure(peer);
            }
            ApiError::Unauthorized(reason)
        }))
    }
}
