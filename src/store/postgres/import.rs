//! `db import`: the tables made to hold exactly the policy of a set of files, writing
//! only what differs, so that importing the same policy twice changes nothing.

use std::collections::{BTreeMap, HashMap};

use sqlx::{Postgres, Transaction};

use super::bulk::{self, GrantWrite, SecretWrite};
use super::rows::{read_rows, selector_columns, GrantRow, ItemRow, Sealed, SecretRow};
use super::{PgStore, StoreError};
use crate::policy::{one_source, read_plain, ParsedFile};
use crate::seal::Keyring;

impl PgStore {
    /// Makes the tables hold exactly the policy of `files`, writing only what differs, so
    /// that importing the same policy twice changes nothing.
    pub async fn import(&self, files: Vec<ParsedFile>, actor: &str) -> Result<ImportReport, StoreError> {
        let desired = self.desired(files)?;
        let actor = actor.to_owned();
        let keyring = self.keyring.clone();
        let report = self
            .bulk_change(&actor.clone(), ImportReport::wrote_anything, move |tx| {
                Box::pin(async move { apply_import(tx, &keyring, desired, &actor).await })
            })
            .await?;
        if report.rows_written() >= ANALYZE_AFTER {
            // Fresh statistics: until autovacuum gets to a table that grew by 100,000 rows,
            // the planner takes it for nearly empty and the next writes' index lookups
            // for full scans (30 ms each, not 0.1, at 100k; bench/README.md).
            self.bounded(async {
                sqlx::query("ANALYZE envoi_secrets, envoi_grants, envoi_grant_items, envoi_change_items")
                    .execute(&self.pool)
                    .await?;
                Ok(())
            })
            .await?;
        }
        Ok(report)
    }

    /// What the tables should hold for the policy of `files`.
    fn desired(&self, files: Vec<ParsedFile>) -> Result<Desired, StoreError> {
        let mut desired = Desired::default();
        let mut taken: HashMap<String, usize> = HashMap::new();
        for file in files {
            for (name, spec) in file.doc.secrets {
                let spec = spec.into_inner();
                one_source(&spec).map_err(|e| StoreError::Invalid(format!("secret `{name}`: {e}")))?;
                let literal = spec.value.is_some();
                let value = if let Some(template) = spec.template {
                    DesiredSecret::Template(template)
                } else if let Some(sealed) = spec.sealed {
                    DesiredSecret::Sealed(sealed)
                } else {
                    let plain = read_plain(&spec, file.base.as_deref())
                        .map_err(|e| StoreError::Invalid(format!("secret `{name}`: {e}")))?
                        .ok_or_else(|| StoreError::Invalid(format!("secret `{name}`: no value given")))?;
                    DesiredSecret::Plain(plain, literal)
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
                        let base = selector_columns(&grant).join("/");
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
                // The selector is all that is kept of the spec: its items are the rows.
                let selector = selector_columns(&grant).map(str::to_owned);
                if desired.grants.insert(name.clone(), (selector, items)).is_some() {
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

/// An import that wrote this many secrets and grants refreshes the tables' statistics.
const ANALYZE_AFTER: usize = 1000;

impl ImportReport {
    fn rows_written(&self) -> usize {
        self.secrets_written + self.secrets_removed + self.grants_written + self.grants_removed
    }

    fn wrote_anything(&self) -> bool {
        self.rows_written() > 0
    }
}

#[derive(Default)]
struct Desired {
    secrets: BTreeMap<String, DesiredSecret>,
    grants: BTreeMap<String, ([String; 3], Vec<ItemRow>)>,
}

enum DesiredSecret {
    /// The plaintext, and whether it is a `value` literal.
    Plain(crate::policy::SecretBytes, bool),
    Sealed(String),
    Template(String),
}

impl ItemRow {
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

/// Reads the tables once, compares them with `desired` in memory, and writes only the
/// differences, a few set-based statements per table.
async fn apply_import(
    tx: &mut Transaction<'static, Postgres>,
    keyring: &Keyring,
    desired: Desired,
    actor: &str,
) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport::default();
    let (secrets, grants, items) = read_rows(tx).await?;

    let existing: HashMap<&str, &SecretRow> = secrets.iter().map(|s| (s.name.as_str(), s)).collect();
    // Grants go first below only if they also go; the final compile refuses dangling names.
    let removed_secrets: Vec<&str> = existing
        .keys()
        .copied()
        .filter(|n| !desired.secrets.contains_key(*n))
        .collect();
    report.secrets_removed = removed_secrets.len();
    let mut secret_writes = Vec::new();
    for (name, want) in &desired.secrets {
        let current = existing.get(name.as_str()).copied();
        // A value sealed under an older key counts as changed: an import after adding a
        // new master key re-seals everything under it.
        let newest = |sealed: &str| Keyring::key_id(sealed).ok() == keyring.newest_id();
        let unchanged = match (want, current) {
            (DesiredSecret::Template(t), Some(row)) => row.template.as_deref() == Some(t.as_str()),
            // A literal that became a sealed value is rewritten: it is no literal now.
            (DesiredSecret::Sealed(s), Some(row @ SecretRow { sealed: Some(have), .. })) => {
                !row.literal && newest(have) && (have == s || opens_same(keyring, name, have, s))
            }
            (DesiredSecret::Plain(plain, literal), Some(row @ SecretRow { sealed: Some(have), .. })) => {
                row.literal == *literal && newest(have) && keyring.open(name, have).is_ok_and(|v| v == *plain)
            }
            _ => false,
        };
        if unchanged {
            report.unchanged += 1;
            continue;
        }
        let (sealed, template) = match want {
            DesiredSecret::Template(template) => (None, Some(template.as_str())),
            DesiredSecret::Sealed(s) => {
                let plain = keyring
                    .open(name, s)
                    .map_err(|e| StoreError::Invalid(format!("secret `{name}`: {e}")))?;
                (Some(Sealed::new(keyring, name, plain.expose())?), None)
            }
            DesiredSecret::Plain(plain, _) => (Some(Sealed::new(keyring, name, plain.expose())?), None),
        };
        let literal = matches!(want, DesiredSecret::Plain(_, true));
        secret_writes.push(SecretWrite {
            name,
            sealed,
            template,
            literal,
        });
    }
    report.secrets_written = secret_writes.len();

    let mut current_items: HashMap<&str, Vec<&ItemRow>> = HashMap::new();
    for item in &items {
        current_items.entry(item.grant_name.as_str()).or_default().push(item);
    }
    let removed_grants: Vec<&str> = grants
        .iter()
        .map(|g| g.name.as_str())
        .filter(|n| !desired.grants.contains_key(*n))
        .collect();
    report.grants_removed = removed_grants.len();
    let existing: HashMap<&str, &GrantRow> = grants.iter().map(|g| (g.name.as_str(), g)).collect();
    let mut grant_writes = Vec::new();
    for (name, (selector, items)) in &desired.grants {
        let same_selector = existing
            .get(name.as_str())
            .is_some_and(|row| [&row.project, &row.kind, &row.object_id] == [&selector[0], &selector[1], &selector[2]]);
        let mut want: Vec<&ItemRow> = items.iter().collect();
        want.sort_by(|a, b| (&a.kind, &a.target).cmp(&(&b.kind, &b.target)));
        // Both sides in Rust's order: the rows come sorted by the database's collation.
        let mut have: Vec<&ItemRow> = current_items.get(name.as_str()).cloned().unwrap_or_default();
        have.sort_by(|a, b| (&a.kind, &a.target).cmp(&(&b.kind, &b.target)));
        let same_items = want.len() == have.len() && want.iter().zip(have).all(|(w, h)| w.same_as(h, keyring));
        if same_selector && same_items {
            report.unchanged += 1;
            continue;
        }
        grant_writes.push(GrantWrite { name, selector, items });
    }
    report.grants_written = grant_writes.len();

    bulk::delete_secrets(tx, &removed_secrets).await?;
    bulk::upsert_secrets(tx, &secret_writes, actor).await?;
    bulk::delete_grants(tx, &removed_grants).await?;
    bulk::write_grants(tx, &grant_writes, actor).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::store::postgres::PgSettings;

    /// A store that never connects: `desired` needs none.
    fn offline_store() -> PgStore {
        let settings = PgSettings {
            url: "postgres://nobody@127.0.0.1:1/none".to_owned().into(),
            pool_size: 1,
            connect_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(1),
            import_timeout: Duration::from_secs(1),
            retention: crate::store::postgres::Retention::default(),
            tls_ca_file: None,
        };
        PgStore::new(
            &settings,
            Arc::new(Keyring::new(vec![crate::seal::MasterKey::generate()])),
        )
        .unwrap()
    }

    fn parsed(text: &str) -> Vec<ParsedFile> {
        vec![ParsedFile {
            name: "import.toml".into(),
            base: None,
            doc: toml::from_str(text).unwrap(),
        }]
    }

    /// The TOML load refuses a value with two sources; an import refuses it too, rather
    /// than keep one of them.
    #[tokio::test]
    async fn an_import_refuses_a_value_with_two_sources_as_the_toml_load_does() {
        let store = offline_store();
        for (case, text, names) in [
            (
                "a secret",
                "[secrets.s]\nvalue = \"v\"\ntemplate = \"t\"\n",
                "secret `s`",
            ),
            (
                "an inline ENV value",
                "[[grants]]\nenv = { K = { value = \"v\", env = \"HOME\" } }\n",
                "ENV K",
            ),
        ] {
            let load = crate::policy::load_str("import.toml", text, None).expect_err(case);
            assert!(load.to_string().contains("(2 given)"), "{case}: {load}");
            let refused = match store.desired(parsed(text)) {
                Ok(_) => panic!("{case}: imported with two sources"),
                Err(e) => e.to_string(),
            };
            assert!(
                refused.contains(names) && refused.contains("give exactly one of"),
                "{case}: {refused}"
            );
            assert!(refused.contains("(2 given)"), "{case}: {refused}");
        }
    }
}
