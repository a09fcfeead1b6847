//! `secret ls --format json` and `grant ls --format json`: the Postgres store's secrets
//! and grants as documented in the README. Names, selectors and sources, never a value.

use serde::Serialize;

use super::CommandError;
use crate::policy::model::{EnvSpec, GrantSpec};
use crate::policy::review::report::SelectorRef;
use crate::store::postgres::{self, SecretInfo};

#[derive(Serialize)]
struct SecretEntry<'a> {
    name: &'a str,
    /// `sealed` or `template`.
    kind: &'a str,
    key_id: Option<&'a str>,
    version: i32,
    updated_at: &'a str,
    updated_by: &'a str,
}

#[derive(Serialize)]
struct GrantEntry<'a> {
    name: Option<&'a str>,
    selector: SelectorRef,
    items: Vec<GrantItem<'a>>,
}

#[derive(Serialize)]
struct GrantItem<'a> {
    #[serde(flatten)]
    target: super::explain::TargetRef,
    /// The named secret the item gives; `null` for an inline value.
    secret: Option<&'a str>,
}

pub(super) fn print_secrets(secrets: &[SecretInfo]) -> Result<(), CommandError> {
    let entries: Vec<SecretEntry<'_>> = secrets
        .iter()
        .map(|s| SecretEntry {
            name: &s.name,
            kind: &s.kind,
            key_id: s.key_id.as_deref(),
            version: s.version,
            updated_at: &s.updated_at,
            updated_by: &s.updated_by,
        })
        .collect();
    super::explain::print_json(&entries)
}

pub(super) fn print_grants(grants: &[GrantSpec]) -> Result<(), CommandError> {
    use super::explain::TargetRef;
    let entries: Vec<GrantEntry<'_>> = grants
        .iter()
        .map(|grant| {
            let [project, kind, id] = postgres::selector_columns(grant).map(str::to_owned);
            let mut items: Vec<GrantItem<'_>> = (&grant.env)
                .into_iter()
                .map(|(key, entry)| GrantItem {
                    target: TargetRef::Env { key: key.clone() },
                    secret: match entry {
                        EnvSpec::Secret(secret) => Some(secret.as_str()),
                        EnvSpec::Inline(_) => None,
                    },
                })
                .collect();
            items.extend(grant.files.iter().map(|file| GrantItem {
                target: TargetRef::File {
                    path: file.path.clone(),
                },
                secret: file.secret.as_deref(),
            }));
            GrantEntry {
                name: grant.name.as_deref(),
                selector: SelectorRef { project, kind, id },
                items,
            }
        })
        .collect();
    super::explain::print_json(&entries)
}
