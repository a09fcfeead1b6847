//! Logging set-up, the request root span, and the audit line.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

mod fields;
mod json;
mod line;
mod output;

pub use fields::{write_names, Optional};
pub use json::{JsonFields, JsonFormat};
pub use line::{LineFields, LineFormat};
pub use output::flush;

/// How log lines are written: for a person (`pretty`) or for a collector (`json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Which log lines are written (`log.level`): targets and levels, or tracing's whole
/// filter language where the setting needs it (span or field directives).
///
/// `EnvFilter` takes a shared lock on every span's creation, entry, exit, record and
/// close, even when none of its directives looks at spans; the request span is entered
/// and left at every poll of a request, by both workers. `Targets` decides per callsite,
/// once, and holds no lock after: tracing's share of envoi's CPU under kept-alive load
/// went from 13.5 to 12.4 % (perf, bench/README.md).
// Made once, at start: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum LogFilter {
    Targets(Targets),
    Env(EnvFilter),
}

impl LogFilter {
    /// `None` when `directives` is not a filter (as `EnvFilter` reads them: `Targets`
    /// would take a misspelt span directive for a target's name).
    pub fn parse(directives: &str) -> Option<Self> {
        let env = EnvFilter::try_new(directives).ok()?;
        let about_spans = directives.contains(['[', '{']);
        match directives.parse::<Targets>() {
            Ok(targets) if !about_spans && !directives.trim().is_empty() => Some(Self::Targets(targets)),
            _ => Some(Self::Env(env)),
        }
    }

    /// The most verbose level the filter lets through anywhere.
    fn max_level(&self) -> LevelFilter {
        use tracing_subscriber::{registry::Registry, Layer};
        let hint = match self {
            Self::Targets(targets) => <Targets as Layer<Registry>>::max_level_hint(targets),
            Self::Env(env) => <EnvFilter as Layer<Registry>>::max_level_hint(env),
        };
        hint.unwrap_or(LevelFilter::TRACE)
    }
}

/// Installs the global subscriber, writing to standard error so that standard output
/// stays for what commands print. Lines below WARN are written in batches, at most
/// `flush_interval` after the first (see [`output`]); zero writes each line at once.
///
/// A background writer per line (tracing-appender) was tried and measured worse than a
/// plain `write(2)`: on two cores its channel send and thread wake-up per line cost 15.2
/// against 11.0 µs of CPU per request. The batches here wake their thread once per batch.
pub fn init(filter: LogFilter, format: LogFormat, flush_interval: Duration) -> Result<(), String> {
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
    // The builder's level is the filter's most verbose one. It becomes tracing's global
    // maximum, and the `log` crate's, whose records (rustls writes its debug lines through
    // it) otherwise each went through the bridge to tracing to be refused there: 0.4 µs
    // of every TLS connection at `info` (perf, bench/README.md). The filter decides the rest.
    let builder = tracing_subscriber::fmt()
        .with_max_level(filter.max_level())
        .with_writer(output::BatchedStderr(output))
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Pretty => filtered(builder.fmt_fields(LineFields).event_format(LineFormat).finish(), filter),
        LogFormat::Json => filtered(builder.fmt_fields(JsonFields).event_format(JsonFormat).finish(), filter),
    };
    // Lost a race with another initialisation: that one stays, as above.
    let _ = result;
    Ok(())
}

/// Installs `subscriber` behind `filter` as the global subscriber.
fn filtered<S>(subscriber: S, filter: LogFilter) -> Result<(), tracing_subscriber::util::TryInitError>
where
    S: tracing::Subscriber + Send + Sync + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let (targets, env) = match filter {
        LogFilter::Targets(targets) => (Some(targets), None),
        LogFilter::Env(env) => (None, Some(env)),
    };
    subscriber.with(targets).with(env).try_init()
}

/// The span of every request, through tracing-actix-web's `TracingLogger`: its method
/// and the request id the middleware drew (a random UUID). Never headers, query strings
/// or the raw path, where a careless client may have put a token. The workload and the
/// status are in the audit line, an event inside this span; the span itself is never
/// written after the answer (no span-close events), so the status is not recorded into
/// it. Built without tracing-actix-web's `emit_event_on_error`: a refused token is
/// counted and audited once, not logged twice.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        use actix_web::HttpMessage as _;
        let id = request.extensions().get::<tracing_actix_web::RequestId>().copied();
        tracing::info_span!(
            "request",
            method = %request.method(),
            request_id = tracing::field::display(OrNone(id)),
        )
    }

    fn on_request_end<B: MessageBody>(_: Span, _: &Result<ServiceResponse<B>, actix_web::Error>) {}
}

/// A request id, or `none` if the middleware did not set one.
struct OrNone(Option<tracing_actix_web::RequestId>);

impl std::fmt::Display for OrNone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(id) => id.fmt(f),
            None => f.write_str("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogFilter;

    #[test]
    fn levels_and_targets_take_the_lock_free_filter_and_span_directives_the_whole_one() {
        let kind = |directives: &str| match LogFilter::parse(directives) {
            Some(LogFilter::Targets(_)) => "targets",
            Some(LogFilter::Env(_)) => "env",
            None => "refused",
        };
        assert_eq!(kind("info"), "targets");
        assert_eq!(kind("warn,envoi::audit=info,actix_web=off"), "targets");
        assert_eq!(kind("[request]=debug"), "env");
        assert_eq!(kind("info,envoi[request{status=500}]=debug"), "env");
        assert_eq!(kind("bad[filter"), "refused");
        assert_eq!(kind("info,=x"), "refused");
    }

    #[test]
    fn the_global_maximum_is_the_most_verbose_level_any_directive_lets_through() {
        use tracing_subscriber::filter::LevelFilter;
        let max = |directives: &str| LogFilter::parse(directives).expect("a filter").max_level();
        assert_eq!(max("info"), LevelFilter::INFO);
        assert_eq!(max("warn,envoi::audit=info,actix_web=off"), LevelFilter::INFO);
        assert_eq!(max("error,rustls=debug"), LevelFilter::DEBUG);
        assert_eq!(max("warn,[request]=trace"), LevelFilter::TRACE);
        assert_eq!(max("off"), LevelFilter::OFF);
    }
}
