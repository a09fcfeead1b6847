//! The ENV items of an answer as `dotenv` or `shell` lines (`envoi fetch --format`).
//!
//! `shell`: `export KEY='VALUE'`. Inside single quotes `sh` takes every byte literally
//! except `'` itself, which is written `'\''` (close, an escaped quote, reopen), so any
//! value round-trips through `sh -c "$(envoi fetch --format shell)"`, newlines and `$`
//! included. A NUL byte cannot live in an environment variable at all: such a value is
//! refused rather than silently cut.
//!
//! `dotenv`: `KEY="VALUE"` with `\` `"` `$` and `` ` `` escaped by a backslash, a newline
//! as `\n` and a carriage return as `\r` (the double-quoted form that Compose, systemd's
//! `EnvironmentFile` readers and the dotenv libraries share); NUL is refused as above.

use crate::client::answer::Answer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The protocol's body, byte for byte as received (FILE items included).
    Json,
    /// `KEY="VALUE"` lines.
    Dotenv,
    /// `export KEY='VALUE'` lines for `sh`.
    Shell,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("ENV {0}: the value holds a NUL byte, which no environment variable can carry")]
    Nul(String),
    #[error("ENV {0:?}: the key is not a variable name (letters, digits and _, not starting with a digit)")]
    Key(String),
}

/// Renders the answer; the result holds values, so it is zeroized when dropped.
pub fn render(answer: &Answer, format: Format) -> Result<zeroize::Zeroizing<Vec<u8>>, FormatError> {
    let mut out = zeroize::Zeroizing::new(Vec::new());
    if format == Format::Json {
        out.extend_from_slice(answer.body.expose());
        return Ok(out);
    }
    for item in &answer.env {
        if !is_name(&item.key) {
            return Err(FormatError::Key(item.key.chars().take(64).collect()));
        }
        let value = item.value.expose();
        if value.contains(&0) {
            return Err(FormatError::Nul(item.key.clone()));
        }
        match format {
            Format::Shell => {
                out.extend_from_slice(b"export ");
                out.extend_from_slice(item.key.as_bytes());
                out.extend_from_slice(b"='");
                for &byte in value {
                    if byte == b'\'' {
                        out.extend_from_slice(b"'\\''");
                    } else {
                        out.push(byte);
                    }
                }
                out.extend_from_slice(b"'\n");
            }
            Format::Dotenv => {
                out.extend_from_slice(item.key.as_bytes());
                out.extend_from_slice(b"=\"");
                for &byte in value {
                    match byte {
                        b'\\' | b'"' | b'$' | b'`' => out.extend_from_slice(&[b'\\', byte]),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        _ => out.push(byte),
                    }
                }
                out.extend_from_slice(b"\"\n");
            }
            Format::Json => unreachable!("handled above"),
        }
    }
    Ok(out)
}

fn is_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes.next().is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(pairs: &[(&str, &str)]) -> Answer {
        let items: Vec<_> = pairs
            .iter()
            .map(|(k, v)| serde_json::json!({"type": "ENV", "key": k, "value": v}))
            .collect();
        Answer::parse(serde_json::to_vec(&serde_json::json!({ "secrets": items })).unwrap()).unwrap()
    }

    fn text(answer: &Answer, format: Format) -> String {
        String::from_utf8(render(answer, format).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn shell_quotes_everything_in_single_quotes_and_splits_embedded_quotes() {
        let a = answer(&[("A", "it's $HOME\n`x`\\")]);
        assert_eq!(text(&a, Format::Shell), "export A='it'\\''s $HOME\n`x`\\'\n");
    }

    #[test]
    fn dotenv_escapes_backslash_quote_dollar_backtick_and_line_ends() {
        let a = answer(&[("A", "a\"b\\c$d`e\nf\rg'h")]);
        assert_eq!(text(&a, Format::Dotenv), "A=\"a\\\"b\\\\c\\$d\\`e\\nf\\rg'h\"\n");
    }

    #[test]
    fn a_nul_byte_or_a_key_that_is_no_variable_name_is_refused() {
        let nul = answer(&[("A", "x\u{0}y")]);
        assert_eq!(render(&nul, Format::Shell).unwrap_err(), FormatError::Nul("A".into()));
        assert_eq!(render(&nul, Format::Dotenv).unwrap_err(), FormatError::Nul("A".into()));
        for key in ["1A", "A-B", "A B", "", "A;rm"] {
            assert!(
                matches!(render(&answer(&[(key, "v")]), Format::Shell), Err(FormatError::Key(_))),
                "{key:?}"
            );
        }
        assert!(render(&nul, Format::Json).is_ok(), "json is the body as it came");
    }
}
