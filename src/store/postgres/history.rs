//! `db history`: who changed what, when, at which generation, read from the append-only
//! change log the triggers write (migration `20261201000002_history`). Never a value: the
//! sealed values and grant definitions the log keeps are not read here.

use serde::Serialize;

use super::{PgStore, StoreError};

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
