//! The protocol's client (SPEC §8): ask any server that speaks the protocol for a
//! workload's answer, as the platform would, and deliver it. `envoi fetch` prints it;
//! `envoi run` writes its files and starts a command with its variables.

pub mod answer;
pub mod fallback;
pub mod fetch;
pub mod files;
pub mod format;
pub mod redact;
pub mod run;
pub mod supervise;

pub use answer::{Answer, AnswerError, EnvItem, FileItem, Ownership, Permissions};
pub use fetch::{fetch, FetchError, FetchSettings, TokenSource};
pub use files::WriteError;
pub use format::{render, Format, FormatError};
pub use run::{RunError, RunSettings};

/// A warning of `envoi run` on standard error, where the command's own output goes too,
/// so it says whose it is. Never given a value or a token.
pub(crate) fn warn(text: &str) {
    say(&format!("warning: {text}"));
}

/// A line of `envoi run` on standard error (see [`warn`]).
pub(crate) fn say(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "envoi run: {text}");
}
