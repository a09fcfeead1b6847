//! Logging set-up, the request root span, and the audit line.

use std::time::Duration;

use actix_web::dev::ServiceRequest;
use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

mod fields;
mod json;
mod line;
mod output;

pub use fields::{write_names, Optional};
pub use json::{JsonFields, JsonFormat};
pub use line::{LineFields, LineFormat};
pub use output::flush;

/// Installs the global subscriber, writing to standard error so that standard output
/// stays for what commands print. Lines below WARN are written in batches, at most
/// `flush_interval` after the first (see [`output`]); zero writes each line at once.
///
/// A background writer per line (tracing-appender) was tried and measured worse than a
/// plain `write(2)`: on two cores its channel send and thread wake-up per line cost 15.2
/// against 11.0 µs of CPU per request. The batches here wake their thread once per batch.
pub fn init(filter: EnvFilter, format: LogFormat, flush_interval: Duration) -> Result<(), String> {
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
        LogFormat::Json => builder.fmt_fields(JsonFields).event_format(JsonFormat).try_init(),
    };
    // Lost a race with another initialisation: that one stays, as above.
    let _ = result;
    Ok(())
}

/// The span of one request: its method and a request id (a random UUID). Never headers,
/// query strings or the raw path, where a careless client may have put a token. The
/// workload and the status are in the audit line, an event inside this span.
///
/// Made by envoi's one middleware rather than tracing-actix-web's `TracingLogger`, which
/// also stored the id and the span in the request's extensions and wrapped the body: with
/// the audit on, 1 µs of CPU per request that nothing here reads (bench/README.md). The id
/// is drawn only when the span is enabled.
pub fn request_span(request: &ServiceRequest) -> Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        request_id = %uuid::Uuid::new_v4(),
    )
}
