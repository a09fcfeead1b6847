//! Authentication as an extractor: a handler that takes a [`Workload`] only ever runs
//! for a verified token.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};

use super::error::ApiError;
use super::AppState;
use crate::auth::Workload;

impl FromRequest for Workload {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered by http::configure");
        let mut headers = req.headers().get_all(AUTHORIZATION);
        let header = headers.next();
        // Two Authorization headers are ambiguous: refuse rather than pick one.
        let result = if headers.next().is_some() {
            Err(crate::auth::AuthError::Malformed)
        } else {
            state.verifier.verify_header(header.map(|h| h.as_bytes()))
        };
        ready(result.map_err(|reason| {
            tracing::warn!(target: "envoi::audit", status = 401u16, reason = reason.reason(), "token refused");
            state.metrics.token_refused(reason);
            ApiError::Unauthorized(reason)
        }))
    }
}
