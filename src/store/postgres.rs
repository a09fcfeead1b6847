//! The Postgres store (SPEC §2): the policy model in tables, values sealed at rest,
//! changes checked by compiling the whole policy inside the writing transaction, and a
//! sync task that keeps each replica's in-memory snapshot current (LISTEN/NOTIFY plus a
//! periodic generation check) without ever putting the database on the request path.
//!
//! `pool` reaches the database (every call bounded, every change compiled before it
//! commits), `crud` reads and writes one secret or grant, `rows` maps the tables to the
//! policy model and back, `import` makes the tables hold a policy's files, and `sync`
//! keeps a serving replica's snapshot current.

use crate::policy::PolicyError;

mod bulk;
mod changes;
mod crud;
mod history;
mod import;
mod pool;
mod rows;
mod scope;
mod sync;

pub use crud::SecretInfo;
pub use history::{HistoryEntry, RollbackReport};
pub use import::ImportReport;
pub use pool::{PgSettings, PgStore, Retention};
pub(crate) use rows::selector_columns;
pub use sync::sync;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered, with an error.
    #[error("database: {0}")]
    Database(String),
    /// No answer: the connection failed, broke or timed out on the way.
    #[error("cannot reach the database: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Refused(#[from] PolicyError),
    #[error("{0}")]
    Invalid(String),
    #[error("timed out talking to the database")]
    Timeout,
    /// The pool gave up waiting for a connection; sqlx keeps no cause. `PgStore::explain`
    /// finds it.
    #[error("cannot reach the database: no connection could be opened in time")]
    NoConnection,
    /// A connection that could not be opened, with its cause (`PgStore::explain`).
    #[error("cannot reach the database at {place}: {cause}")]
    CannotConnect { place: String, cause: String },
    /// The server answered the connection with a refusal (authentication, no such
    /// database), as `PgStore::explain` found.
    #[error("the database at {place} refused the connection: {cause}")]
    ConnectionRefused { place: String, cause: String },
    /// A piece of work with a time bound of its own ran out of it; names the setting.
    #[error("{what} did not finish within {seconds} s; `{setting}` ({variable}) sets how long it may take")]
    OutOfTime {
        what: &'static str,
        seconds: u64,
        setting: &'static str,
        variable: &'static str,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx's messages name the server and the failing statement, never bound values.
        match e {
            sqlx::Error::PoolTimedOut => Self::NoConnection,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unreachable(e.to_string()),
            _ => Self::Database(e.to_string()),
        }
    }
}

impl StoreError {
    /// Whether the database (or the network to it) gave no answer at all, as opposed to
    /// an answer that is an error: the first is retried at once, the second with backoff.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable(_) | Self::Timeout | Self::NoConnection | Self::CannotConnect { .. }
        )
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            // No connection to run them on: the same as any other call's.
            sqlx::migrate::MigrateError::Execute(e) if !matches!(e, sqlx::Error::Database(_)) => Self::from(e),
            e => Self::Database(e.to_string()),
        }
    }
}

/// Who made a change, for the `updated_by` columns: `cli:<user>@<host>`.
pub fn actor(kind: &str) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        format!("{kind}:{user}")
    } else {
        format!("{kind}:{user}@{host}")
    }
}
