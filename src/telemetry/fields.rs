//! Writing field values into a log line, for both formats: one visitor, so that the
//! pretty and the JSON line escape alike.

use std::cell::Cell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::format::Writer;

/// The line a field is written into.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// `message key="text" key=1`, separated by spaces.
    Pretty,
    /// `"message":"…","key":"text","key":1`, members of a JSON object.
    Json,
}

/// Writes each field it visits as `key=value` or `"key":value`.
pub(super) struct FieldWriter<'a> {
    writer: Writer<'a>,
    style: Style,
    first: bool,
    result: fmt::Result,
}

impl<'a> FieldWriter<'a> {
    /// Runs `visit` with a writer of fields; `first` says whether nothing precedes them.
    pub(super) fn record(writer: Writer<'a>, style: Style, first: bool, visit: impl FnOnce(&mut Self)) -> fmt::Result {
        let mut fields = Self {
            writer,
            style,
            first,
            result: Ok(()),
        };
        visit(&mut fields);
        fields.result
    }

    /// The separator and the key (none for a pretty line's message), then the value.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'a>, Style) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let first = std::mem::replace(&mut self.first, false);
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        let writer = &mut self.writer;
        self.result = match self.style {
            Style::Pretty => {
                let separator = if first { Ok(()) } else { writer.write_char(' ') };
                separator.and_then(|()| match name {
                    "message" => Ok(()),
                    name => writer.write_str(name).and_then(|()| writer.write_char('=')),
                })
            }
            Style::Json => {
                let separator = if first { Ok(()) } else { writer.write_char(',') };
                separator
                    .and_then(|()| write_json_string(writer, name))
                    .and_then(|()| writer.write_char(':'))
            }
        }
        .and_then(|()| value(writer, self.style));
    }

    /// Text: quoted and escaped, except a pretty line's message, escaped only.
    fn text(&mut self, field: &Field, text: impl fmt::Display) {
        let bare = field.name() == "message";
        self.field(field, |w, style| {
            let escape = match style {
                Style::Json => Escape::Json,
                Style::Pretty if bare => Escape::Text,
                Style::Pretty => Escape::Quoted,
            };
            let quote = escape != Escape::Text;
            if quote {
                w.write_char('"')?;
            }
            write!(
                Escaped {
                    out: &mut *w,
                    style: escape
                },
                "{text}"
            )?;
            if quote {
                w.write_char('"')?;
            }
            Ok(())
        });
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w, _| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w, _| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those go as text.
        self.field(field, |w, style| match style {
            Style::Json if !value.is_finite() => write!(w, "\"{value}\""),
            _ => write!(w, "{value}"),
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w, _| w.write_str(if value { "true" } else { "false" }));
    }

    /// Written as its `Debug` text: bare on a pretty line, a string in JSON, unless the
    /// value writes itself as JSON ([`Optional`], [`write_names`]).
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w, style| match style {
            Style::Pretty => write!(
                Escaped {
                    out: &mut *w,
                    style: Escape::Text
                },
                "{value:?}"
            ),
            Style::Json => {
                let mut slot = JsonSlot {
                    out: w,
                    started: false,
                    raw: false,
                };
                SLOT.set(Slot::Open);
                let written = write!(slot, "{value:?}");
                let claimed = SLOT.replace(Slot::Closed) == Slot::Claimed;
                written.and_then(|()| slot.finish(claimed))
            }
        });
    }
}

/// Whether a JSON field's value is being written, and by whom.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not inside a JSON field, or its value has begun as a string.
    Closed,
    /// Inside a JSON field, before anything of its value is written.
    Open,
    /// The value said it writes JSON itself ([`claim_json`]).
    Claimed,
}

thread_local! {
    /// tracing hands a field's value over as `&dyn Debug`, with no way to ask what it
    /// is: a value that can be written as JSON (an array, a `null`) says so here, the
    /// moment it begins to write, and is then copied unquoted.
    static SLOT: Cell<Slot> = const { Cell::new(Slot::Closed) };
}

/// Whether the value now being formatted is a JSON log field's whole value, which the
/// caller must then write as JSON text. False everywhere else (a pretty line, a
/// `format!`, or inside another value that has begun to write).
fn claim_json() -> bool {
    SLOT.with(|slot| {
        let open = slot.get() == Slot::Open;
        if open {
            slot.set(Slot::Claimed);
        }
        open
    })
}

/// The value of a JSON field: a string of the `Debug` text, escaped, or, for a value
/// that claimed the field, its own JSON copied as it is.
struct JsonSlot<'a, 'w> {
    out: &'a mut Writer<'w>,
    started: bool,
    raw: bool,
}

impl JsonSlot<'_, '_> {
    /// Closes the string; `claimed`: the value claimed the field and wrote nothing.
    fn finish(&mut self, claimed: bool) -> fmt::Result {
        match (self.started, self.raw) {
            (true, true) => Ok(()),
            (true, false) => self.out.write_char('"'),
            (false, _) if claimed => self.out.write_str("null"),
            (false, _) => self.out.write_str("\"\""),
        }
    }
}

impl fmt::Write for JsonSlot<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.started {
            self.started = true;
            self.raw = SLOT.replace(Slot::Closed) == Slot::Claimed;
            if !self.raw {
                self.out.write_char('"')?;
            }
        }
        if self.raw {
            self.out.write_str(s)
        } else {
            Escaped {
                out: &mut *self.out,
                style: Escape::Json,
            }
            .write_str(s)
        }
    }
}

/// A field that may have no value: `"admin":"127.0.0.1:9090"` or `"admin":null` in
/// JSON, `admin=127.0.0.1:9090` or `admin=none` on a pretty line. Log it with `?`.
pub struct Optional<T>(pub Option<T>);

impl<T: fmt::Display> fmt::Debug for Optional<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0, claim_json()) {
            (Some(value), true) => {
                f.write_char('"')?;
                write!(
                    Escaped {
                        out: &mut *f,
                        style: Escape::Json
                    },
                    "{value}"
                )?;
                f.write_char('"')
            }
            (Some(value), false) => value.fmt(f),
            (None, true) => f.write_str("null"),
            (None, false) => f.write_str("none"),
        }
    }
}

/// Writes a list of names, each the concatenation of its parts (`["ENV:", "KEY"]`): a
/// JSON array of strings in a JSON log field, `ENV:KEY,FILE:/path` anywhere else. For
/// the `Display` or `Debug` of a value logged with `%` or `?`.
pub fn write_names<'a, P>(f: &mut fmt::Formatter<'_>, names: impl IntoIterator<Item = P>) -> fmt::Result
where
    P: IntoIterator<Item = &'a str>,
{
    let json = claim_json();
    if json {
        f.write_char('[')?;
    }
    for (n, parts) in names.into_iter().enumerate() {
        if n > 0 {
            f.write_char(',')?;
        }
        if json {
            f.write_char('"')?;
        }
        for part in parts {
            if json {
                Escaped {
                    out: &mut *f,
                    style: Escape::Json,
                }
                .write_str(part)?;
            } else {
                f.write_str(part)?;
            }
        }
        if json {
            f.write_char('"')?;
        }
    }
    if json {
        f.write_char(']')?;
    }
    Ok(())
}

/// `text` as a JSON string, quotes included.
pub(super) fn write_json_string(writer: &mut impl fmt::Write, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaped {
        out: writer,
        style: Escape::Json,
    }
    .write_str(text)?;
    writer.write_char('"')
}

/// How [`Escaped`] escapes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Escape {
    /// Pretty text outside quotes: control characters only, as `\n` or `\u{1b}`.
    Text,
    /// Pretty text inside quotes: also `"` and `\`.
    Quoted,
    /// The inside of a JSON string: `"`, `\` and controls, as JSON writes them.
    Json,
}

/// Copies text, escaping control characters (and, inside quotes, `"` and `\`), so that a
/// value can neither end the line, nor close its string, nor drive a terminal.
pub(super) struct Escaped<'w, W: fmt::Write> {
    pub(super) out: &'w mut W,
    pub(super) style: Escape,
}

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let quoted = self.style != Escape::Text;
        let plain = |b: u8| (0x20..0x7f).contains(&b) && !(quoted && (b == b'"' || b == b'\\'));
        if s.bytes().all(plain) {
            return self.out.write_str(s);
        }
        for c in s.chars() {
            match c {
                '"' | '\\' if quoted => {
                    self.out.write_char('\\')?;
                    self.out.write_char(c)?;
                }
                '\n' => self.out.write_str("\\n")?,
                '\r' => self.out.write_str("\\r")?,
                '\t' => self.out.write_str("\\t")?,
                c if c.is_control() && self.style == Escape::Json => write!(self.out, "\\u{:04x}", c as u32)?,
                c if c.is_control() => write!(self.out, "\\u{{{:x}}}", c as u32)?,
                c => self.out.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line one event makes, in `style`'s format.
    fn line(style: Style, event: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = {
            let sink = sink.clone();
            move || sink.clone()
        };
        let builder = tracing_subscriber::fmt().with_writer(writer).with_ansi(false);
        match style {
            Style::Json => tracing::subscriber::with_default(
                builder
                    .fmt_fields(super::super::JsonFields)
                    .event_format(super::super::JsonFormat)
                    .finish(),
                event,
            ),
            Style::Pretty => tracing::subscriber::with_default(
                builder
                    .fmt_fields(super::super::LineFields)
                    .event_format(super::super::LineFormat)
                    .finish(),
                event,
            ),
        }
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Names<'a>(&'a [&'a str]);

    impl fmt::Display for Names<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_names(f, self.0.iter().map(|name| ["ENV:", *name]))
        }
    }

    #[test]
    fn lists_and_optional_values_are_json_values_in_json_and_plain_on_a_pretty_line() {
        let event = || {
            let some = Optional(Some("127.0.0.1:9090"));
            let none = Optional(None::<&str>);
            let nested = Some(Optional(None::<&str>));
            tracing::info!(
                given = %Names(&["A", "q\"uote"]),
                empty = %Names(&[]),
                some = ?some,
                none = ?none,
                nested = ?nested,
                plain = ?Some(1),
                "m"
            );
        };
        let json: serde_json::Value = serde_json::from_str(&line(Style::Json, event)).unwrap();
        assert_eq!(json["given"], serde_json::json!(["ENV:A", "ENV:q\"uote"]), "{json}");
        assert_eq!(json["empty"], serde_json::json!([]), "{json}");
        assert_eq!(json["some"], "127.0.0.1:9090", "{json}");
        assert_eq!(json["none"], serde_json::Value::Null, "{json}");
        // Inside another value, written as that value's text: still one JSON string.
        assert_eq!(json["nested"], "Some(none)", "{json}");
        assert_eq!(json["plain"], "Some(1)", "{json}");
        let pretty = line(Style::Pretty, event);
        assert!(
            pretty.ends_with(
                "m given=ENV:A,ENV:q\"uote empty= some=127.0.0.1:9090 none=none nested=Some(none) plain=Some(1)\n"
            ),
            "{pretty}"
        );
    }

    #[test]
    fn values_cannot_break_the_line_or_drive_a_terminal() {
        let escape = |s: &str, style: Escape| {
            let mut out = String::new();
            Escaped { out: &mut out, style }.write_str(s).unwrap();
            out
        };
        assert_eq!(escape("plain text", Escape::Quoted), "plain text");
        assert_eq!(escape("a\"b\\c", Escape::Quoted), "a\\\"b\\\\c");
        assert_eq!(escape("a\"b", Escape::Text), "a\"b");
        let hostile = "x\n2024-01-01 INFO forged\r\t\x1b[31m\u{9b}é\"";
        assert_eq!(
            escape(hostile, Escape::Text),
            "x\\n2024-01-01 INFO forged\\r\\t\\u{1b}[31m\\u{9b}é\""
        );
        let json = format!("\"{}\"", escape(hostile, Escape::Json));
        assert_eq!(json, "\"x\\n2024-01-01 INFO forged\\r\\t\\u001b[31m\\u009bé\\\"\"");
        assert_eq!(serde_json::from_str::<String>(&json).unwrap(), hostile);
    }
}
