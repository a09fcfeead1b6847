//! A session with the database, for the sync task: the listening connection and the one
//! the policy is read on, from a pool of their own; attempts at opening one; and the
//! server sides of those given up on, to be ended.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout, Instant};

use super::{CHANNEL, MOST_ABANDONED, PROBE_TIMEOUT, QUICK_LIFE, RETRY_EVERY};
use crate::store::postgres::{PgStore, StoreError};

/// A backend of the server, named so that it cannot be mistaken for a later one that
/// reuses its process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Backend {
    pid: i32,
    started_us: i64,
}

/// The session's listening connection and the pool it comes from, which also holds the
/// connection the policy is read on, opened once the session is chosen.
pub(super) struct Session {
    pub(super) listener: PgListener,
    pub(super) pool: PgPool,
    /// The server sides of every connection the pool made.
    backends: Arc<Mutex<Vec<Backend>>>,
    pub(super) opened: Instant,
}

impl Session {
    pub(super) async fn open(store: &PgStore) -> Result<Self, StoreError> {
        let backends = Arc::new(Mutex::new(Vec::new()));
        let made = backends.clone();
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(store.connect_timeout)
            .after_connect(move |connection, _| {
                let made = made.clone();
                Box::pin(async move {
                    let (pid, started_us) = sqlx::query_as::<_, (i32, i64)>(
                        "SELECT pid, (extract(epoch FROM backend_start) * 1000000)::bigint \
                         FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                    )
                    .fetch_one(connection)
                    .await?;
                    made.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Backend { pid, started_us });
                    Ok(())
                })
            })
            .connect_lazy_with(store.options.clone());
        let listen = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // This task decides when to reconnect; the session's pool is never closed.
            listener.eager_reconnect(false);
            listener.ignore_pool_close_event(true);
            listener.listen(CHANNEL).await?;
            Ok::<_, StoreError>(listener)
        };
        let listener = timeout(store.connect_timeout + PROBE_TIMEOUT, listen)
            .await
            .map_err(|_| StoreError::Timeout)??;
        Ok(Self {
            listener,
            pool,
            backends,
            opened: Instant::now(),
        })
    }

    /// Opens the connection to read the policy on, in the background, so that the first
    /// read (the one that catches up after an outage) does not wait for it in turn.
    pub(super) fn warm_up(&self) {
        let pool = self.pool.clone();
        // Back into the pool when dropped; a failure is the read's to report.
        tokio::spawn(async move { drop(pool.acquire().await) });
    }

    pub(super) fn backends(&self) -> Vec<Backend> {
        self.backends.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Ends the server side of a connection given up on earlier, if it still exists: on
    /// a network that went silent, the server may hold it (and its connection slot) for
    /// hours, and sqlx's `UNLISTEN` on our side waits for it.
    pub(super) async fn end(&mut self, old: Backend) -> Result<(), StoreError> {
        let query = sqlx::query_scalar::<_, bool>(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid = $1 AND (extract(epoch FROM backend_start) * 1000000)::bigint = $2",
        )
        .bind(old.pid)
        .bind(old.started_us)
        .fetch_optional(&mut self.listener);
        match timeout(PROBE_TIMEOUT, query).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(Ok(ended)) => {
                if ended == Some(true) {
                    tracing::debug!(pid = old.pid, "ended the server side of a connection given up on");
                }
                Ok(())
            }
            Ok(Err(e)) => match StoreError::from(e) {
                e if e.is_unreachable() => Err(e),
                e => {
                    tracing::debug!(pid = old.pid, "cannot end a connection given up on: {e}");
                    Ok(())
                }
            },
        }
    }
}

/// The generation, read on the listening connection.
pub(super) async fn generation(listener: &mut PgListener) -> Result<i64, StoreError> {
    let query = sqlx::query_scalar::<_, i64>("SELECT generation FROM envoi_policy_state").fetch_one(listener);
    Ok(timeout(PROBE_TIMEOUT, query).await.map_err(|_| StoreError::Timeout)??)
}

/// New sessions: one attempt with the whole connect timeout at a time and, every
/// [`RETRY_EVERY`] besides (or later, see [`Attempts::delay`]), quick ones given up after
/// [`QUICK_LIFE`], up to `most_quick` at once. Dropping it stops the attempts under way.
pub(super) struct Attempts {
    store: PgStore,
    running: JoinSet<Result<Session, StoreError>>,
    /// The attempt with the whole connect timeout, if one is under way.
    patient: Option<tokio::task::Id>,
    pub(super) most_quick: usize,
    next: Instant,
}

impl Attempts {
    pub(super) fn new(store: &PgStore, most_quick: usize) -> Self {
        Self {
            store: store.clone(),
            running: JoinSet::new(),
            patient: None,
            most_quick,
            next: Instant::now(),
        }
    }

    /// Starts the next attempt `delay` from now at the earliest.
    pub(super) fn delay(&mut self, delay: Duration) {
        self.next = self.next.max(Instant::now() + delay);
    }

    /// The outcome of the next attempt to finish. Cancel-safe.
    pub(super) async fn next(&mut self) -> Result<Session, StoreError> {
        loop {
            let room = self.patient.is_none() || self.running.len() <= self.most_quick;
            if room && Instant::now() >= self.next {
                let store = self.store.clone();
                if self.patient.is_some() {
                    self.running.spawn(async move {
                        timeout(QUICK_LIFE, Session::open(&store))
                            .await
                            .unwrap_or(Err(StoreError::Timeout))
                    });
                } else {
                    let patient = self.running.spawn(async move { Session::open(&store).await });
                    self.patient = Some(patient.id());
                }
                self.next = Instant::now() + RETRY_EVERY;
                continue;
            }
            tokio::select! {
                Some(done) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    let (id, opened) = match done {
                        Ok((id, opened)) => (id, opened),
                        Err(e) => (e.id(), Err(StoreError::Invalid(format!("a connection attempt failed: {e}")))),
                    };
                    if self.patient == Some(id) {
                        self.patient = None;
                    }
                    return opened;
                }
                () = sleep_until(self.next), if room => {}
            }
        }
    }
}

/// Server sides of connections given up on, to end once the database answers.
#[derive(Default)]
pub(super) struct Abandoned(pub(super) Vec<Backend>);

impl Abandoned {
    pub(super) fn session(&mut self, session: &Session) {
        for backend in session.backends() {
            if self.0.len() == MOST_ABANDONED {
                self.0.remove(0);
            }
            self.0.push(backend);
        }
    }
}
