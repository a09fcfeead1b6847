//! `envoi explain --secret NAME`: every grant that gives secret NAME, directly or through
//! templates, with the key or path, where the grant is written, and what overrides it.

use std::io::Write as _;

use serde::Serialize;

use super::explain::{describe, print_json, selector_text, target_text, TargetRef};
use super::{load_policy, CommandError};
use crate::cli::OutputFormat;
use crate::config::{Settings, StoreKind};
use crate::policy::review::report::GrantRef;
use crate::policy::review::reverse::References;

/// `explain --secret NAME --format json`.
#[derive(Serialize)]
struct SecretReport {
    secret: String,
    /// Whether the policy defines the secret: `false` for a typo, say.
    defined: bool,
    given_by: Vec<GivenBy>,
}

#[derive(Serialize)]
struct GivenBy {
    grant: GrantRef,
    #[serde(flatten)]
    target: TargetRef,
    /// The secrets from the one the item names down to NAME; "inline template" first
    /// when the grant's own template splices it.
    via: Vec<String>,
    overridden_by: Vec<Overrider>,
}

#[derive(Serialize)]
struct Overrider {
    grant: GrantRef,
    /// Whether the overriding grant gives another value (or the same one again).
    other_value: bool,
}

/// The documents the policy was compiled from: template references are not kept in it.
fn references(settings: &Settings) -> Result<References, CommandError> {
    Ok(match settings.store.kind {
        StoreKind::Toml => References::from_files(&crate::policy::parse_path(&settings.store.path)?),
        StoreKind::Postgres => {
            let store = super::pg::store(settings)?;
            let (_, doc) = super::pg::block_on(async move { Ok(store.read().await?) })?;
            let mut refs = References::default();
            refs.add_doc("postgres", &doc);
            refs
        }
    })
}

pub(super) fn explain_secret(settings: &Settings, name: &str, format: OutputFormat) -> Result<(), CommandError> {
    let policy = load_policy(settings)?;
    let refs = references(settings)?;
    let given_by = policy
        .givers(name, &refs)
        .into_iter()
        .map(|giving| GivenBy {
            grant: giving.grant.into(),
            target: giving.item.target().into(),
            via: giving.via,
            overridden_by: giving
                .overridden_by
                .into_iter()
                .map(|(grant, other_value)| Overrider {
                    grant: grant.into(),
                    other_value,
                })
                .collect(),
        })
        .collect();
    let report = SecretReport {
        secret: name.to_owned(),
        defined: refs.defines(name),
        given_by,
    };
    match format {
        OutputFormat::Json => print_json(&report),
        OutputFormat::Text => print_text(&report).map_err(|e| CommandError::Other(e.to_string())),
    }
}

fn print_text(report: &SecretReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let undefined = if report.defined {
        ""
    } else {
        " (no secret of that name is defined)"
    };
    writeln!(
        out,
        "secret `{}` is given by {} item(s){undefined}",
        report.secret,
        report.given_by.len()
    )?;
    for given in &report.given_by {
        let grant = &given.grant;
        writeln!(out, "{} from {}", target_text(&given.target), describe(grant))?;
        writeln!(out, "    to {}", selector_text(grant))?;
        if given.via.len() > 1 {
            let chain: Vec<String> = given.via.iter().map(|s| format!("`{s}`")).collect();
            writeln!(out, "    through {}", chain.join(" -> "))?;
        }
        for other in given.overridden_by.iter().take(SHOWN) {
            let what = if other.other_value {
                "another value"
            } else {
                "the same value"
            };
            writeln!(
                out,
                "    overridden with {what} by {} for {}",
                describe(&other.grant),
                selector_text(&other.grant)
            )?;
        }
        if given.overridden_by.len() > SHOWN {
            let more = given.overridden_by.len() - SHOWN;
            writeln!(
                out,
                "    and {more} more overriding grant(s) (--format json lists them all)"
            )?;
        }
    }
    Ok(())
}

/// Overriding grants listed per item in text; `--format json` lists them all.
const SHOWN: usize = 10;
