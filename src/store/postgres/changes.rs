//! What a replica reads to catch up (SPEC §2, Stores): the changes after the generation
//! it serves, from the append-only change log, and the part of the policy they affect,
//! so that a change costs the replica what it touches. The whole policy instead when the
//! log cannot say (it no longer reaches back that far, or holds no rows for a change), or
//! when so much changed that a full read is cheaper.

use std::sync::Arc;

use sqlx::PgConnection;

use super::rows::{read_doc, snapshot};
use super::scope::{read_scope, Scope};
use super::StoreError;
use crate::policy::model::PolicyDoc;
use crate::policy::{Loader, Policy};
use crate::store::Snapshot;

/// More changed names than this, and the whole policy is read instead: a patch is for
/// changes, not for a new policy.
const MOST_PATCHED: i64 = 5_000;

/// What a replica read, in one snapshot of the database.
pub(super) enum Read {
    Whole {
        generation: i64,
        doc: PolicyDoc,
    },
    Patch {
        generation: i64,
        /// The names changed since the replica's generation.
        changed: Scope,
        /// The part of the policy they affect, as it is now.
        doc: PolicyDoc,
        /// How many secrets the policy defines now.
        secrets: usize,
    },
}

/// The policy at the current generation: as the changes since `served` when the log
/// holds them all, else whole.
pub(super) async fn read_since(conn: &mut PgConnection, served: Option<i64>) -> Result<Read, StoreError> {
    let mut tx = snapshot(conn).await?;
    let generation: i64 = sqlx::query_scalar("SELECT generation FROM envoi_policy_state")
        .fetch_one(&mut *tx)
        .await?;
    let changed = match served {
        Some(from) if from < generation => changed_since(&mut tx, from, generation).await?,
        _ => None,
    };
    let read = match changed {
        Some(changed) => {
            let doc = read_scope(&mut tx, &changed).await?;
            let secrets: i64 = sqlx::query_scalar("SELECT count(*) FROM envoi_secrets")
                .fetch_one(&mut *tx)
                .await?;
            Read::Patch {
                generation,
                changed,
                doc,
                secrets: usize::try_from(secrets).unwrap_or_default(),
            }
        }
        None => Read::Whole {
            generation,
            doc: read_doc(&mut tx).await?,
        },
    };
    tx.commit().await?;
    Ok(read)
}

/// The secrets and grants changed after `from` up to `to`; `None` when the log does not
/// hold every one of those changes (compacted, or written by a release without it), or
/// when they are too many to patch.
async fn changed_since(conn: &mut PgConnection, from: i64, to: i64) -> Result<Option<Scope>, StoreError> {
    let history_from: i64 = sqlx::query_scalar("SELECT history_from FROM envoi_policy_state")
        .fetch_one(&mut *conn)
        .await?;
    if from < history_from {
        return Ok(None);
    }
    // Every writing transaction moves the generation by one and logs itself.
    let logged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM envoi_changes WHERE generation > $1 AND generation <= $2 AND kind <> 'baseline'",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut *conn)
    .await?;
    if logged != to - from {
        return Ok(None);
    }
    let names: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT object, name FROM envoi_change_items WHERE generation > $1 AND generation <= $2 LIMIT $3",
    )
    .bind(from)
    .bind(to)
    .bind(MOST_PATCHED + 1)
    .fetch_all(&mut *conn)
    .await?;
    if names.len() as i64 > MOST_PATCHED {
        return Ok(None);
    }
    let mut changed = Scope::default();
    for (object, name) in names {
        match object.as_str() {
            "secret" => changed.secrets.insert(name),
            _ => changed.grants.insert(name),
        };
    }
    Ok(Some(changed))
}

/// A policy compiled from what a replica read, and how it was made.
pub(super) struct Caught {
    pub(super) generation: i64,
    pub(super) policy: Policy,
    /// The names a patch changed; `None` for a whole load.
    pub(super) patched: Option<Scope>,
}

impl super::PgStore {
    /// Compiles what [`read_since`] read, off the async threads: a patch applied to
    /// `base` (the snapshot served, with which it shares all it does not change), or the
    /// whole policy.
    pub(super) async fn catch_up(&self, read: Read, base: Option<Arc<Snapshot>>) -> Result<Caught, StoreError> {
        let (generation, changed, doc, secrets, base) = match (read, base) {
            (Read::Whole { generation, doc }, _) => {
                return Ok(Caught {
                    generation,
                    policy: self.compile(doc).await?,
                    patched: None,
                })
            }
            (Read::Patch { generation, .. }, None) => {
                return Err(StoreError::Invalid(format!(
                    "generation {generation} was read as a patch, with no snapshot to patch"
                )))
            }
            (
                Read::Patch {
                    generation,
                    changed,
                    doc,
                    secrets,
                },
                Some(base),
            ) => (generation, changed, doc, secrets, base),
        };
        let keyring = self.keyring.clone();
        let names = changed.clone();
        let policy = tokio::task::spawn_blocking(move || {
            let part = Loader::new(&keyring).load_doc("postgres", doc)?;
            Ok::<_, StoreError>(
                base.policy
                    .patched(names.grants.iter().map(String::as_str), part, secrets),
            )
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("policy compilation panicked: {e}")))??;
        Ok(Caught {
            generation,
            policy,
            patched: Some(changed),
        })
    }
}
