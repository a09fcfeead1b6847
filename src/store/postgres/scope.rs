//! What one change can affect, read from the tables (SPEC §2, Stores: a change costs what
//! it touches): the grants it changes, the grants that use a secret it changes (directly
//! or through templates, at any depth), the grants that could conflict with either (same
//! `bucket`: equal specificity needs the same kind of pattern in each field and the same
//! exact names), and every secret these need. Compiled on its own, this part of the
//! policy fails exactly where the whole would because of the change: a writer checks it
//! before committing, and a replica patches its snapshot with it.

use std::collections::BTreeSet;

use sqlx::PgConnection;

use super::rows::{doc_from_rows, GrantRow, ItemRow, SecretRow};
use super::StoreError;
use crate::policy::model::PolicyDoc;
use crate::policy::spliced_secrets;

/// The names a change wrote (or a run of changes, for a replica).
#[derive(Debug, Default, Clone)]
pub(super) struct Scope {
    pub(super) secrets: BTreeSet<String>,
    pub(super) grants: BTreeSet<String>,
}

impl Scope {
    pub(super) fn secret(name: &str) -> Self {
        Self {
            secrets: BTreeSet::from([name.to_owned()]),
            ..Self::default()
        }
    }

    pub(super) fn grant(name: &str) -> Self {
        Self {
            grants: BTreeSet::from([name.to_owned()]),
            ..Self::default()
        }
    }
}

/// The part of the policy that changes to `scope` can affect, as the tables hold it now.
pub(super) async fn read_scope(conn: &mut PgConnection, scope: &Scope) -> Result<PolicyDoc, StoreError> {
    // Upwards: the secrets whose templates splice a changed one, until none is new.
    let mut secrets: BTreeSet<String> = scope.secrets.clone();
    let mut frontier: Vec<String> = secrets.iter().cloned().collect();
    while !frontier.is_empty() {
        let users: Vec<(String, String)> =
            sqlx::query_as("SELECT name, template FROM envoi_secrets WHERE template_references && $1::text[]")
                .bind(&frontier)
                .fetch_all(&mut *conn)
                .await?;
        frontier = users
            .into_iter()
            .filter(|(_, template)| spliced_secrets(template).any(|s| frontier.contains(&s)))
            .map(|(name, _)| name)
            .filter(|name| secrets.insert(name.clone()))
            .collect();
    }

    // The grants that use any of them, and those changed. Two statements, so that each
    // has its index: named secrets by `secret`, templates by their references.
    let named: Vec<String> = secrets.iter().cloned().collect();
    let mut grants: BTreeSet<String> = scope.grants.clone();
    if !named.is_empty() {
        let direct: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT grant_name FROM envoi_grant_items WHERE secret = ANY($1)")
                .bind(&named)
                .fetch_all(&mut *conn)
                .await?;
        let through: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT grant_name, template FROM envoi_grant_items WHERE template_references && $1::text[]",
        )
        .bind(&named)
        .fetch_all(&mut *conn)
        .await?;
        grants.extend(direct);
        grants.extend(
            through
                .into_iter()
                .filter(|(_, template)| spliced_secrets(template).any(|s| secrets.contains(&s)))
                .map(|(grant, _)| grant),
        );
    }

    // With those they could conflict with.
    let grants: Vec<String> = grants.into_iter().collect();
    let grant_rows = sqlx::query_as::<_, GrantRow>(
        "SELECT name, project, type, object_id FROM envoi_grants
         WHERE bucket IN (SELECT bucket FROM envoi_grants WHERE name = ANY($1)) ORDER BY name",
    )
    .bind(&grants)
    .fetch_all(&mut *conn)
    .await?;
    let names: Vec<&str> = grant_rows.iter().map(|g| g.name.as_str()).collect();
    let items = sqlx::query_as::<_, ItemRow>(
        "SELECT grant_name, kind, target, secret, sealed, key_id, template, encoding, permissions_policy, mode,
                owner_policy, owner_value, group_policy, group_value
         FROM envoi_grant_items WHERE grant_name = ANY($1) ORDER BY grant_name, kind, target",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;

    // Downwards: every secret these name, and those their templates splice.
    let mut wanted: BTreeSet<String> = secrets;
    for item in &items {
        wanted.extend(item.secret.iter().cloned());
        wanted.extend(item.template.iter().flat_map(|t| spliced_secrets(t)));
    }
    let mut secret_rows: Vec<SecretRow> = Vec::new();
    let mut read: BTreeSet<String> = BTreeSet::new();
    loop {
        let missing: Vec<String> = wanted.difference(&read).cloned().collect();
        if missing.is_empty() {
            break;
        }
        read.extend(missing.iter().cloned());
        let rows = sqlx::query_as::<_, SecretRow>(
            "SELECT name, sealed, template FROM envoi_secrets WHERE name = ANY($1) ORDER BY name",
        )
        .bind(&missing)
        .fetch_all(&mut *conn)
        .await?;
        for row in &rows {
            wanted.extend(row.template.iter().flat_map(|t| spliced_secrets(t)));
        }
        secret_rows.extend(rows);
    }
    secret_rows.sort_by(|a, b| a.name.cmp(&b.name));
    doc_from_rows(secret_rows, grant_rows, items)
}
