//! The one seam between envoi and where its policy lives. Every store loads a policy
//! and then keeps a [`PolicyHolder`] current in its own way; what differs is said here
//! once, and the server, `check` and `explain` take a [`PolicySource`] without asking
//! which kind it is.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::postgres::{self, PgStore, StoreError};
use super::reload::{self, ReloadHandle, Trigger};
use super::toml::TomlStore;
use super::PolicyHolder;
use crate::policy::{Policy, PolicyError};

/// Where the policy comes from.
pub enum PolicySource {
    /// One TOML file or a folder of them: loaded at start (a policy that does not load
    /// stops `serve`), then reloaded when a file changes or on SIGHUP.
    Toml(TomlStore),
    /// Postgres: a sync task loads the policy and follows the database's changes; the
    /// server answers 503 until its first snapshot.
    Postgres(PostgresSource),
    /// A policy compiled once and never reloaded: `serve --dev`'s example.
    Fixed(Policy),
}

/// The Postgres store and how its replica follows it.
pub struct PostgresSource {
    pub store: PgStore,
    /// How often the generation is checked besides LISTEN/NOTIFY.
    pub refresh: Duration,
    /// Apply the migrations before the first load.
    pub migrate: bool,
    /// Past this, a snapshot not confirmed against the database is not served.
    pub max_staleness: Option<Duration>,
}

/// Why a source could not load or start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the reload thread: {0}")]
    Thread(std::io::Error),
}

/// What keeps a holder current while the server runs: tasks to run beside it, and what
/// SIGHUP does to the policy.
#[derive(Default)]
pub struct Keeper {
    pub tasks: Vec<BoxFuture<'static, ()>>,
    reload: Option<ReloadHandle>,
}

impl Keeper {
    /// SIGHUP: the TOML store reloads at once; the others follow their source anyway.
    pub fn hangup(&self) {
        if let Some(reload) = &self.reload {
            reload.trigger(Trigger::Signal);
        }
    }
}

impl PolicySource {
    /// How stale a snapshot may be served, where the source says.
    pub fn max_staleness(&self) -> Option<Duration> {
        match self {
            Self::Postgres(source) => source.max_staleness,
            Self::Toml(_) | Self::Fixed(_) => None,
        }
    }

    /// Where the policy is, in words.
    pub fn describe(&self) -> String {
        match self {
            Self::Toml(store) => store.path().display().to_string(),
            Self::Postgres(_) => "postgres".to_owned(),
            Self::Fixed(_) => "the embedded example policy".to_owned(),
        }
    }

    /// Loads the policy once, as a command that does not serve needs it. Called outside
    /// any async runtime.
    pub fn load_now(self) -> Result<Policy, SourceError> {
        match self {
            Self::Toml(store) => Ok(store.load()?),
            Self::Postgres(source) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(SourceError::Thread)?;
                let store = &source.store;
                let loaded = runtime.block_on(async {
                    match store.load().await {
                        Err(e) => Err(store.explain(e).await),
                        done => done,
                    }
                });
                Ok(loaded?.1)
            }
            Self::Fixed(policy) => Ok(policy),
        }
    }

    /// Fills `holder` for serving, as far as the source does before the server starts,
    /// and returns what keeps it current.
    pub fn start(self, holder: &Arc<PolicyHolder>) -> Result<Keeper, SourceError> {
        match self {
            Self::Toml(store) => {
                let reload = reload::spawn(store, holder.clone())?;
                Ok(Keeper {
                    tasks: Vec::new(),
                    reload: Some(reload),
                })
            }
            Self::Postgres(source) => Ok(Keeper {
                tasks: vec![Box::pin(postgres::sync(
                    source.store,
                    holder.clone(),
                    source.refresh,
                    source.migrate,
                ))],
                reload: None,
            }),
            Self::Fixed(policy) => {
                holder.install(policy);
                Ok(Keeper::default())
            }
        }
    }
}
