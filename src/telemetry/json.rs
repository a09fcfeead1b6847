//! The "json" log line, written by hand for the same reason as the pretty one: it is
//! written once per answer. tracing-subscriber's JSON format built a map of
//! `serde_json::Value`s for every event and every span, about 2 µs of CPU per answer
//! more than the pretty line (bench/README.md).
//!
//! The shape is tracing-subscriber's with `flatten_event` and `with_current_span`:
//! `{"timestamp":"…","level":"INFO","message":"secrets served","project":"p",…,
//! "target":"envoi::audit","span":{"method":"GET","request_id":"…","name":"request"}}`.

use std::fmt;
use std::time::SystemTime;

use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::fields::{write_json_string as write_string, FieldWriter, Style};
use super::line::{level_label, write_timestamp};

/// Formats events as one JSON object per line.
pub struct JsonFormat;

/// Formats span fields as the members of a JSON object, without its braces.
pub struct JsonFields;

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, SystemTime::now())?;
        let metadata = event.metadata();
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(level_label(metadata.level()).0.trim_start())?;
        writer.write_char('"')?;
        FieldWriter::record(writer.by_ref(), Style::Json, false, |v| event.record(v))?;
        writer.write_str(",\"target\":")?;
        write_string(&mut writer, metadata.target())?;
        if let Some(span) = ctx.event_scope().and_then(|mut scope| scope.next()) {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>().filter(|f| !f.is_empty()) {
                writer.write_str(fields)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            write_string(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        FieldWriter::record(writer, Style::Json, true, |v| fields.record(v))
    }

    /// Fields recorded after the span began join the others as members.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        FieldWriter::record(current.as_writer(), Style::Json, first, |v| fields.record(v))
    }
}
