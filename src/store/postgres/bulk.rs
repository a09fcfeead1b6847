//! Set-based writes for bulk changes (`db import`): each table written by a few
//! statements over arrays, so that writing 100,000 grants costs a few dozen round trips
//! rather than one per row. A list with nothing in it sends no statement.

use sqlx::{Postgres, Transaction};

use super::rows::{constraint_message, ItemRow, Sealed};
use super::StoreError;

/// Rows per statement: bounds one statement's message and the server's work for it.
const CHUNK: usize = 10_000;

/// A secret to write: a sealed value or a template.
pub(super) struct SecretWrite<'a> {
    pub(super) name: &'a str,
    pub(super) sealed: Option<Sealed>,
    pub(super) template: Option<&'a str>,
    /// A `value` literal (exported back as one).
    pub(super) literal: bool,
}

/// A grant to write, with every one of its items.
pub(super) struct GrantWrite<'a> {
    pub(super) name: &'a str,
    /// Project, type and id, as their columns hold them.
    pub(super) selector: &'a [String; 3],
    pub(super) items: &'a [ItemRow],
}

type Tx = Transaction<'static, Postgres>;

/// Removes the secrets named; their grants' items, if any still name them, are refused
/// at commit by the deferred foreign key, or by the compile before it.
pub(super) async fn delete_secrets(tx: &mut Tx, names: &[&str]) -> Result<(), StoreError> {
    for chunk in names.chunks(CHUNK) {
        sqlx::query("DELETE FROM envoi_secrets WHERE name = ANY($1)")
            .bind(chunk)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Removes the grants named, and their items with them.
pub(super) async fn delete_grants(tx: &mut Tx, names: &[&str]) -> Result<(), StoreError> {
    for chunk in names.chunks(CHUNK) {
        sqlx::query("DELETE FROM envoi_grants WHERE name = ANY($1)")
            .bind(chunk)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Inserts or rewrites secrets, bumping the version of those that existed.
pub(super) async fn upsert_secrets(tx: &mut Tx, secrets: &[SecretWrite<'_>], actor: &str) -> Result<(), StoreError> {
    for chunk in secrets.chunks(CHUNK) {
        let names: Vec<&str> = chunk.iter().map(|s| s.name).collect();
        let sealed: Vec<Option<&str>> = chunk.iter().map(|s| s.sealed.as_ref().map(|s| &*s.text)).collect();
        let key_ids: Vec<Option<&str>> = chunk.iter().map(|s| s.sealed.as_ref().map(|s| &*s.key_id)).collect();
        let templates: Vec<Option<&str>> = chunk.iter().map(|s| s.template).collect();
        let literals: Vec<bool> = chunk.iter().map(|s| s.literal).collect();
        sqlx::query(
            "INSERT INTO envoi_secrets (name, sealed, key_id, template, literal, updated_by)
             SELECT name, sealed, key_id, template, literal, $5
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $6::boolean[])
                 AS s (name, sealed, key_id, template, literal)
             ON CONFLICT (name) DO UPDATE SET sealed = EXCLUDED.sealed, key_id = EXCLUDED.key_id,
                 template = EXCLUDED.template, literal = EXCLUDED.literal,
                 version = envoi_secrets.version + 1, updated_at = now(), updated_by = EXCLUDED.updated_by",
        )
        .bind(&names)
        .bind(&sealed)
        .bind(&key_ids)
        .bind(&templates)
        .bind(actor)
        .bind(&literals)
        .execute(&mut **tx)
        .await
        .map_err(|e| constraint_message(e, "import: a secret"))?;
    }
    Ok(())
}

/// Inserts or rewrites grants (bumping the version of those that existed) and replaces
/// all of their items.
pub(super) async fn write_grants(tx: &mut Tx, grants: &[GrantWrite<'_>], actor: &str) -> Result<(), StoreError> {
    for chunk in grants.chunks(CHUNK) {
        let names: Vec<&str> = chunk.iter().map(|g| g.name).collect();
        let field = |i: usize| chunk.iter().map(|g| g.selector[i].as_str()).collect::<Vec<&str>>();
        sqlx::query(
            "INSERT INTO envoi_grants (name, project, type, object_id, updated_by)
             SELECT name, project, type, object_id, $5
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS g (name, project, type, object_id)
             ON CONFLICT (name) DO UPDATE SET project = EXCLUDED.project, type = EXCLUDED.type,
                 object_id = EXCLUDED.object_id, version = envoi_grants.version + 1, updated_at = now(),
                 updated_by = EXCLUDED.updated_by",
        )
        .bind(&names)
        .bind(field(0))
        .bind(field(1))
        .bind(field(2))
        .bind(actor)
        .execute(&mut **tx)
        .await
        .map_err(|e| constraint_message(e, "import: a grant"))?;
        sqlx::query("DELETE FROM envoi_grant_items WHERE grant_name = ANY($1)")
            .bind(&names)
            .execute(&mut **tx)
            .await?;
    }
    let items: Vec<&ItemRow> = grants.iter().flat_map(|g| g.items).collect();
    for chunk in items.chunks(CHUNK) {
        insert_items(tx, chunk).await?;
    }
    Ok(())
}

async fn insert_items(tx: &mut Tx, items: &[&ItemRow]) -> Result<(), StoreError> {
    let text = |f: fn(&ItemRow) -> &str| items.iter().map(|i| f(i)).collect::<Vec<&str>>();
    let optional = |f: fn(&ItemRow) -> &Option<String>| items.iter().map(|i| f(i).as_deref()).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO envoi_grant_items (grant_name, kind, target, secret, sealed, key_id, template, encoding,
             permissions_policy, mode, owner_policy, owner_value, group_policy, group_value, literal)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
             $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::boolean[])",
    )
    .bind(text(|i| &i.grant_name))
    .bind(text(|i| &i.kind))
    .bind(text(|i| &i.target))
    .bind(optional(|i| &i.secret))
    .bind(optional(|i| &i.sealed))
    .bind(optional(|i| &i.key_id))
    .bind(optional(|i| &i.template))
    .bind(optional(|i| &i.encoding))
    .bind(optional(|i| &i.permissions_policy))
    .bind(optional(|i| &i.mode))
    .bind(optional(|i| &i.owner_policy))
    .bind(optional(|i| &i.owner_value))
    .bind(optional(|i| &i.group_policy))
    .bind(optional(|i| &i.group_value))
    .bind(items.iter().map(|i| i.literal).collect::<Vec<bool>>())
    .execute(&mut **tx)
    .await
    .map_err(|e| constraint_message(e, "import: a grant's item"))?;
    Ok(())
}
