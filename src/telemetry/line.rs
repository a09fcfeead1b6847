//! The "pretty" log line, written by hand because it is written once per answer.
//!
//! The line reads as tracing-subscriber's default one does:
//! `2026-11-24T18:41:24.816971Z  INFO request{method=GET request_id=…}: envoi::audit: secrets served project="p" …`.
//! Measured under load (bench/README.md), tracing-subscriber's `Full` format spent about
//! 3 µs a line on styling that was then switched off, a date computed from scratch for
//! every line and `Debug` escaping char by char. Here the date is formatted once a second
//! per thread, text without anything to escape is copied as it is, and every control
//! character is escaped, so that one event is always one line whatever a value holds.

use std::cell::Cell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::fields::{FieldWriter, Style};

/// Formats events as one line each (see the module's documentation).
pub struct LineFormat;

/// Formats span and event fields as `key=value`, strings quoted, controls escaped.
pub struct LineFields;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let ansi = writer.has_ansi_escapes();
        write_timestamp(&mut writer, SystemTime::now())?;
        let metadata = event.metadata();
        let (level, colour) = level_label(metadata.level());
        if ansi {
            write!(writer, " \x1b[{colour}m{level}\x1b[0m ")?;
        } else {
            writer.write_char(' ')?;
            writer.write_str(level)?;
            writer.write_char(' ')?;
        }
        if let Some(scope) = ctx.event_scope() {
            let mut any = false;
            for span in scope.from_root() {
                any = true;
                if ansi {
                    write!(writer, "\x1b[1m{}\x1b[0m", span.name())?;
                } else {
                    writer.write_str(span.name())?;
                }
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>().filter(|f| !f.is_empty()) {
                    writer.write_char('{')?;
                    writer.write_str(fields)?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
            if any {
                writer.write_char(' ')?;
            }
        }
        if ansi {
            write!(writer, "\x1b[2m{}:\x1b[0m ", metadata.target())?;
        } else {
            writer.write_str(metadata.target())?;
            writer.write_str(": ")?;
        }
        FieldWriter::record(writer.by_ref(), Style::Pretty, true, |v| event.record(v))?;
        writer.write_char('\n')
    }
}

impl<'writer> FormatFields<'writer> for LineFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        FieldWriter::record(writer, Style::Pretty, true, |v| fields.record(v))
    }
}

/// The level, padded as tracing-subscriber pads it, and its ANSI colour.
pub(super) fn level_label(level: &Level) -> (&'static str, u8) {
    match *level {
        Level::ERROR => ("ERROR", 31),
        Level::WARN => (" WARN", 33),
        Level::INFO => (" INFO", 32),
        Level::DEBUG => ("DEBUG", 34),
        Level::TRACE => ("TRACE", 35),
    }
}

thread_local! {
    /// The second last formatted on this thread, and its text.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// `2026-11-24T18:41:24.816971Z`, UTC with microseconds.
pub(super) fn write_timestamp(writer: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let text = SECOND.with(|cached| {
        let (second, text) = cached.get();
        if second == seconds {
            return text;
        }
        let text = format_second(seconds);
        cached.set((seconds, text));
        text
    });
    // The buffer holds only ASCII digits and separators.
    writer.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)?;
    write!(writer, ".{:06}Z", since.subsec_micros())
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the Unix epoch.
fn format_second(seconds: u64) -> [u8; 19] {
    let (days, in_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    let mut text = [0u8; 19];
    let mut put = |at: usize, value: u64, width: usize| {
        let mut value = value;
        for i in (0..width).rev() {
            text[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, in_day / 3600, 2);
    put(14, in_day / 60 % 60, 2);
    put(17, in_day % 60, 2);
    for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        text[at] = separator;
    }
    text
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        let cases = [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_709_164_800, "2024-02-29T00:00:00"),
            (1_795_545_684, "2026-11-24T18:41:24"),
            (4_102_444_799, "2099-12-31T23:59:59"),
        ];
        for (seconds, want) in cases {
            let mut text = String::new();
            let at = UNIX_EPOCH + Duration::new(seconds, 816_971_123);
            write_timestamp(&mut text, at).unwrap();
            assert_eq!(text, format!("{want}.816971Z"));
            // Again from the thread's cache of the second.
            text.clear();
            write_timestamp(&mut text, at + Duration::from_micros(5)).unwrap();
            assert_eq!(text, format!("{want}.816976Z"));
        }
    }
}
