//! The tables and the policy model: the rows as read, the tables as a policy document,
//! and a grant's items as the rows written for it.

use std::collections::HashMap;
use std::path::Path;

use sqlx::{Connection as _, PgConnection, Postgres, Transaction};
use toml::Spanned;

use super::{PgStore, StoreError};
use crate::policy::model::{EnvSpec, FileSpec, GrantSpec, OwnerSpec, PermissionsSpec, PolicyDoc, SourceSpec};
use crate::policy::{one_source, parse_mode, read_plain, Encoding, PermissionPolicy};
use crate::seal::Keyring;

impl PgStore {
    /// Converts a grant's items to rows, sealing inline plaintext for its ENV key or FILE
    /// path. `base` resolves relative `file` values.
    pub(super) fn item_rows(
        &self,
        grant: &str,
        spec: &GrantSpec,
        base: Option<&Path>,
    ) -> Result<Vec<ItemRow>, StoreError> {
        let mut rows = Vec::with_capacity(spec.env.len() + spec.files.len());
        for (key, entry) in &spec.env {
            let mut row = ItemRow::new(grant, ENV, key);
            match entry {
                EnvSpec::Secret(name) => row.secret = Some(name.clone()),
                EnvSpec::Inline(source) => self.inline_source(&mut row, source, base)?,
            }
            rows.push(row);
        }
        for file in &spec.files {
            let mut row = ItemRow::new(grant, FILE, &file.path);
            let inline = SourceSpec {
                value: file.value.clone(),
                env: file.env.clone(),
                file: file.file.clone(),
                sealed: file.sealed.clone(),
                template: file.template.clone(),
            };
            match &file.secret {
                Some(name) => row.secret = Some(name.clone()),
                None => self.inline_source(&mut row, &inline, base)?,
            }
            row.encoding = file.encoding.map(|e| e.as_str().to_owned());
            let permissions = match (&file.mode, &file.permissions) {
                (Some(mode), _) => Some((PermissionPolicy::AlwaysSet, mode)),
                (None, Some(long)) => Some((long.policy, &long.mode)),
                (None, None) => None,
            };
            if let Some((policy, mode)) = permissions {
                let mode =
                    parse_mode(mode).map_err(|e| StoreError::Invalid(format!("{} {}: {e}", row.kind, row.target)))?;
                row.permissions_policy = Some(policy.as_str().to_owned());
                row.mode = Some(mode);
            }
            (row.owner_policy, row.owner_value) = owner_columns(file.owner.as_ref());
            (row.group_policy, row.group_value) = owner_columns(file.group.as_ref());
            rows.push(row);
        }
        Ok(rows)
    }

    fn inline_source(&self, row: &mut ItemRow, source: &SourceSpec, base: Option<&Path>) -> Result<(), StoreError> {
        let refused = |e: String| StoreError::Invalid(format!("{} {}: {e}", row.kind, row.target));
        one_source(source).map_err(refused)?;
        let plain = match (&source.template, &source.sealed) {
            (Some(template), _) => {
                row.template = Some(template.clone());
                return Ok(());
            }
            // Stored under the newest key, like every value written.
            (None, Some(sealed)) => self
                .keyring
                .open(&row.target, sealed)
                .map_err(|e| refused(format!("sealed value: {e}")))?,
            (None, None) => read_plain(source, base)
                .map_err(refused)?
                .ok_or_else(|| refused("no value given".into()))?,
        };
        let sealed = Sealed::new(&self.keyring, &row.target, plain.expose())?;
        (row.sealed, row.key_id) = (Some(sealed.text), Some(sealed.key_id));
        row.literal = source.value.is_some();
        Ok(())
    }
}

#[derive(Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct ItemRow {
    pub(super) grant_name: String,
    pub(super) kind: String,
    pub(super) target: String,
    pub(super) secret: Option<String>,
    pub(super) sealed: Option<String>,
    pub(super) key_id: Option<String>,
    pub(super) template: Option<String>,
    pub(super) encoding: Option<String>,
    pub(super) permissions_policy: Option<String>,
    pub(super) mode: Option<String>,
    pub(super) owner_policy: Option<String>,
    pub(super) owner_value: Option<String>,
    pub(super) group_policy: Option<String>,
    pub(super) group_value: Option<String>,
    /// An inline `value`, not a secret: sealed like any value, exported as a literal.
    #[sqlx(default)]
    pub(super) literal: bool,
}

impl ItemRow {
    fn new(grant: &str, kind: &str, target: &str) -> Self {
        Self {
            grant_name: grant.to_owned(),
            kind: kind.to_owned(),
            target: target.to_owned(),
            ..Self::default()
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SecretRow {
    pub(super) name: String,
    pub(super) sealed: Option<String>,
    pub(super) template: Option<String>,
    /// A `value` literal, as imported: sealed like any value, exported as a literal.
    #[sqlx(default)]
    pub(super) literal: bool,
}

#[derive(sqlx::FromRow)]
pub(super) struct GrantRow {
    pub(super) name: String,
    pub(super) project: String,
    #[sqlx(rename = "type")]
    pub(super) kind: String,
    pub(super) object_id: String,
}

/// A read-only transaction on one snapshot of the database: every read in it sees the
/// same generation.
pub(super) async fn snapshot(conn: &mut PgConnection) -> Result<Transaction<'_, Postgres>, StoreError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The generation and the whole policy, read in one snapshot.
pub(super) async fn read_on(conn: &mut PgConnection) -> Result<(i64, PolicyDoc), StoreError> {
    let mut tx = snapshot(conn).await?;
    let generation = generation(&mut tx).await?;
    let doc = read_doc(&mut tx).await?;
    tx.commit().await?;
    Ok((generation, doc))
}

async fn generation(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT generation FROM envoi_policy_state")
        .fetch_one(&mut *conn)
        .await?)
}

pub(super) async fn read_rows(
    conn: &mut PgConnection,
) -> Result<(Vec<SecretRow>, Vec<GrantRow>, Vec<ItemRow>), StoreError> {
    let secrets =
        sqlx::query_as::<_, SecretRow>("SELECT name, sealed, template, literal FROM envoi_secrets ORDER BY name")
            .fetch_all(&mut *conn)
            .await?;
    let grants = sqlx::query_as::<_, GrantRow>("SELECT name, project, type, object_id FROM envoi_grants ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    let items = sqlx::query_as::<_, ItemRow>(
        "SELECT grant_name, kind, target, secret, sealed, key_id, template, encoding, permissions_policy, mode,
                owner_policy, owner_value, group_policy, group_value, literal
         FROM envoi_grant_items ORDER BY grant_name, kind, target",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok((secrets, grants, items))
}

/// The tables as a policy document, the same model the TOML files parse into.
pub(super) async fn read_doc(conn: &mut PgConnection) -> Result<PolicyDoc, StoreError> {
    let (secrets, grants, items) = read_rows(conn).await?;
    doc_from_rows(secrets, grants, items)
}

/// The tables as the TOML `db export` writes: literals opened back into `value`s (they
/// were imported as plaintext from the policy's own files), every other value sealed.
pub(super) async fn read_export(conn: &mut PgConnection, keyring: &Keyring) -> Result<PolicyDoc, StoreError> {
    let mut tx = snapshot(conn).await?;
    let (mut secrets, grants, mut items) = read_rows(&mut tx).await?;
    tx.commit().await?;
    let mut literals: HashMap<(String, String), String> = HashMap::new();
    for row in secrets.iter_mut().filter(|r| r.literal) {
        if let Some(text) = row.sealed.as_deref().and_then(|s| open_text(keyring, &row.name, s)) {
            literals.insert((String::new(), row.name.clone()), text);
            row.sealed = None;
        }
    }
    for item in items.iter_mut().filter(|i| i.literal) {
        if let Some(text) = item.sealed.as_deref().and_then(|s| open_text(keyring, &item.target, s)) {
            literals.insert(
                (format!("{}\0{}", item.grant_name, item.kind), item.target.clone()),
                text,
            );
            (item.sealed, item.key_id) = (None, None);
        }
    }
    let mut doc = doc_from_rows(secrets, grants, items)?;
    for (name, spec) in doc.secrets.iter_mut() {
        if let Some(text) = literals.remove(&(String::new(), name.clone())) {
            spec.get_mut().value = Some(text);
        }
    }
    for grant in doc.grants.iter_mut() {
        let grant = grant.get_mut();
        let name = grant.name.clone().unwrap_or_default();
        for (key, mut entry) in std::mem::take(&mut grant.env) {
            if let EnvSpec::Inline(source) = &mut entry {
                if let Some(text) = literals.remove(&(format!("{name}\0{ENV}"), key.clone())) {
                    source.value = Some(text);
                }
            }
            grant.env.insert(key, entry);
        }
        for file in grant.files.iter_mut() {
            if let Some(text) = literals.remove(&(format!("{name}\0{FILE}"), file.path.clone())) {
                file.value = Some(text);
            }
        }
    }
    Ok(doc)
}

/// A sealed literal's text; `None` (it stays sealed) when it does not open as UTF-8.
fn open_text(keyring: &Keyring, name: &str, sealed: &str) -> Option<String> {
    let plain = keyring.open(name, sealed).ok()?;
    std::str::from_utf8(plain.expose()).ok().map(str::to_owned)
}

/// Rows as a policy document; `items` are every item of `grants`.
pub(super) fn doc_from_rows(
    secrets: Vec<SecretRow>,
    grants: Vec<GrantRow>,
    items: Vec<ItemRow>,
) -> Result<PolicyDoc, StoreError> {
    let mut by_grant: HashMap<String, Vec<ItemRow>> = HashMap::new();
    for item in items {
        by_grant.entry(item.grant_name.clone()).or_default().push(item);
    }
    let secrets = secrets
        .into_iter()
        .map(|row| {
            let spec = SourceSpec {
                sealed: row.sealed,
                template: row.template,
                ..SourceSpec::default()
            };
            (row.name, Spanned::new(0..0, spec))
        })
        .collect();
    let grants = grants
        .into_iter()
        .map(|row| {
            let items = by_grant.remove(&row.name).unwrap_or_default();
            grant_spec(row, items).map(|spec| Spanned::new(0..0, spec))
        })
        .collect::<Result<_, _>>()?;
    Ok(PolicyDoc { secrets, grants })
}

/// What a selector column holds where the policy leaves the field out: any value.
const ANY: &str = "*";

/// A grant's project, type and id as their columns hold them.
pub(crate) fn selector_columns(grant: &GrantSpec) -> [&str; 3] {
    [&grant.project, &grant.kind, &grant.id].map(|field| field.as_deref().unwrap_or(ANY))
}

/// A selector column as the policy model holds it.
fn selector_field(column: String) -> Option<String> {
    (column != ANY).then_some(column)
}

/// The `kind` column of an item row.
const ENV: &str = "ENV";
const FILE: &str = "FILE";

/// A column that names an enum's variant, read back; the table's CHECK constraints keep
/// it one of the names the enum writes.
fn named<T: std::str::FromStr<Err = String>>(item: &ItemRow, column: &Option<String>) -> Result<Option<T>, StoreError> {
    column.as_deref().map(str::parse).transpose().map_err(|e| {
        StoreError::Invalid(format!(
            "grant `{}`: {} {}: {e}",
            item.grant_name, item.kind, item.target
        ))
    })
}

fn grant_spec(row: GrantRow, items: Vec<ItemRow>) -> Result<GrantSpec, StoreError> {
    let mut spec = GrantSpec {
        name: Some(row.name),
        project: selector_field(row.project),
        kind: selector_field(row.kind),
        id: selector_field(row.object_id),
        env: Default::default(),
        files: Vec::new(),
    };
    for item in items {
        let policy: Option<PermissionPolicy> = named(&item, &item.permissions_policy)?;
        let encoding: Option<Encoding> = named(&item, &item.encoding)?;
        let inline = SourceSpec {
            sealed: item.sealed,
            template: item.template,
            ..SourceSpec::default()
        };
        if item.kind == ENV {
            let entry = match item.secret {
                Some(name) => EnvSpec::Secret(name),
                None => EnvSpec::Inline(Box::new(inline)),
            };
            spec.env.insert(item.target, entry);
            continue;
        }
        let permissions = policy
            .zip(item.mode)
            .map(|(policy, mode)| PermissionsSpec { policy, mode });
        spec.files.push(FileSpec {
            path: item.target,
            secret: item.secret,
            value: None,
            env: None,
            file: None,
            sealed: inline.sealed,
            template: inline.template,
            encoding,
            mode: None,
            permissions,
            owner: item.owner_policy.map(|policy| OwnerSpec::Long {
                policy,
                value: item.owner_value,
            }),
            group: item.group_policy.map(|policy| OwnerSpec::Long {
                policy,
                value: item.group_value,
            }),
        });
    }
    Ok(spec)
}

fn owner_columns(owner: Option<&OwnerSpec>) -> (Option<String>, Option<String>) {
    match owner {
        None => (None, None),
        Some(OwnerSpec::Short(value)) => (Some("AlwaysSetExplicit".into()), Some(value.clone())),
        Some(OwnerSpec::Long { policy, value }) => (Some(policy.clone()), value.clone()),
    }
}

/// A value as the tables hold it: sealed for its name under the newest key, with that
/// key's id beside it.
pub(super) struct Sealed {
    pub(super) text: String,
    pub(super) key_id: String,
}

impl Sealed {
    pub(super) fn new(keyring: &Keyring, name: &str, plain: &[u8]) -> Result<Self, StoreError> {
        let invalid = |e: crate::seal::SealError| StoreError::Invalid(e.to_string());
        let text = keyring.seal(name, plain).map_err(invalid)?;
        let key_id = Keyring::key_id(&text).map_err(invalid)?.to_owned();
        Ok(Self { text, key_id })
    }
}

/// Writes secret `name`, a sealed value or a template, and returns its version.
pub(super) async fn upsert_secret(
    tx: &mut Transaction<'static, Postgres>,
    name: &str,
    sealed: Option<&Sealed>,
    template: Option<&str>,
    actor: &str,
) -> Result<i32, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO envoi_secrets (name, sealed, key_id, template, updated_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET sealed = $2, key_id = $3, template = $4, literal = false,
             version = envoi_secrets.version + 1, updated_at = now(), updated_by = $5
         RETURNING version",
    )
    .bind(name)
    .bind(sealed.map(|s| &s.text))
    .bind(sealed.map(|s| &s.key_id))
    .bind(template)
    .bind(actor)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| constraint_message(e, &format!("secret `{name}`")))
}

/// Turns a constraint violation into a sentence; other errors pass through.
pub(super) fn constraint_message(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.constraint().is_some() => StoreError::Invalid(format!(
            "{what}: refused by the database constraint `{}`",
            db.constraint().unwrap_or_default()
        )),
        _ => e.into(),
    }
}

pub(super) async fn insert_grant(
    tx: &mut Transaction<'static, Postgres>,
    name: &str,
    grant: &GrantSpec,
    items: &[ItemRow],
    actor: &str,
) -> Result<(), StoreError> {
    let [project, kind, id] = selector_columns(grant);
    sqlx::query(
        "INSERT INTO envoi_grants (name, project, type, object_id, updated_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET project = $2, type = $3, object_id = $4,
             version = envoi_grants.version + 1, updated_at = now(), updated_by = $5",
    )
    .bind(name)
    .bind(project)
    .bind(kind)
    .bind(id)
    .bind(actor)
    .execute(&mut **tx)
    .await
    .map_err(|e| constraint_message(e, &format!("grant `{name}`")))?;
    sqlx::query("DELETE FROM envoi_grant_items WHERE grant_name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    for item in items {
        sqlx::query(
            "INSERT INTO envoi_grant_items (grant_name, kind, target, secret, sealed, key_id, template, encoding,
                 permissions_policy, mode, owner_policy, owner_value, group_policy, group_value)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&item.grant_name)
        .bind(&item.kind)
        .bind(&item.target)
        .bind(&item.secret)
        .bind(&item.sealed)
        .bind(&item.key_id)
        .bind(&item.template)
        .bind(&item.encoding)
        .bind(&item.permissions_policy)
        .bind(&item.mode)
        .bind(&item.owner_policy)
        .bind(&item.owner_value)
        .bind(&item.group_policy)
        .bind(&item.group_value)
        .execute(&mut **tx)
        .await
        .map_err(|e| constraint_message(e, &format!("grant `{name}`: {} {}", item.kind, item.target)))?;
    }
    Ok(())
}
