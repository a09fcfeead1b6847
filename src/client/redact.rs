//! `envoi run --redact`: every value received masked in a stream of output (SPEC §8).
//!
//! A value may arrive split across reads, or one byte at a time, so a [`Redactor`] holds
//! back the bytes at the end of what it has seen that could still be the start of a
//! value, and nothing else: every other byte goes out at once. Output that ends a line
//! (or any byte that rules a value out) releases what was held, so the delay is at most
//! the line being written. Where two values could match, the longest wins.
//!
//! (`src/redact.rs` is another thing: it takes quoted values out of parsers' messages.)

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::client::answer::Answer;

/// What a value becomes.
pub const MASK: &[u8] = b"***REDACTED***";

/// Values shorter than this are left alone: masking every `1` or `on` in the output would
/// say more about the values than it hides.
pub const MIN_LEN: usize = 4;

/// The values to mask, longest first, and the bytes they start with.
#[derive(Clone)]
pub struct Values {
    values: Arc<Vec<Zeroizing<Vec<u8>>>>,
    first: Arc<[bool; 256]>,
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Values([{} redacted])", self.values.len())
    }
}

impl Values {
    /// Every ENV value and FILE data of an answer, of at least [`MIN_LEN`] bytes.
    pub fn of(answer: &Answer) -> Self {
        let env = answer.env.iter().map(|item| item.value.expose());
        let files = answer.files.iter().map(|item| item.data.expose());
        Self::new(env.chain(files))
    }

    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut kept: Vec<Zeroizing<Vec<u8>>> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_LEN)
            .map(|v| Zeroizing::new(v.to_vec()))
            .collect();
        kept.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        kept.dedup();
        let mut first = [false; 256];
        for value in &kept {
            first[usize::from(value[0])] = true;
        }
        Self {
            values: Arc::new(kept),
            first: Arc::new(first),
        }
    }

    /// These values and `other`'s: after a restart, the old values stay masked too.
    pub fn with(&self, other: &Self) -> Self {
        Self::new(self.values.iter().chain(other.values.iter()).map(|v| v.as_slice()))
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// One output stream's redaction.
pub struct Redactor {
    values: Values,
    /// Bytes received and not yet let out: a possible start of a value.
    held: Zeroizing<Vec<u8>>,
}

impl Redactor {
    pub fn new(values: Values) -> Self {
        Self {
            values,
            held: Zeroizing::new(Vec::new()),
        }
    }

    /// Takes `input` and appends to `out` what can go out now.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.held.extend_from_slice(input);
        self.drain(out, false);
    }

    /// The stream ended: what was held goes out (masked where it is a whole value).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.drain(out, true);
    }

    fn drain(&mut self, out: &mut Vec<u8>, ended: bool) {
        let held = &self.held;
        let mut at = 0;
        while at < held.len() {
            if !self.values.first[usize::from(held[at])] {
                // The common case: no value starts with this byte.
                let run = held[at..]
                    .iter()
                    .position(|b| self.values.first[usize::from(*b)])
                    .unwrap_or(held.len() - at);
                out.extend_from_slice(&held[at..at + run]);
                at += run;
                continue;
            }
            let rest = &held[at..];
            // A longer value may still complete here: wait for more (longest wins).
            if !ended
                && self
                    .values
                    .values
                    .iter()
                    .any(|v| v.len() > rest.len() && v.starts_with(rest))
            {
                break;
            }
            match self.values.values.iter().find(|v| rest.starts_with(v)) {
                Some(value) => {
                    out.extend_from_slice(MASK);
                    at += value.len();
                }
                None => {
                    out.push(held[at]);
                    at += 1;
                }
            }
        }
        self.held.drain(..at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(values: &[&str], pieces: &[&str]) -> String {
        let mut redactor = Redactor::new(Values::new(values.iter().map(|v| v.as_bytes())));
        let mut out = Vec::new();
        for piece in pieces {
            redactor.feed(piece.as_bytes(), &mut out);
        }
        redactor.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_value_is_masked_whole_split_or_byte_by_byte() {
        let values = ["hunter22", "s3cr3t-token"];
        let text = "pw=hunter22 tok=s3cr3t-token!\n";
        let want = "pw=***REDACTED*** tok=***REDACTED***!\n";
        assert_eq!(redact(&values, &[text]), want);
        for split in 0..text.len() {
            assert_eq!(
                redact(&values, &[&text[..split], &text[split..]]),
                want,
                "split at {split}"
            );
        }
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let bytes: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(redact(&values, &bytes), want);
    }

    #[test]
    fn the_longest_value_wins_and_short_values_are_left_alone() {
        assert_eq!(
            redact(&["abcd", "abcdefgh", "on"], &["x abcdefgh abcdef on\n"]),
            "x ***REDACTED*** ***REDACTED***ef on\n"
        );
        assert_eq!(redact(&["abcd", "abcdefgh"], &["abcd", "efgh"]), "***REDACTED***");
    }

    #[test]
    fn only_a_possible_start_of_a_value_is_held_back() {
        let mut redactor = Redactor::new(Values::new([b"secret".as_slice()]));
        let mut out = Vec::new();
        redactor.feed(b"line one\nsec", &mut out);
        assert_eq!(out, b"line one\n", "the line went out, the start of a value waits");
        redactor.feed(b"ond\n", &mut out);
        assert_eq!(out, b"line one\nsecond\n", "released once it cannot be a value");
        out.clear();
        redactor.feed(b"ssecre", &mut out);
        assert_eq!(out, b"s");
        redactor.feed(b"t", &mut out);
        assert_eq!(out, b"s***REDACTED***");
    }

    #[test]
    fn debug_shows_no_value() {
        let values = Values::new([b"hunter22".as_slice()]);
        assert!(!format!("{values:?}").contains("hunter"));
    }
}
