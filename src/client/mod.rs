//! The protocol's client (SPEC §8): ask any server that speaks the protocol for a
//! workload's answer, as the platform would, and deliver it. `envoi fetch` prints it;
//! `envoi run` (not yet) will write its files and start a command with its variables.

pub mod answer;
pub mod fetch;
pub mod format;

pub use answer::{Answer, AnswerError, EnvItem, FileItem, Ownership, Permissions};
pub use fetch::{fetch, FetchError, FetchSettings, TokenSource};
pub use format::{render, Format, FormatError};
