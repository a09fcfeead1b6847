//! Logging set-up, the request root span, and the audit line.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::HttpMessage as _;
use std::time::Duration;

use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

mod line;
mod output;

pub use line::{LineFields, LineFormat};
pub use output::flush;

/// Installs the global subscriber, writing to standard error so that standard output
/// stays for what commands print. Lines below WARN are written in batches, at most
/// `flush_interval` after the first (see [`output`]); zero writes each line at once.
///
/// A background writer per line (tracing-appender) was tried and measured worse than a
/// plain `write(2)`: on two cores its channel send and thread wake-up per line cost 15.2
/// against 11.0 µs of CPU per request. The batches here wake their thread once per batch.
pub fn init(level: &str, format: LogFormat, flush_interval: Duration) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("setting `log.level` (ENVOI__LOG__LEVEL): {e}"))?;
    // In tests a process may set up logs more than once; the first subscriber stays.
    if tracing::dispatcher::has_been_set() {
        return Ok(());
    }
    let output = output::Batched::install(flush_interval).map_err(|e| format!("cannot start the log thread: {e}"))?;
    // A panic's message goes straight to standard error: the lines before it go first.
    let report_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush();
        report_panic(info);
    }));
    // Colours only for a person at a terminal; a log collector gets plain text, cheaper too.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(output::BatchedStderr(output))
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Pretty => builder.fmt_fields(LineFields).event_format(LineFormat).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // Lost a race with another initialisation: that one stays, as above.
    let _ = result;
    Ok(())
}

/// The root span of a request: its method and request id. Never headers, query strings
/// or the raw path, where a careless client may have put a token. The status and the
/// workload are in the audit line, an event inside this span.
pub struct EnvoiRootSpan;

impl RootSpanBuilder for EnvoiRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request.extensions().get::<RequestId>().copied();
        tracing::info_span!(
            "request",
            method = %request.method(),
            request_id = request_id.map(tracing::field::display),
        )
    }

    /// Nothing is recorded at the end: no layer envoi installs prints a span as it closes,
    /// and recording into a live span costs a formatting pass per request.
    fn on_request_end<B: MessageBody>(_: Span, _: &Result<ServiceResponse<B>, actix_web::Error>) {}
}
