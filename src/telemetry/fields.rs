//! Writing field values into a log line, for both formats: one visitor, so that the
//! pretty and the JSON line escape alike.

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

    /// Written as its `Debug` text: bare on a pretty line, a string in JSON.
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
                w.write_char('"')?;
                write!(
                    Escaped {
                        out: &mut *w,
                        style: Escape::Json
                    },
                    "{value:?}"
                )?;
                w.write_char('"')
            }
        });
    }
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
