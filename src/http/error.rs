//! The one place where errors become HTTP answers: a status, the headers the protocol
//! asks for, and a short generic body that echoes nothing of the request.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized: {0}")]
    Unauthorized(#[from] AuthError),
    #[error("no policy snapshot is loaded")]
    Unavailable,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("not found")]
    NotFound,
    #[error("request carried a body")]
    BodyNotAllowed,
    #[error("request headers too large")]
    HeadersTooLarge,
}

/// Seconds a client should wait before asking again while no policy is loaded.
const RETRY_AFTER_SECONDS: &str = "5";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(AuthError::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BodyNotAllowed => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        let body: &'static str = match self {
            Self::Unauthorized(AuthError::RateLimited) => {
                let retry = super::limit::WINDOW.as_secs().to_string();
                response.insert_header((header::RETRY_AFTER, retry));
                r#"{"error":"too many failed authentications"}"#
            }
            Self::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
                r#"{"error":"unauthorized"}"#
            }
            Self::Unavailable => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS)));
                r#"{"error":"unavailable"}"#
            }
            Self::MethodNotAllowed => {
                response.insert_header((header::ALLOW, HeaderValue::from_static("GET")));
                r#"{"error":"method not allowed"}"#
            }
            Self::NotFound => r#"{"error":"not found"}"#,
            Self::BodyNotAllowed => r#"{"error":"request bodies are not accepted"}"#,
            Self::HeadersTooLarge => r#"{"error":"request headers too large"}"#,
        };
        response.content_type(mime_json()).body(body)
    }
}

pub(crate) fn mime_json() -> HeaderValue {
    HeaderValue::from_static("application/json")
}
