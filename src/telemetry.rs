//! Logging set-up, the request root span, and the audit line.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::HttpMessage as _;
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Keeps the background log writer running; dropping it flushes what is buffered.
#[must_use = "logs written in the background are flushed when this is dropped"]
pub struct LogGuard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global subscriber, writing to standard error so that standard output
/// stays for what commands print. With `background`, lines are written by a thread of
/// their own, so that a request never waits on the terminal or the log collector's pipe
/// (nothing is dropped: a full buffer makes the logging thread wait, not the line vanish).
pub fn init(level: &str, format: LogFormat, background: bool) -> Result<LogGuard, String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("setting `log.level` (ENVOI__LOG__LEVEL): {e}"))?;
    let (writer, guard) = if background {
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .thread_name("envoi-log")
            .finish(std::io::stderr());
        (tracing_subscriber::fmt::writer::BoxMakeWriter::new(writer), Some(guard))
    } else {
        (tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr), None)
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let result = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
    // A second initialisation (in tests) keeps the first subscriber.
    let _ = result;
    Ok(LogGuard { _worker: guard })
}

/// The root span of a request: method, route, status and request id. Never headers,
/// query strings or the raw path, where a careless client may have put a token.
pub struct EnvoiRootSpan;

impl RootSpanBuilder for EnvoiRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request.extensions().get::<RequestId>().copied();
        tracing::info_span!(
            "request",
            method = %request.method(),
            route = tracing::field::Empty,
            status = tracing::field::Empty,
            request_id = %request_id.map(|id| id.to_string()).unwrap_or_default(),
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, actix_web::Error>) {
        match outcome {
            Ok(response) => {
                span.record(
                    "route",
                    response.request().match_pattern().as_deref().unwrap_or("unmatched"),
                );
                span.record("status", response.status().as_u16());
            }
            Err(error) => {
                span.record("status", error.as_response_error().status_code().as_u16());
            }
        }
    }
}
