//! Reaching the database: the pool, calls bounded in time, and changes made in a
//! transaction that commits only if the resulting policy compiles.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgSslMode};
use sqlx::Connection as _;
use sqlx::{Postgres, Transaction};

use super::rows::{read_doc, read_on};
use super::scope::{read_scope, Scope};
use super::StoreError;
use crate::policy::model::PolicyDoc;
use crate::policy::{Loader, Policy};
use crate::seal::Keyring;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub url: SecretString,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// The whole of a `db import`: reading, comparing, writing and the compile before
    /// commit (`store.import_timeout_seconds`).
    pub import_timeout: Duration,
    pub retention: Retention,
    pub tls_ca_file: Option<std::path::PathBuf>,
}

/// A handle on the policy tables.
#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// For connections of their own, outside the pool (the sync task's).
    pub(super) options: PgConnectOptions,
    pub(super) keyring: Arc<Keyring>,
    pub(super) connect_timeout: Duration,
    pub(super) statement_timeout: Duration,
    pub(super) import_timeout: Duration,
    pub(super) retention: Retention,
}

/// How much of the history is kept: at least the last `keep_changes` changes, and every
/// change younger than `keep_days` days.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub keep_changes: u64,
    pub keep_days: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_changes: 1000,
            keep_days: 90,
        }
    }
}

/// Every this many changes, the writer compacts the history too.
const COMPACT_EVERY: i64 = 100;

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Sets up the pool without connecting: connections are made when needed, so that
    /// envoi can start (and answer 503) while the database is still down.
    pub fn new(settings: &PgSettings, keyring: Arc<Keyring>) -> Result<Self, StoreError> {
        let mut options: PgConnectOptions = settings
            .url
            .expose_secret()
            .parse()
            .map_err(|_| StoreError::Invalid("store.url is not a valid postgres:// URL".into()))?;
        let statement_ms = settings.statement_timeout.as_millis().to_string();
        options = options
            .application_name("envoi")
            .options([("statement_timeout", statement_ms.as_str())]);
        if let Some(ca) = &settings.tls_ca_file {
            options = options.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert(ca);
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.max(1))
            .acquire_timeout(settings.connect_timeout)
            .connect_lazy_with(options.clone());
        Ok(Self {
            pool,
            options,
            keyring,
            connect_timeout: settings.connect_timeout,
            statement_timeout: settings.statement_timeout,
            import_timeout: settings.import_timeout,
            retention: settings.retention,
        })
    }

    /// Bounds a database call so that nothing waits on a dead connection for long.
    pub(super) async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.statement_timeout + Duration::from_secs(2), work)
            .await
            .map_err(|_| StoreError::Timeout)?
    }

    /// `error` with the database's place and the cause named, for a command's message.
    /// sqlx's pool says only that it "timed out while waiting for an open connection":
    /// then one direct connection attempt, bounded by `store.connect_timeout_seconds`,
    /// finds why (refused, a host name that does not resolve, TLS, authentication). The
    /// text names the host and port, never the URL or its password (sqlx's errors hold
    /// neither).
    pub async fn explain(&self, error: StoreError) -> StoreError {
        let place = format!("{}:{}", self.options.get_host(), self.options.get_port());
        match error {
            StoreError::NoConnection => {}
            StoreError::Unreachable(cause) => return StoreError::CannotConnect { place, cause },
            other => return other,
        }
        let attempt = tokio::time::timeout(self.connect_timeout, PgConnection::connect_with(&self.options)).await;
        let cause = match attempt {
            Ok(Err(sqlx::Error::Database(answer))) => {
                return StoreError::ConnectionRefused {
                    place,
                    cause: answer.message().to_owned(),
                }
            }
            Ok(Err(sqlx::Error::Io(e))) => e.to_string(),
            Ok(Err(sqlx::Error::Tls(e))) => format!("TLS: {e}"),
            Ok(Err(other)) => other.to_string(),
            Err(_) => format!(
                "no answer within {} s (store.connect_timeout_seconds)",
                self.connect_timeout.as_secs()
            ),
            // It answers now: the pool's own error stands.
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                return StoreError::NoConnection;
            }
        };
        StoreError::CannotConnect { place, cause }
    }

    /// Applies the embedded migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The current generation and the whole policy, read in one snapshot.
    pub async fn read(&self) -> Result<(i64, PolicyDoc), StoreError> {
        self.bounded(async {
            let mut conn = self.pool.acquire().await?;
            read_on(&mut conn).await
        })
        .await
    }

    /// Reads and compiles the policy.
    pub async fn load(&self) -> Result<(i64, Policy), StoreError> {
        let (generation, doc) = self.read().await?;
        Ok((generation, self.compile(doc).await?))
    }

    /// Compiles a policy read from the tables, off the async threads.
    pub(super) async fn compile(&self, doc: PolicyDoc) -> Result<Policy, StoreError> {
        let keyring = self.keyring.clone();
        Ok(
            tokio::task::spawn_blocking(move || Loader::new(&keyring).load_doc("postgres", doc))
                .await
                .map_err(|e| StoreError::Invalid(format!("policy compilation panicked: {e}")))??,
        )
    }

    /// Runs `change` in a transaction, then checks what it can affect ([`Check`]) in the
    /// same transaction and commits only if that compiles: a change that would break the
    /// policy is refused with the messages the TOML store gives.
    /// `actor` is recorded in the history as who made the change.
    pub(super) async fn change<T, F>(&self, actor: &str, check: Check, change: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(
            &'t mut Transaction<'static, Postgres>,
        ) -> futures_util::future::BoxFuture<'t, Result<T, StoreError>>,
    {
        self.bounded(self.checked_transaction(actor, None, move |_| check, change))
            .await
    }

    /// `change` for a bulk change (`db import`): the whole transaction, and each of its
    /// statements, may take `store.import_timeout_seconds` rather than the per-query
    /// `store.statement_timeout_seconds`. The whole resulting policy is compiled, unless
    /// `wrote` says that the change wrote nothing: the tables are as they were.
    pub(super) async fn bulk_change<T, F>(&self, actor: &str, wrote: fn(&T) -> bool, change: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(
            &'t mut Transaction<'static, Postgres>,
        ) -> futures_util::future::BoxFuture<'t, Result<T, StoreError>>,
    {
        let limit = self.import_timeout;
        let check = move |result: &T| if wrote(result) { Check::Whole } else { Check::Nothing };
        tokio::time::timeout(limit, self.checked_transaction(actor, Some(limit), check, change))
            .await
            .map_err(|_| StoreError::OutOfTime {
                what: "the import",
                seconds: limit.as_secs(),
                setting: "store.import_timeout_seconds",
                variable: "ENVOI__STORE__IMPORT_TIMEOUT_SECONDS",
            })?
    }

    async fn checked_transaction<T, F>(
        &self,
        actor: &str,
        statement_timeout: Option<Duration>,
        check: impl FnOnce(&T) -> Check,
        change: F,
    ) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(
            &'t mut Transaction<'static, Postgres>,
        ) -> futures_util::future::BoxFuture<'t, Result<T, StoreError>>,
    {
        let mut tx = self.pool.begin().await?;
        if let Some(limit) = statement_timeout {
            // SET takes no bind parameters; the value is a number of our own.
            sqlx::query(&format!("SET LOCAL statement_timeout = {}", limit.as_millis()))
                .execute(&mut *tx)
                .await?;
        }
        // The history's triggers record who wrote the change (for this transaction only).
        sqlx::query("SELECT set_config('envoi.actor', $1, true)")
            .bind(actor)
            .execute(&mut *tx)
            .await?;
        // One writer at a time, on the one row every change moves anyway (its generation):
        // the next writer's check then sees this change committed, so that two valid
        // changes cannot make an invalid policy. Readers (replicas) never wait on it.
        let before: i64 = sqlx::query_scalar("SELECT generation FROM envoi_policy_state FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
        let result = change(&mut tx).await?;
        match check(&result) {
            Check::Nothing => {}
            Check::Whole => {
                let doc = read_doc(&mut tx).await?;
                Loader::new(&self.keyring).load_doc("postgres", doc)?;
            }
            Check::Scope(scope) => {
                let doc = read_scope(&mut tx, &scope).await?;
                Loader::new(&self.keyring).load_doc("postgres", doc)?;
            }
        }
        if (before + 1) % COMPACT_EVERY == 0 {
            self.compact_on(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(result)
    }

    /// Compacts the history as [`Retention`] says (`db prune`); how many entries went,
    /// and the first generation the history can still rebuild.
    pub async fn compact_history(&self) -> Result<(i64, i64), StoreError> {
        self.bounded(async {
            let mut tx = self.pool.begin().await?;
            let gone = self.compact_on(&mut tx).await?;
            let from: i64 = sqlx::query_scalar("SELECT history_from FROM envoi_policy_state")
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((gone, from))
        })
        .await
    }

    async fn compact_on(&self, tx: &mut Transaction<'static, Postgres>) -> Result<i64, StoreError> {
        let days = i32::try_from(self.retention.keep_days).unwrap_or(i32::MAX);
        let changes = i64::try_from(self.retention.keep_changes).unwrap_or(i64::MAX);
        Ok(
            sqlx::query_scalar("SELECT envoi_compact_history($1, make_interval(days => $2))")
                .bind(changes)
                .bind(days)
                .fetch_one(&mut **tx)
                .await?,
        )
    }
}

/// What a change is checked by before it commits.
pub(super) enum Check {
    /// It wrote nothing, or nothing a load can refuse (a grant removed).
    Nothing,
    /// The part of the policy it can affect.
    Scope(Scope),
    /// The whole resulting policy (a bulk change).
    Whole,
}
