//! The protocol's client (SPEC §8): ask any server that speaks the protocol for a
//! workload's answer, as the platform would, and deliver it. `envoi fetch` prints it;
//! `envoi run` writes its files and starts a command with its variables.

pub mod answer;
pub mod fetch;
pub mod files;
pub mod format;
pub mod run;

pub use answer::{Answer, AnswerError, EnvItem, FileItem, Ownership, Permissions};
pub use fetch::{fetch, FetchError, FetchSettings, TokenSource};
pub use files::WriteError;
pub use format::{render, Format, FormatError};
pub use run::{RunError, RunSettings};
