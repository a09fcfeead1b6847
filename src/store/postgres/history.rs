//! `db history`: who changed what, when, at which generation, read from the append-only
//! change log the triggers write (migration `20261201000002_history`). Never a value: the
//! sealed values and grant definitions the log keeps are not read here.

use serde::Serialize;

use super::rows::{doc_from_rows, snapshot, GrantRow, ItemRow, SecretRow};
use super::{PgStore, StoreError};
use crate::policy::model::PolicyDoc;

/// One secret or grant changed by one writing transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    /// The generation the change made.
    pub generation: i64,
    /// When its transaction started, UTC, RFC 3339 to the second.
    pub at: String,
    /// Who made it: `cli:USER@HOST`, `import:USER@HOST`, `migration`, ...
    pub actor: String,
    /// `change`, `baseline` (what a database held when the history began) or `rollback`.
    pub change: String,
    /// `secret` or `grant`.
    pub object: String,
    pub name: String,
    /// A secret was `put` or `removed`; a grant `added`, `replaced` or `removed`.
    pub action: String,
}

impl PgStore {
    /// The history, oldest first; only the changes to secrets or grants named `name`, if given.
    pub async fn history(&self, name: Option<&str>) -> Result<Vec<HistoryEntry>, StoreError> {
        self.bounded(async {
            Ok(sqlx::query_as::<_, HistoryEntry>(
                "SELECT c.generation,
                        to_char(c.changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS at,
                        c.actor, c.kind AS change, i.object, i.name, i.action
                 FROM envoi_changes c JOIN envoi_change_items i USING (generation)
                 WHERE $1::text IS NULL OR i.name = $1
                 ORDER BY c.generation, i.object DESC, i.name COLLATE \"C\"",
            )
            .bind(name)
            .fetch_all(&self.pool)
            .await?)
        })
        .await
    }
}

/// What `db rollback` wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RollbackReport {
    pub secrets_written: u64,
    pub secrets_removed: u64,
    pub grants_written: u64,
    pub grants_removed: u64,
}

impl RollbackReport {
    fn wrote_anything(&self) -> bool {
        self.secrets_written + self.secrets_removed + self.grants_written + self.grants_removed > 0
    }
}

/// The secrets and grants as they were at generation `$1`: for each name, its last entry
/// at or before it, kept if it was not a removal.
const AT: &str = "WITH latest AS (
         SELECT DISTINCT ON (object, name) object, name, action, sealed, key_id, template, definition
         FROM envoi_change_items WHERE generation <= $1
         ORDER BY object, name, generation DESC
     ), target AS (SELECT * FROM latest WHERE action <> 'removed')";

/// The columns of an item as a grant's definition holds them, for `jsonb_to_recordset`.
const ITEM_COLUMNS: &str = "(kind text, target text, secret text, sealed text, key_id text, template text,
    encoding text, permissions_policy text, mode text, owner_policy text, owner_value text, group_policy text,
    group_value text)";

impl PgStore {
    /// Makes the secrets and grants what they were at generation `to`, in one change
    /// recorded as a rollback by `actor`, checked like any other: a policy that would not
    /// load now (a value sealed under a key no longer configured, say) is refused and
    /// nothing is written. Sealed values are restored as they were sealed: no plaintext.
    pub async fn rollback(&self, to: i64, actor: &str) -> Result<RollbackReport, StoreError> {
        let actor = actor.to_owned();
        self.bulk_change(&actor.clone(), RollbackReport::wrote_anything, move |tx| {
            Box::pin(async move {
                let (first, last): (Option<i64>, i64) = sqlx::query_as(
                    "SELECT greatest((SELECT min(generation) FROM envoi_changes), history_from), generation
                     FROM envoi_policy_state",
                )
                .fetch_one(&mut **tx)
                .await?;
                if !first.is_some_and(|first| (first..=last).contains(&to)) {
                    return Err(StoreError::Invalid(format!(
                        "generation {to} is not in the history (it holds generations {} to {last})",
                        first.unwrap_or(last)
                    )));
                }
                // A statement moves the generation even when it writes no row: when
                // nothing differs, none is sent.
                let differences: i64 = sqlx::query_scalar(&format!(
                    "{AT} SELECT (SELECT count(*) FROM envoi_grants g WHERE NOT EXISTS (
                                 SELECT 1 FROM target t WHERE t.object = 'grant' AND t.name = g.name
                                     AND t.definition = envoi_grant_definition(g)))
                           + (SELECT count(*) FROM target t WHERE t.object = 'grant'
                                 AND NOT EXISTS (SELECT 1 FROM envoi_grants g WHERE g.name = t.name))
                           + (SELECT count(*) FROM envoi_secrets s WHERE NOT EXISTS (
                                 SELECT 1 FROM target t WHERE t.object = 'secret' AND t.name = s.name
                                     AND (t.sealed, t.template) IS NOT DISTINCT FROM (s.sealed, s.template)))
                           + (SELECT count(*) FROM target t WHERE t.object = 'secret'
                                 AND NOT EXISTS (SELECT 1 FROM envoi_secrets s WHERE s.name = t.name))"
                ))
                .bind(to)
                .fetch_one(&mut **tx)
                .await?;
                if differences == 0 {
                    return Ok(RollbackReport::default());
                }
                sqlx::query("SELECT set_config('envoi.change', 'rollback', true)")
                    .execute(&mut **tx)
                    .await?;
                let mut report = RollbackReport::default();
                // Grants that differ from what they were, or were not there, go first.
                let sql = format!(
                    "{AT} DELETE FROM envoi_grants g WHERE NOT EXISTS (
                         SELECT 1 FROM target t WHERE t.object = 'grant' AND t.name = g.name
                             AND t.definition = envoi_grant_definition(g))"
                );
                report.grants_removed = exec(tx, &sql, to, None).await?;
                let sql = format!(
                    "{AT} DELETE FROM envoi_secrets s WHERE NOT EXISTS (
                         SELECT 1 FROM target t WHERE t.object = 'secret' AND t.name = s.name)"
                );
                report.secrets_removed = exec(tx, &sql, to, None).await?;
                let sql = format!(
                    "{AT} INSERT INTO envoi_secrets (name, sealed, key_id, template, updated_by)
                     SELECT name, sealed, key_id, template, $2 FROM target WHERE object = 'secret'
                     ON CONFLICT (name) DO UPDATE SET sealed = EXCLUDED.sealed, key_id = EXCLUDED.key_id,
                         template = EXCLUDED.template, literal = false,
                         version = envoi_secrets.version + 1, updated_at = now(),
                         updated_by = EXCLUDED.updated_by
                     WHERE (envoi_secrets.sealed, envoi_secrets.template)
                         IS DISTINCT FROM (EXCLUDED.sealed, EXCLUDED.template)"
                );
                report.secrets_written = exec(tx, &sql, to, Some(&actor)).await?;
                let sql = format!(
                    "{AT} INSERT INTO envoi_grants (name, project, type, object_id, updated_by)
                     SELECT name, definition->>'project', definition->>'type', definition->>'object_id', $2
                     FROM target WHERE object = 'grant' ON CONFLICT (name) DO NOTHING"
                );
                report.grants_written = exec(tx, &sql, to, Some(&actor)).await?;
                let sql = format!(
                    "{AT} INSERT INTO envoi_grant_items (grant_name, kind, target, secret, sealed, key_id, template,
                         encoding, permissions_policy, mode, owner_policy, owner_value, group_policy, group_value)
                     SELECT t.name, i.kind, i.target, i.secret, i.sealed, i.key_id, i.template, i.encoding,
                         i.permissions_policy, i.mode, i.owner_policy, i.owner_value, i.group_policy, i.group_value
                     FROM target t
                     CROSS JOIN LATERAL jsonb_to_recordset(t.definition->'items') AS i {ITEM_COLUMNS}
                     WHERE t.object = 'grant' AND NOT EXISTS (SELECT 1 FROM envoi_grant_items e WHERE e.grant_name = t.name)
"
                );
                exec(tx, &sql, to, None).await?;
                Ok(report)
            })
        })
        .await
    }
}

/// Runs one statement of a rollback: `$1` the generation, `$2` the actor if given; the
/// rows it wrote.
async fn exec(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    sql: &str,
    to: i64,
    actor: Option<&str>,
) -> Result<u64, StoreError> {
    let mut query = sqlx::query(sql).bind(to);
    if let Some(actor) = actor {
        query = query.bind(actor);
    }
    Ok(query.execute(&mut **tx).await?.rows_affected())
}

impl PgStore {
    /// The policy as it was at generation `at` (the current one when `None`), rebuilt
    /// from the history: what `db diff` compares.
    pub async fn read_at(&self, at: Option<i64>) -> Result<(i64, PolicyDoc), StoreError> {
        let Some(at) = at else {
            return self.read().await;
        };
        self.bounded(async {
            let mut conn = self.pool.acquire().await?;
            let mut tx = snapshot(&mut conn).await?;
            let (first, last): (Option<i64>, i64) = sqlx::query_as(
                "SELECT greatest((SELECT min(generation) FROM envoi_changes), history_from), generation
                 FROM envoi_policy_state",
            )
            .fetch_one(&mut *tx)
            .await?;
            if !first.is_some_and(|first| (first..=last).contains(&at)) {
                return Err(StoreError::Invalid(format!(
                    "generation {at} is not in the history (it holds generations {} to {last})",
                    first.unwrap_or(last)
                )));
            }
            let secrets = sqlx::query_as::<_, SecretRow>(&format!(
                "{AT} SELECT name, sealed, template FROM target WHERE object = 'secret' ORDER BY name"
            ))
            .bind(at)
            .fetch_all(&mut *tx)
            .await?;
            let grants = sqlx::query_as::<_, GrantRow>(&format!(
                "{AT} SELECT name, definition->>'project' AS project, definition->>'type' AS type,
                        definition->>'object_id' AS object_id
                 FROM target WHERE object = 'grant' ORDER BY name"
            ))
            .bind(at)
            .fetch_all(&mut *tx)
            .await?;
            let items = sqlx::query_as::<_, ItemRow>(&format!(
                "{AT} SELECT t.name AS grant_name, i.kind, i.target, i.secret, i.sealed, i.key_id, i.template,
                        i.encoding, i.permissions_policy, i.mode, i.owner_policy, i.owner_value, i.group_policy,
                        i.group_value
                 FROM target t
                 CROSS JOIN LATERAL jsonb_to_recordset(t.definition->'items') AS i {ITEM_COLUMNS}
                 WHERE t.object = 'grant' ORDER BY 1, 2, 3"
            ))
            .bind(at)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok((at, doc_from_rows(secrets, grants, items)?))
        })
        .await
    }
}
