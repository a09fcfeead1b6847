//! One secret or grant at a time: `secret put/rm/ls`, `grant add/rm/ls`, `db export`.

use toml::Spanned;

use super::pool::Check;
use super::rows::{insert_grant, upsert_secret, Sealed};
use super::scope::Scope;
use super::{PgStore, StoreError};
use crate::policy::model::GrantSpec;

impl PgStore {
    /// Seals `plaintext` for `name` and stores it; returns the new version.
    pub async fn put_secret(&self, name: &str, plaintext: &[u8], actor: &str) -> Result<i32, StoreError> {
        let sealed = Sealed::new(&self.keyring, name, plaintext)?;
        let check = Check::Scope(Scope::secret(name));
        let (name, actor) = (name.to_owned(), actor.to_owned());
        self.change(&actor.clone(), check, move |tx| {
            Box::pin(async move { upsert_secret(tx, &name, Some(&sealed), None, &actor).await })
        })
        .await
    }

    /// Removes a secret; refused while a grant or template still names it, naming them.
    pub async fn remove_secret(&self, name: &str, actor: &str) -> Result<(), StoreError> {
        match self
            .remove(
                "DELETE FROM envoi_secrets WHERE name = $1",
                "secret",
                name,
                actor,
                Check::Scope(Scope::secret(name)),
            )
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
    pub async fn remove_grant(&self, name: &str, actor: &str) -> Result<(), StoreError> {
        // Nothing can depend on a grant: no check needed.
        self.remove(
            "DELETE FROM envoi_grants WHERE name = $1",
            "grant",
            name,
            actor,
            Check::Nothing,
        )
        .await
    }

    async fn remove(
        &self,
        statement: &'static str,
        what: &'static str,
        name: &str,
        actor: &str,
        check: Check,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.change(actor, check, move |tx| {
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
        self.write_grant(grant, actor, false).await.map(|_| ())
    }

    /// Creates or replaces a grant in one change; whether one was replaced.
    pub async fn put_grant(&self, grant: GrantSpec, actor: &str) -> Result<bool, StoreError> {
        self.write_grant(grant, actor, true).await
    }

    async fn write_grant(&self, grant: GrantSpec, actor: &str, replace: bool) -> Result<bool, StoreError> {
        let name = grant
            .name
            .clone()
            .ok_or_else(|| StoreError::Invalid("a grant needs a name".into()))?;
        let items = self.item_rows(&name, &grant, None)?;
        let actor = actor.to_owned();
        self.change(&actor.clone(), Check::Scope(Scope::grant(&name)), move |tx| {
            Box::pin(async move {
                let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM envoi_grants WHERE name = $1)")
                    .bind(&name)
                    .fetch_one(&mut **tx)
                    .await?;
                if exists && !replace {
                    return Err(StoreError::Invalid(format!(
                        "a grant named `{name}` exists; `grant put` replaces it"
                    )));
                }
                insert_grant(tx, &name, &grant, &items, &actor).await?;
                Ok(exists)
            })
        })
        .await
    }

    /// The policy as TOML: literals as literals, every other value sealed.
    pub async fn export(&self) -> Result<String, StoreError> {
        let doc = self.export_doc().await?;
        toml::to_string(&doc).map_err(|e| StoreError::Invalid(format!("cannot write TOML: {e}")))
    }

    /// The policy as `db export` writes it (literals as literals), as a document.
    pub async fn export_doc(&self) -> Result<crate::policy::model::PolicyDoc, StoreError> {
        self.bounded(async {
            let mut conn = self.pool.acquire().await?;
            super::rows::read_export(&mut conn, &self.keyring).await
        })
        .await
    }

    /// The policy as `db import --dry-run` compares it with files: as exported, and with
    /// the names that import gives unnamed grants (after their selector) taken off again,
    /// so that such grants are matched by selector, as `envoi diff` matches unnamed ones.
    pub async fn import_baseline(&self) -> Result<crate::policy::model::PolicyDoc, StoreError> {
        let mut doc = self.export_doc().await?;
        for grant in &mut doc.grants {
            let grant = grant.get_mut();
            let base = super::rows::selector_columns(grant).join("/");
            let generated = grant.name.as_deref().is_some_and(|name| {
                name == base
                    || name
                        .strip_prefix(&base)
                        .and_then(|rest| rest.strip_prefix(" #"))
                        .is_some_and(|n| n.parse::<usize>().is_ok())
            });
            if generated {
                grant.name = None;
            }
        }
        Ok(doc)
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

/// Whether `template` splices `reference` (`${secret.NAME}`). A `${` right after a `$`
/// is never a reference: the template reader takes `$${` as a literal `${` wherever a run
/// of `$` ends in one.
fn splices(template: &str, reference: &str) -> bool {
    template
        .match_indices(reference)
        .any(|(at, _)| !template[..at].ends_with('$'))
}
