//! Error messages from parsers (serde, config, toml) quote the offending value:
//! `invalid type: string "sk_live_…", expected a sequence`. A misplaced secret would end
//! up in a log or on a terminal, so the quoted parts go before a message is shown.

/// Replaces every `"…"` and `` `…` `` span by `"…"`/`` `…` ``, except the field name
/// of an "unknown field" message, which is a key the operator typed, not a value.
pub fn redact_values(message: &str) -> String {
    let keep_first = message.trim_start().starts_with("unknown field");
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    let mut spans = 0;
    for c in message.chars() {
        match open {
            None if c == '"' || c == '`' => {
                open = Some(c);
                spans += 1;
                out.push(c);
                if !(keep_first && spans == 1) {
                    out.push('…');
                }
            }
            None => out.push(c),
            Some(quote) if c == quote => {
                open = None;
                out.push(c);
            }
            Some(_) if keep_first && spans == 1 => out.push(c),
            Some(_) => {}
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::redact_values;

    #[test]
    fn quoted_values_are_dropped_and_field_names_kept() {
        assert_eq!(
            redact_values(r#"invalid type: string "hunter2", expected a sequence"#),
            r#"invalid type: string "…", expected a sequence"#
        );
        assert_eq!(
            redact_values("unknown variant `hunter2`, expected `utf-8`"),
            "unknown variant `…`, expected `…`"
        );
        assert_eq!(
            redact_values("unknown field `valeu`, expected one of `value`, `env`"),
            "unknown field `valeu`, expected one of `…`, `…`"
        );
    }
}
