//! The sync task: keeps a replica's snapshot current with the database (SPEC §2, Stores)
//! and notices soon when the database stops answering.
//!
//! It works through one *session* at a time: a connection that `LISTEN`s for changes and
//! is asked for the generation every couple of seconds, which both confirms the snapshot
//! and proves the connection alive, and one to read the policy on, opened as soon as the
//! session is chosen. Both come from a pool of the session's own, so that a connection
//! stuck on a silent network (in the `UNLISTEN` sqlx sends when a listener is dropped,
//! say) never holds up the next session. Every call has a deadline. While the database
//! is away (and as soon as a probe is slow to answer), a new session is attempted every
//! [`RETRY_EVERY`], earlier attempts still running, so that once it answers again the
//! replica is current within a second; the server sides of the sessions given up on are
//! then ended.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, timeout, Instant};

use super::changes::{read_since, Caught};
use super::{PgStore, StoreError};
use crate::policy::review::diff::name_list;
use crate::store::PolicyHolder;

mod session;

use session::{generation, Abandoned, Attempts, Session};

/// The channel the tables' triggers notify on.
const CHANNEL: &str = "envoi_policy";

/// How often the listening connection is asked for the generation. A database that stops
/// answering is noticed within `PROBE_EVERY + PROBE_TIMEOUT`, and while it answers the
/// snapshot age stays below `PROBE_EVERY`.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// The probe reads one row and never waits on a lock (writers only lock the policy
/// tables): no answer in this long means no answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A probe usually answers within a millisecond. Slower, on a session that has been up a
/// while, new sessions are tried alongside, in case the network lost this connection but
/// carries new ones.
const SUSPECT_AFTER: Duration = Duration::from_millis(500);

/// While the database is away, a new session is attempted this often, without waiting
/// for earlier attempts to time out: on a silent network they may never answer (or only
/// at TCP's next retransmission, seconds later), while a new one does as soon as the
/// network is back.
const RETRY_EVERY: Duration = Duration::from_millis(400);

/// Such quick attempts are given up after this long, and at most this many are under way,
/// so that a network coming back does not meet a crowd of connections from each replica.
/// Besides them, one attempt at a time has the whole `store.connect_timeout_seconds`, for
/// a database that is just slow to connect to.
const QUICK_LIFE: Duration = Duration::from_millis(1200);
const MOST_QUICK: usize = 3;

/// While the database is away, how often the log says so again.
const STILL_AWAY_EVERY: Duration = Duration::from_secs(30);

/// Migrations run statement by statement under the statement timeout; this bounds the
/// whole, on a network that went silent in the middle.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(120);

/// After a notification, how long a burst of changes may take to settle before one load.
const SETTLE: Duration = Duration::from_millis(20);

/// Server sides of connections given up on, remembered to be ended: a bound, for a
/// network that comes and goes for long.
const MOST_ABANDONED: usize = 16;

/// What the probe of a session found.
struct Probed {
    generation: i64,
    /// The session was replaced by a new one, which gave the generation.
    replaced: bool,
}

/// The generation, asked on `session`'s listening connection. Slower than
/// [`SUSPECT_AFTER`] on a session up for a while, new sessions are tried alongside (in
/// `attempts`, which carry on should the database prove silent); one that opens first
/// replaces `session`, which is abandoned. No answer at all within [`PROBE_TIMEOUT`] is
/// the database not answering.
async fn probe(
    session: &mut Session,
    attempts: &mut Option<Attempts>,
    abandoned: &mut Abandoned,
    store: &PgStore,
) -> Result<Probed, StoreError> {
    let answered = |generation| {
        Ok(Probed {
            generation,
            replaced: false,
        })
    };
    let mut fresh = {
        let settled = session.opened.elapsed() >= PROBE_EVERY;
        let asked = generation(&mut session.listener);
        tokio::pin!(asked);
        if !settled {
            return answered(asked.await?);
        }
        if let Ok(answer) = timeout(SUSPECT_AFTER, &mut asked).await {
            return answered(answer?);
        }
        // One quick attempt at a time: a probe is slow on a database that is overloaded,
        // too, which a crowd of new connections would not help.
        let tries = attempts.get_or_insert_with(|| Attempts::new(store, 1));
        loop {
            tokio::select! {
                answer = &mut asked => {
                    if answer.is_ok() {
                        *attempts = None;
                    }
                    return answered(answer?);
                }
                attempt = tries.next() => if let Ok(fresh) = attempt {
                    break fresh;
                },
            }
        }
    };
    *attempts = None;
    let generation = generation(&mut fresh.listener).await?;
    tracing::info!("the listening connection is slow to answer while a new one does: switching to the new one");
    abandoned.session(session);
    fresh.warm_up();
    *session = fresh;
    Ok(Probed {
        generation,
        replaced: true,
    })
}

/// Keeps `holder` current: a first load (until then requests get 503), then
/// LISTEN/NOTIFY and a generation check every `refresh` (2 s at most, see
/// [`PROBE_EVERY`]). Runs until the process ends; while the database is away the last
/// good snapshot keeps serving.
pub async fn sync(store: PgStore, holder: Arc<PolicyHolder>, refresh: Duration, migrate: bool) {
    let mut replica = Replica {
        store,
        holder,
        served: None,
        probe_every: refresh.min(PROBE_EVERY),
        refused: None,
        attempts: None,
        abandoned: Abandoned::default(),
        backoff: Backoff::new(),
        away: Away::default(),
    };
    if migrate {
        replica.migrate().await;
    }
    loop {
        let mut session = replica.connect().await;
        let ended = replica.follow(&mut session).await;
        replica.ended(&ended);
        replica.abandoned.session(&session);
        drop(session);
        if !ended.is_unreachable() {
            // The database answered with an error (tables missing, say): not at once again.
            replica.attempts = None;
            replica.backoff.wait().await;
        }
    }
}

struct Replica {
    store: PgStore,
    holder: Arc<PolicyHolder>,
    /// The database generation of the snapshot being served: the store's own
    /// bookkeeping, not the holder's.
    served: Option<i64>,
    probe_every: Duration,
    /// A generation that does not compile here: not read again until it moves.
    refused: Option<i64>,
    /// New sessions under way, when the current one is in doubt or gone.
    attempts: Option<Attempts>,
    abandoned: Abandoned,
    /// For errors the database answers with, which retrying at once would only repeat.
    backoff: Backoff,
    away: Away,
}

impl Replica {
    async fn migrate(&mut self) {
        loop {
            let migrated = timeout(MIGRATE_TIMEOUT, self.store.migrate())
                .await
                .unwrap_or(Err(StoreError::Timeout));
            match migrated {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(retry_in = ?self.backoff.peek(), "cannot migrate the database yet: {e}");
                    self.backoff.wait().await;
                }
            }
        }
        self.backoff.reset();
    }

    /// A new session, attempts further apart while the database answers with errors.
    async fn connect(&mut self) -> Session {
        let mut attempts = self
            .attempts
            .take()
            .unwrap_or_else(|| Attempts::new(&self.store, MOST_QUICK));
        attempts.most_quick = MOST_QUICK;
        loop {
            match attempts.next().await {
                Ok(session) => {
                    session.warm_up();
                    // It answered: reachable before the refresh that may install a policy.
                    self.holder.set_source_reachable(true);
                    return session;
                }
                Err(e) => {
                    if !e.is_unreachable() {
                        attempts.delay(self.backoff.step());
                    }
                    self.away.failed(&e);
                    self.holder.set_source_reachable(false);
                }
            }
        }
    }

    async fn probe(&mut self, session: &mut Session) -> Result<Probed, StoreError> {
        probe(session, &mut self.attempts, &mut self.abandoned, &self.store).await
    }

    /// Follows the database through `session` until it fails; returns why.
    async fn follow(&mut self, session: &mut Session) -> StoreError {
        if let Err(e) = self.refresh(session).await {
            return e;
        }
        self.backoff.reset();
        self.away.back();
        self.holder.set_source_reachable(true);
        loop {
            // Given up on before this session, or replaced by it.
            for old in std::mem::take(&mut self.abandoned.0) {
                if let Err(e) = session.end(old).await {
                    return e;
                }
            }
            tokio::select! {
                received = session.listener.try_recv() => match received {
                    Ok(Some(_)) => {
                        sleep(SETTLE).await;
                        while let Ok(Ok(Some(_))) = timeout(Duration::ZERO, session.listener.try_recv()).await {}
                    }
                    Ok(None) => return StoreError::Unreachable("the listening connection was closed".into()),
                    Err(e) => return e.into(),
                },
                () = sleep(self.probe_every) => {}
            }
            if let Err(e) = self.refresh(session).await {
                return e;
            }
        }
    }

    /// Confirms the snapshot, or loads the policy if its generation moved.
    async fn refresh(&mut self, session: &mut Session) -> Result<(), StoreError> {
        loop {
            let current = self.probe(session).await?.generation;
            if self.served.is_some_and(|served| current < served) {
                // Generations only grow: this is another database (created again, restored
                // from a backup), whose count may climb back to the served one with other
                // contents. What is served is no longer known to be any of its generations.
                self.served = None;
            }
            if self.served == Some(current) {
                self.holder.confirm();
                return Ok(());
            }
            if self.refused == Some(current) {
                return Ok(());
            }
            // Replaced while reading: again, on the new session.
            let started = Instant::now();
            let Some(loaded) = self.load(session).await else {
                continue;
            };
            return match loaded {
                // SPEC §2: a policy that grants nothing never replaces a good snapshot.
                // A database re-created empty, a wrong restore or the last grant removed
                // would otherwise answer every workload with nothing at once.
                Ok(caught) if caught.policy.grant_count() == 0 && self.holder.current().is_some() => {
                    self.refused = Some(current);
                    self.holder.record_failure();
                    tracing::error!(
                        generation = current,
                        "the database's policy grants nothing (no grant): refused as an empty or truncated policy is; the last good policy keeps serving"
                    );
                    Ok(())
                }
                Ok(caught) => {
                    let generation = caught.generation;
                    let (grants, secrets) = (caught.policy.grant_count(), caught.policy.secret_count());
                    let read_ms = started.elapsed().as_millis() as u64;
                    self.refused = None;
                    // Installing waits for requests to let go of the old snapshot: off this
                    // thread, which also handles signals.
                    let holder = self.holder.clone();
                    let policy = caught.policy;
                    let _ = tokio::task::spawn_blocking(move || holder.install(policy)).await;
                    let took_ms = started.elapsed().as_millis() as u64;
                    match &caught.patched {
                        Some(changed) => tracing::info!(
                            generation,
                            from = self.served.unwrap_or_default(),
                            grants,
                            secrets,
                            changed_grants = %names(&changed.grants),
                            changed_secrets = %names(&changed.secrets),
                            read_ms,
                            took_ms,
                            "policy patched from postgres"
                        ),
                        None => tracing::info!(
                            generation,
                            grants,
                            secrets,
                            read_ms,
                            took_ms,
                            "policy loaded from postgres"
                        ),
                    }
                    self.served = Some(generation);
                    Ok(())
                }
                Err(StoreError::Refused(error)) => {
                    // Every write is checked before it commits, so this is a key or version
                    // mismatch between this replica and the writer: keep serving, say so.
                    self.refused = Some(current);
                    self.holder.record_failure();
                    tracing::error!(generation = current, "{error}; the last good policy keeps serving");
                    Ok(())
                }
                Err(e) => Err(e),
            };
        }
    }

    /// Reads the policy on the session's other connection while the listening one is
    /// still probed, so that a database that falls silent in the middle of a long read is
    /// noticed as soon as an idle one; then compiles it. `None` when `session` was
    /// replaced meanwhile: the read may be stuck on a lost connection too.
    async fn load(&mut self, session: &mut Session) -> Option<Result<Caught, StoreError>> {
        let pool = session.pool.clone();
        let store = self.store.clone();
        // A patch needs the snapshot this replica serves, at the generation it served.
        let base = self.holder.current().as_ref().map(Arc::clone);
        let served = self.served.filter(|_| base.is_some());
        let read = store.bounded(async {
            let mut connection = pool.acquire().await?;
            read_since(&mut connection, served).await
        });
        tokio::pin!(read);
        let read = loop {
            tokio::select! {
                read = &mut read => break read,
                () = sleep(PROBE_EVERY) => match self.probe(session).await {
                    Err(e) => break Err(e),
                    Ok(Probed { replaced: true, .. }) => return None,
                    Ok(_) => {}
                },
            }
        };
        Some(match read {
            Ok(read) => self.store.catch_up(read, base).await,
            Err(e) => Err(e),
        })
    }

    /// A session that failed: counted as a failed load, and logged.
    fn ended(&mut self, why: &StoreError) {
        self.holder.record_failure();
        if why.is_unreachable() {
            self.away.lost(why);
            self.holder.set_source_reachable(false);
        } else {
            tracing::warn!("cannot refresh the policy: {why}; serving the last good snapshot");
        }
    }
}

/// Since when the database has been away: logged when that starts, every
/// [`STILL_AWAY_EVERY`] while it lasts, and when it ends.
#[derive(Default)]
struct Away {
    since: Option<Instant>,
    attempts: u64,
    told: Option<Instant>,
}

impl Away {
    fn lost(&mut self, why: &StoreError) {
        match why {
            StoreError::Timeout => {
                tracing::warn!(
                    "the database stopped answering ({why}); serving the last good snapshot and reconnecting"
                );
            }
            _ => tracing::warn!("lost the database ({why}); serving the last good snapshot and reconnecting"),
        }
        let now = Instant::now();
        self.since.get_or_insert(now);
        self.told = Some(now);
    }

    fn failed(&mut self, why: &StoreError) {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        self.attempts += 1;
        match self.told {
            None => tracing::warn!("cannot reach the database: {why}; serving the last good snapshot and retrying"),
            Some(told) if now.duration_since(told) >= STILL_AWAY_EVERY => tracing::warn!(
                away_seconds = now.duration_since(since).as_secs(),
                attempts = self.attempts,
                "the database still does not answer: {why}; serving the last good snapshot"
            ),
            Some(_) => return,
        }
        self.told = Some(now);
    }

    fn back(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                away_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                attempts = self.attempts,
                "the database answers again; the snapshot is current"
            );
        }
        self.attempts = 0;
        self.told = None;
    }
}

struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    fn peek(&self) -> Duration {
        self.next
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The next delay, doubling the one after.
    fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        now
    }

    async fn wait(&mut self) {
        sleep(self.step()).await;
    }
}

/// The names of a patch's log line.
fn names(set: &std::collections::BTreeSet<String>) -> String {
    name_list(&set.iter().collect::<Vec<_>>())
}
