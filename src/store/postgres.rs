//! The Postgres store (SPEC §2): the policy model in tables, values sealed at rest,
//! changes checked by compiling the whole policy inside the writing transaction, and a
//! sync task that keeps each replica's in-memory snapshot current (LISTEN/NOTIFY plus a
//! periodic generation check) without ever putting the database on the request path.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{Connection as _, PgConnection, Postgres, Transaction};
use toml::Spanned;

use crate::policy::model::{EnvSpec, FileSpec, GrantSpec, OwnerSpec, PermissionsSpec, PolicyDoc, SourceSpec};
use crate::policy::{read_plain, Encoding, Loader, ParsedFile, PermissionPolicy, Policy, PolicyError};
use crate::seal::Keyring;

mod sync;

pub use sync::sync;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered, with an error.
    #[error("database: {0}")]
    Database(String),
    /// No answer: the connection failed, broke or timed out on the way.
    #[error("cannot reach the database: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Refused(#[from] PolicyError),
    #[error("{0}")]
    Invalid(String),
    #[error("timed out talking to the database")]
    Timeout,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx's messages name the server and the failing statement, never bound values.
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unreachable(e.to_string()),
            _ => Self::Database(e.to_string()),
        }
    }
}

impl StoreError {
    /// Whether the database (or the network to it) gave no answer at all, as opposed to
    /// an answer that is an error: the first is retried at once, the second with backoff.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Timeout)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Database(e.to_string())
    }
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub url: SecretString,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    pub tls_ca_file: Option<std::path::PathBuf>,
}

/// A handle on the policy tables.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// For connections of their own, outside the pool (the sync task's).
    options: PgConnectOptions,
    keyring: Arc<Keyring>,
    connect_timeout: Duration,
    statement_timeout: Duration,
}

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
        })
    }

    /// Bounds a database call so that nothing waits on a dead connection for long.
    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.statement_timeout + Duration::from_secs(2), work)
            .await
            .map_err(|_| StoreError::Timeout)?
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
    async fn compile(&self, doc: PolicyDoc) -> Result<Policy, StoreError> {
        let keyring = self.keyring.clone();
        Ok(
            tokio::task::spawn_blocking(move || Loader::new(&keyring).load_doc("postgres", doc))
                .await
                .map_err(|e| StoreError::Invalid(format!("policy compilation panicked: {e}")))??,
        )
    }

    /// Runs `change` in a transaction, then compiles the resulting policy in the same
    /// transaction and commits only if it loads: a change that would break the policy is
    /// refused with the messages the TOML store gives.
    async fn change<T, F>(&self, change: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(
            &'t mut Transaction<'static, Postgres>,
        ) -> futures_util::future::BoxFuture<'t, Result<T, StoreError>>,
    {
        self.bounded(async {
            let mut tx = self.pool.begin().await?;
            // One writer at a time, so that two valid changes cannot make an invalid policy.
            sqlx::query("LOCK TABLE envoi_secrets, envoi_grants, envoi_grant_items IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
            let result = change(&mut tx).await?;
            let doc = read_doc(&mut tx).await?;
            Loader::new(&self.keyring).load_doc("postgres", doc)?;
            tx.commit().await?;
            Ok(result)
        })
        .await
    }

    /// Seals `plaintext` for `name` and stores it; returns the new version.
    pub async fn put_secret(&self, name: &str, plaintext: &[u8], actor: &str) -> Result<i32, StoreError> {
        let sealed = self
            .keyring
            .seal(name, plaintext)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let key_id = Keyring::key_id(&sealed)
            .map_err(|e| StoreError::Invalid(e.to_string()))?
            .to_owned();
        let (name, actor) = (name.to_owned(), actor.to_owned());
        self.change(move |tx| {
            Box::pin(async move {
                let version: i32 = sqlx::query_scalar(
                    "INSERT INTO envoi_secrets (name, sealed, key_id, template, updated_by) VALUES ($1, $2, $3, NULL, $4)
                     ON CONFLICT (name) DO UPDATE SET sealed = $2, key_id = $3, template = NULL,
                         version = envoi_secrets.version + 1, updated_at = now(), updated_by = $4
                     RETURNING version",
                )
                .bind(&name)
                .bind(&sealed)
                .bind(&key_id)
                .bind(&actor)
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| constraint_message(e, &format!("secret `{name}`")))?;
                Ok(version)
            })
        })
        .await
    }

    /// Removes a secret; refused while a grant or template still names it, naming them.
    pub async fn remove_secret(&self, name: &str) -> Result<(), StoreError> {
        match self
            .remove("DELETE FROM envoi_secrets WHERE name = $1", "secret", name)
            .await
        {
            // The policy loaded before the removal, so what no longer loads is what used it.
            Err(StoreError::Refused(refused)) => match self.uses_of(name).await?.as_slice() {
                [] => Err(StoreError::Refused(refused)),
                uses => Err(StoreError::Invalid(format!(
                    "secret `{name}` is in use, so it was not removed:\n  - {}\nremove or change these first",
                    uses.join("\n  - ")
                ))),
            },
            other => other,
        }
    }

    /// What names the secret `name`: grant items, directly or through an inline template,
    /// and the templates of other secrets.
    async fn uses_of(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let reference = format!("${{secret.{name}}}");
        self.bounded(async {
            let items: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
                "SELECT grant_name, kind, target, template FROM envoi_grant_items
                 WHERE secret = $1 OR strpos(template, $2) > 0 ORDER BY grant_name, kind, target",
            )
            .bind(name)
            .bind(&reference)
            .fetch_all(&self.pool)
            .await?;
            let secrets: Vec<(String, String)> =
                sqlx::query_as("SELECT name, template FROM envoi_secrets WHERE strpos(template, $1) > 0 ORDER BY name")
                    .bind(&reference)
                    .fetch_all(&self.pool)
                    .await?;
            let mut uses = Vec::new();
            for (grant, kind, target, template) in items {
                match template {
                    None => uses.push(format!("grant `{grant}`: {kind} {target}")),
                    Some(t) if splices(&t, &reference) => {
                        uses.push(format!("grant `{grant}`: {kind} {target}, through its template"));
                    }
                    Some(_) => {}
                }
            }
            for (secret, template) in secrets {
                if splices(&template, &reference) {
                    uses.push(format!("secret `{secret}`: its template"));
                }
            }
            Ok(uses)
        })
        .await
    }

    /// Removes a grant and its items.
    pub async fn remove_grant(&self, name: &str) -> Result<(), StoreError> {
        self.remove("DELETE FROM envoi_grants WHERE name = $1", "grant", name)
            .await
    }

    async fn remove(&self, statement: &'static str, what: &'static str, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.change(move |tx| {
            Box::pin(async move {
                let gone = sqlx::query(statement).bind(&name).execute(&mut **tx).await?;
                if gone.rows_affected() == 0 {
                    return Err(StoreError::Invalid(format!("no {what} named `{name}`")));
                }
                Ok(())
            })
        })
        .await
    }

    /// Adds a grant (its name must be new).
    pub async fn add_grant(&self, grant: GrantSpec, actor: &str) -> Result<(), StoreError> {
        let name = grant
            .name
            .clone()
            .ok_or_else(|| StoreError::Invalid("a grant needs a name".into()))?;
        let items = self.item_rows(&name, &grant, None)?;
        let actor = actor.to_owned();
        self.change(move |tx| {
            Box::pin(async move {
                let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM envoi_grants WHERE name = $1)")
                    .bind(&name)
                    .fetch_one(&mut **tx)
                    .await?;
                if exists {
                    return Err(StoreError::Invalid(format!(
                        "a grant named `{name}` exists; remove it first"
                    )));
                }
                insert_grant(tx, &name, &grant, &items, &actor).await
            })
        })
        .await
    }

    /// Makes the tables hold exactly the policy of `files`, writing only what differs, so
    /// that importing the same policy twice changes nothing.
    pub async fn import(&self, files: Vec<ParsedFile>, actor: &str) -> Result<ImportReport, StoreError> {
        let desired = self.desired(files)?;
        let actor = actor.to_owned();
        let keyring = self.keyring.clone();
        self.change(move |tx| Box::pin(async move { apply_import(tx, &keyring, desired, &actor).await }))
            .await
    }

    /// The policy as TOML, values sealed.
    pub async fn export(&self) -> Result<String, StoreError> {
        let (_, doc) = self.read().await?;
        toml::to_string(&doc).map_err(|e| StoreError::Invalid(format!("cannot write TOML: {e}")))
    }

    /// Secret names, kinds, versions and dates; never values.
    pub async fn list_secrets(&self) -> Result<Vec<SecretInfo>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query_as::<_, SecretInfo>(
                "SELECT name, CASE WHEN sealed IS NULL THEN 'template' ELSE 'sealed' END AS kind, key_id, version,
                        to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS updated_at, updated_by
                 FROM envoi_secrets ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(rows)
        })
        .await
    }

    /// Grants with their selectors and what they give.
    pub async fn list_grants(&self) -> Result<Vec<GrantSpec>, StoreError> {
        let (_, doc) = self.read().await?;
        Ok(doc.grants.into_iter().map(Spanned::into_inner).collect())
    }

    /// Converts a grant's items to rows, sealing inline plaintext for its ENV key or FILE
    /// path. `base` resolves relative `file` values.
    fn item_rows(&self, grant: &str, spec: &GrantSpec, base: Option<&Path>) -> Result<Vec<ItemRow>, StoreError> {
        let mut rows = Vec::with_capacity(spec.env.len() + spec.files.len());
        for (key, entry) in &spec.env {
            let mut row = ItemRow::new(grant, "ENV", key);
            match entry {
                EnvSpec::Secret(name) => row.secret = Some(name.clone()),
                EnvSpec::Inline(source) => self.inline_source(&mut row, source, base)?,
            }
            rows.push(row);
        }
        for file in &spec.files {
            let mut row = ItemRow::new(grant, "FILE", &file.path);
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
            row.encoding = file.encoding.map(|e| match e {
                Encoding::Utf8 => "utf-8".to_owned(),
                Encoding::Base64 => "base64".to_owned(),
            });
            match (&file.mode, &file.permissions) {
                (Some(mode), _) => {
                    row.permissions_policy = Some("AlwaysSet".into());
                    row.mode = Some(normalise_mode(mode)?);
                }
                (None, Some(long)) => {
                    row.permissions_policy = Some(permission_name(long.policy).into());
                    row.mode = Some(normalise_mode(&long.mode)?);
                }
                (None, None) => {}
            }
            (row.owner_policy, row.owner_value) = owner_columns(file.owner.as_ref());
            (row.group_policy, row.group_value) = owner_columns(file.group.as_ref());
            rows.push(row);
        }
        Ok(rows)
    }

    fn inline_source(&self, row: &mut ItemRow, source: &SourceSpec, base: Option<&Path>) -> Result<(), StoreError> {
        if let Some(template) = &source.template {
            row.template = Some(template.clone());
        } else if let Some(sealed) = &source.sealed {
            // Stored under the newest key, like every value written.
            let plain = self
                .keyring
                .open(&row.target, sealed)
                .map_err(|e| StoreError::Invalid(format!("{} {}: sealed value: {e}", row.kind, row.target)))?;
            row.sealed = Some(
                self.keyring
                    .seal(&row.target, plain.expose())
                    .map_err(|e| StoreError::Invalid(e.to_string()))?,
            );
        } else {
            let plain = read_plain(source, base)
                .map_err(|e| StoreError::Invalid(format!("{} {}: {e}", row.kind, row.target)))?
                .ok_or_else(|| StoreError::Invalid(format!("{} {}: no value given", row.kind, row.target)))?;
            row.sealed = Some(
                self.keyring
                    .seal(&row.target, plain.expose())
                    .map_err(|e| StoreError::Invalid(e.to_string()))?,
            );
        }
        if let Some(sealed) = &row.sealed {
            row.key_id = Some(
                Keyring::key_id(sealed)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// What the tables should hold for the policy of `files`.
    fn desired(&self, files: Vec<ParsedFile>) -> Result<Desired, StoreError> {
        let mut desired = Desired::default();
        let mut taken: HashMap<String, usize> = HashMap::new();
        for file in files {
            for (name, spec) in file.doc.secrets {
                let spec = spec.into_inner();
                let value = if let Some(template) = spec.template {
                    DesiredSecret::Template(template)
                } else if let Some(sealed) = spec.sealed {
                    DesiredSecret::Sealed(sealed)
                } else {
                    let plain = read_plain(&spec, file.base.as_deref())
                        .map_err(|e| StoreError::Invalid(format!("secret `{name}`: {e}")))?
                        .ok_or_else(|| StoreError::Invalid(format!("secret `{name}`: no value given")))?;
                    DesiredSecret::Plain(plain)
                };
                if desired.secrets.insert(name.clone(), value).is_some() {
                    return Err(StoreError::Invalid(format!("secret `{name}` is defined twice")));
                }
            }
            for grant in file.doc.grants {
                let mut grant = grant.into_inner();
                let name = match &grant.name {
                    Some(name) => name.clone(),
                    None => {
                        // Unnamed grants are named after their selector, stable across imports.
                        let base = format!(
                            "{}/{}/{}",
                            grant.project.as_deref().unwrap_or("*"),
                            grant.kind.as_deref().unwrap_or("*"),
                            grant.id.as_deref().unwrap_or("*")
                        );
                        let n = taken.entry(base.clone()).or_insert(0);
                        *n += 1;
                        if *n == 1 {
                            base
                        } else {
                            format!("{base} #{n}")
                        }
                    }
                };
                grant.name = Some(name.clone());
                let items = self.item_rows(&name, &grant, file.base.as_deref())?;
                if desired.grants.insert(name.clone(), (grant, items)).is_some() {
                    return Err(StoreError::Invalid(format!("grant `{name}` is defined twice")));
                }
            }
        }
        Ok(desired)
    }
}

/// What `db import` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub secrets_written: usize,
    pub secrets_removed: usize,
    pub grants_written: usize,
    pub grants_removed: usize,
    pub unchanged: usize,
}

/// A row of `secret ls`.
#[derive(Debug, sqlx::FromRow)]
pub struct SecretInfo {
    pub name: String,
    pub kind: String,
    pub key_id: Option<String>,
    pub version: i32,
    pub updated_at: String,
    pub updated_by: String,
}

#[derive(Default)]
struct Desired {
    secrets: BTreeMap<String, DesiredSecret>,
    grants: BTreeMap<String, (GrantSpec, Vec<ItemRow>)>,
}

enum DesiredSecret {
    Plain(crate::policy::SecretBytes),
    Sealed(String),
    Template(String),
}

#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
struct ItemRow {
    grant_name: String,
    kind: String,
    target: String,
    secret: Option<String>,
    sealed: Option<String>,
    key_id: Option<String>,
    template: Option<String>,
    encoding: Option<String>,
    permissions_policy: Option<String>,
    mode: Option<String>,
    owner_policy: Option<String>,
    owner_value: Option<String>,
    group_policy: Option<String>,
    group_value: Option<String>,
}

impl ItemRow {
    fn new(grant: &str, kind: &str, target: &str) -> Self {
        Self {
            grant_name: grant.to_owned(),
            kind: kind.to_owned(),
            target: target.to_owned(),
            secret: None,
            sealed: None,
            key_id: None,
            template: None,
            encoding: None,
            permissions_policy: None,
            mode: None,
            owner_policy: None,
            owner_value: None,
            group_policy: None,
            group_value: None,
        }
    }

    /// The same item, sealed values compared by what they open to.
    fn same_as(&self, other: &Self, keyring: &Keyring) -> bool {
        let mut a = self.clone();
        let mut b = other.clone();
        let (sa, sb) = (a.sealed.take(), b.sealed.take());
        a.key_id = None;
        b.key_id = None;
        a == b
            && match (sa, sb) {
                (None, None) => true,
                (Some(x), Some(y)) => {
                    Keyring::key_id(&y).ok() == keyring.newest_id()
                        && (x == y || opens_same(keyring, &self.target, &x, &y))
                }
                _ => false,
            }
    }
}

fn opens_same(keyring: &Keyring, name: &str, a: &str, b: &str) -> bool {
    match (keyring.open(name, a), keyring.open(name, b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    name: String,
    sealed: Option<String>,
    template: Option<String>,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    name: String,
    project: String,
    #[sqlx(rename = "type")]
    kind: String,
    object_id: String,
}

/// The generation and the whole policy, read in one snapshot.
async fn read_on(conn: &mut PgConnection) -> Result<(i64, PolicyDoc), StoreError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
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

async fn read_rows(conn: &mut PgConnection) -> Result<(Vec<SecretRow>, Vec<GrantRow>, Vec<ItemRow>), StoreError> {
    let secrets = sqlx::query_as::<_, SecretRow>("SELECT name, sealed, template FROM envoi_secrets ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    let grants = sqlx::query_as::<_, GrantRow>("SELECT name, project, type, object_id FROM envoi_grants ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    let items = sqlx::query_as::<_, ItemRow>(
        "SELECT grant_name, kind, target, secret, sealed, key_id, template, encoding, permissions_policy, mode,
                owner_policy, owner_value, group_policy, group_value
         FROM envoi_grant_items ORDER BY grant_name, kind, target",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok((secrets, grants, items))
}

/// The tables as a policy document, the same model the TOML files parse into.
async fn read_doc(conn: &mut PgConnection) -> Result<PolicyDoc, StoreError> {
    let (secrets, grants, items) = read_rows(conn).await?;
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
            Spanned::new(0..0, grant_spec(row, items))
        })
        .collect();
    Ok(PolicyDoc { secrets, grants })
}

fn selector_field(value: String) -> Option<String> {
    (value != "*").then_some(value)
}

fn grant_spec(row: GrantRow, items: Vec<ItemRow>) -> GrantSpec {
    let mut spec = GrantSpec {
        name: Some(row.name),
        project: selector_field(row.project),
        kind: selector_field(row.kind),
        id: selector_field(row.object_id),
        env: Default::default(),
        files: Vec::new(),
    };
    for item in items {
        let inline = SourceSpec {
            sealed: item.sealed,
            template: item.template,
            ..SourceSpec::default()
        };
        if item.kind == "ENV" {
            let entry = match item.secret {
                Some(name) => EnvSpec::Secret(name),
                None => EnvSpec::Inline(Box::new(inline)),
            };
            spec.env.insert(item.target, entry);
            continue;
        }
        let permissions = item
            .permissions_policy
            .zip(item.mode)
            .map(|(policy, mode)| PermissionsSpec {
                policy: if policy == "KeepOrSet" {
                    PermissionPolicy::KeepOrSet
                } else {
                    PermissionPolicy::AlwaysSet
                },
                mode,
            });
        spec.files.push(FileSpec {
            path: item.target,
            secret: item.secret,
            value: None,
            env: None,
            file: None,
            sealed: inline.sealed,
            template: inline.template,
            encoding: item.encoding.map(|e| {
                if e == "base64" {
                    Encoding::Base64
                } else {
                    Encoding::Utf8
                }
            }),
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
    spec
}

fn permission_name(policy: PermissionPolicy) -> &'static str {
    match policy {
        PermissionPolicy::AlwaysSet => "AlwaysSet",
        PermissionPolicy::KeepOrSet => "KeepOrSet",
    }
}

fn normalise_mode(mode: &str) -> Result<String, StoreError> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| !digits.is_empty() && digits.len() <= 4 && *m <= 0o7777)
        .map(|m| format!("{m:04o}"))
        .ok_or_else(|| StoreError::Invalid(format!("mode \"{mode}\" is not an octal file mode such as \"0400\"")))
}

fn owner_columns(owner: Option<&OwnerSpec>) -> (Option<String>, Option<String>) {
    match owner {
        None => (None, None),
        Some(OwnerSpec::Short(value)) => (Some("AlwaysSetExplicit".into()), Some(value.clone())),
        Some(OwnerSpec::Long { policy, value }) => (Some(policy.clone()), value.clone()),
    }
}

/// Whether `template` splices `reference` (`${secret.NAME}`). A `${` right after a `$`
/// is never a reference: the template reader takes `$${` as a literal `${` wherever a run
/// of `$` ends in one.
fn splices(template: &str, reference: &str) -> bool {
    template
        .match_indices(reference)
        .any(|(at, _)| !template[..at].ends_with('$'))
}

/// Turns a constraint violation into a sentence; other errors pass through.
fn constraint_message(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.constraint().is_some() => StoreError::Invalid(format!(
            "{what}: refused by the database constraint `{}`",
            db.constraint().unwrap_or_default()
        )),
        _ => e.into(),
    }
}

async fn insert_grant(
    tx: &mut Transaction<'static, Postgres>,
    name: &str,
    grant: &GrantSpec,
    items: &[ItemRow],
    actor: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO envoi_grants (name, project, type, object_id, updated_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET project = $2, type = $3, object_id = $4,
             version = envoi_grants.version + 1, updated_at = now(), updated_by = $5",
    )
    .bind(name)
    .bind(grant.project.as_deref().unwrap_or("*"))
    .bind(grant.kind.as_deref().unwrap_or("*"))
    .bind(grant.id.as_deref().unwrap_or("*"))
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

async fn apply_import(
    tx: &mut Transaction<'static, Postgres>,
    keyring: &Keyring,
    desired: Desired,
    actor: &str,
) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport::default();
    let (secrets, grants, items) = read_rows(tx).await?;

    let existing: HashMap<String, SecretRow> = secrets.into_iter().map(|s| (s.name.clone(), s)).collect();
    for name in existing.keys().filter(|n| !desired.secrets.contains_key(*n)) {
        // Grants go first below only if they also go; the final compile refuses dangling names.
        sqlx::query("DELETE FROM envoi_secrets WHERE name = $1")
            .bind(name)
            .execute(&mut **tx)
            .await?;
        report.secrets_removed += 1;
    }
    for (name, want) in &desired.secrets {
        let current = existing.get(name);
        // A value sealed under an older key counts as changed: an import after adding a
        // new master key re-seals everything under it.
        let newest = |sealed: &str| Keyring::key_id(sealed).ok() == keyring.newest_id();
        let unchanged = match (want, current) {
            (DesiredSecret::Template(t), Some(row)) => row.template.as_deref() == Some(t.as_str()),
            (DesiredSecret::Sealed(s), Some(SecretRow { sealed: Some(have), .. })) => {
                newest(have) && (have == s || opens_same(keyring, name, have, s))
            }
            (DesiredSecret::Plain(plain), Some(SecretRow { sealed: Some(have), .. })) => {
                newest(have) && keyring.open(name, have).is_ok_and(|v| v == *plain)
            }
            _ => false,
        };
        if unchanged {
            report.unchanged += 1;
            continue;
        }
        let (sealed, template) = match want {
            DesiredSecret::Template(t) => (None, Some(t.clone())),
            DesiredSecret::Sealed(s) => {
                let plain = keyring
                    .open(name, s)
                    .map_err(|e| StoreError::Invalid(format!("secret `{name}`: {e}")))?;
                (
                    Some(
                        keyring
                            .seal(name, plain.expose())
                            .map_err(|e| StoreError::Invalid(e.to_string()))?,
                    ),
                    None,
                )
            }
            DesiredSecret::Plain(plain) => (
                Some(
                    keyring
                        .seal(name, plain.expose())
                        .map_err(|e| StoreError::Invalid(e.to_string()))?,
                ),
                None,
            ),
        };
        let key_id = match &sealed {
            Some(s) => Some(
                Keyring::key_id(s)
                    .map_err(|e| StoreError::Invalid(format!("secret `{name}`: {e}")))?
                    .to_owned(),
            ),
            None => None,
        };
        sqlx::query(
            "INSERT INTO envoi_secrets (name, sealed, key_id, template, updated_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET sealed = $2, key_id = $3, template = $4,
                 version = envoi_secrets.version + 1, updated_at = now(), updated_by = $5",
        )
        .bind(name)
        .bind(&sealed)
        .bind(&key_id)
        .bind(&template)
        .bind(actor)
        .execute(&mut **tx)
        .await
        .map_err(|e| constraint_message(e, &format!("secret `{name}`")))?;
        report.secrets_written += 1;
    }

    let mut current_items: HashMap<String, Vec<ItemRow>> = HashMap::new();
    for item in items {
        current_items.entry(item.grant_name.clone()).or_default().push(item);
    }
    for grant in &grants {
        if !desired.grants.contains_key(&grant.name) {
            sqlx::query("DELETE FROM envoi_grants WHERE name = $1")
                .bind(&grant.name)
                .execute(&mut **tx)
                .await?;
            report.grants_removed += 1;
        }
    }
    let existing: HashMap<&str, &GrantRow> = grants.iter().map(|g| (g.name.as_str(), g)).collect();
    for (name, (spec, items)) in &desired.grants {
        let same_selector = existing.get(name.as_str()).is_some_and(|row| {
            row.project == spec.project.as_deref().unwrap_or("*")
                && row.kind == spec.kind.as_deref().unwrap_or("*")
                && row.object_id == spec.id.as_deref().unwrap_or("*")
        });
        let mut want: Vec<&ItemRow> = items.iter().collect();
        want.sort_by(|a, b| (&a.kind, &a.target).cmp(&(&b.kind, &b.target)));
        let have = current_items.get(name).map(Vec::as_slice).unwrap_or_default();
        let same_items = want.len() == have.len() && want.iter().zip(have).all(|(w, h)| w.same_as(h, keyring));
        if same_selector && same_items {
            report.unchanged += 1;
            continue;
        }
        insert_grant(tx, name, spec, items, actor).await?;
        report.grants_written += 1;
    }
    Ok(report)
}

/// Who made a change, for the `updated_by` columns: `cli:<user>@<host>`.
pub fn actor(kind: &str) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        format!("{kind}:{user}")
    } else {
        format!("{kind}:{user}@{host}")
    }
}

/// Checks that a connection can be opened at all (for `envoi check`).
pub async fn ping(settings: &PgSettings) -> Result<(), StoreError> {
    let options: PgConnectOptions = settings
        .url
        .expose_secret()
        .parse()
        .map_err(|_| StoreError::Invalid("store.url is not a valid postgres:// URL".into()))?;
    let conn = tokio::time::timeout(settings.connect_timeout, PgConnection::connect_with(&options))
        .await
        .map_err(|_| StoreError::Timeout)??;
    conn.close().await?;
    Ok(())
}
