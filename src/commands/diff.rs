//! `envoi diff OLD NEW`: what a policy change changes, for a reviewer or a CI gate.
//! Exit 0 when nothing changed, 1 when something did, 2 on an error (as diff(1) does).

use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use super::explain::{describe, print_json, selector_text, target_text, TargetRef};
use super::{load_policy, CommandError};
use crate::cli::{DiffArgs, OutputFormat};
use crate::config::Settings;
use crate::policy::review::diff::{diff as compare, ChangedGrant, PolicyDiff};
use crate::policy::review::report::GrantRef;
use crate::policy::{Grant, Loader, Policy};

pub(super) fn diff(config: Option<&Path>, args: &DiffArgs) -> Result<(), CommandError> {
    super::init_quiet_logs();
    let (old, new) = match load_both(config, &args.paths) {
        Ok(both) => both,
        Err(failure) => return Err(failure.report(args.format)),
    };
    show(&old, &new, args.format)
}

/// An error of a command that reports as `diff` does: diff(1)'s status 2 (its 1 means
/// "changed", from [`show`]).
pub(super) fn failure(error: CommandError) -> CommandError {
    CommandError::WithStatus {
        status: 2,
        source: Box::new(error),
    }
}

/// Prints what changed from `old` to `new`; `Status(1)` when something did.
pub(super) fn show(old: &Policy, new: &Policy, format: OutputFormat) -> Result<(), CommandError> {
    let report = DiffReport::new(old, new, &compare(old, new));
    match format {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print_text(&report).map_err(|e| CommandError::Other(e.to_string()))?,
    }
    if report.changed {
        Err(CommandError::Status(1))
    } else {
        Ok(())
    }
}

/// Why there is nothing to compare: `diff --format json` prints it as
/// `{"error": {"policy": "OLD" | "NEW" | null, "problems": [text]}}`.
#[derive(Serialize)]
struct Failure {
    /// Which side failed to load, if one did.
    policy: Option<&'static str>,
    problems: Vec<String>,
    #[serde(skip)]
    error: Box<CommandError>,
}

impl Failure {
    fn new(policy: Option<&'static str>, place: String, error: CommandError) -> Self {
        let problems = match &error {
            CommandError::Policy(e) => e.problems.clone(),
            other => vec![other.to_string()],
        };
        let error = match policy {
            Some(side) => CommandError::Other(format!("{side} ({place}): {error}")),
            None => error,
        };
        Self {
            policy,
            problems,
            error: Box::new(error),
        }
    }

    /// Exit 2, with the problems printed as the format asks.
    fn report(self, format: OutputFormat) -> CommandError {
        if format == OutputFormat::Json {
            #[derive(Serialize)]
            struct Wrapped<'a> {
                error: &'a Failure,
            }
            if print_json(&Wrapped { error: &self }).is_ok() {
                return CommandError::Status(2);
            }
        }
        CommandError::WithStatus {
            status: 2,
            source: self.error,
        }
    }
}

fn load_both(config: Option<&Path>, paths: &[std::path::PathBuf]) -> Result<(Policy, Policy), Failure> {
    let plain = |e: CommandError| Failure::new(None, String::new(), e);
    let settings = Settings::load(config).map_err(|e| plain(e.into()))?;
    let keyring = settings.keyring().map_err(|e| plain(e.into()))?;
    let loader = Loader::new(&keyring);
    let load = |path: &Path, side: &'static str| {
        loader
            .load_path(path)
            .map_err(|e| Failure::new(Some(side), path.display().to_string(), e.into()))
    };
    match paths {
        [new] => {
            let old =
                load_policy(&settings).map_err(|e| Failure::new(Some("OLD"), "the configured store".into(), e))?;
            Ok((old, load(new, "NEW")?))
        }
        [old, new] => Ok((load(old, "OLD")?, load(new, "NEW")?)),
        _ => Err(plain(CommandError::Other("give OLD and NEW, or NEW alone".into()))),
    }
}

/// `diff --format json`.
#[derive(Serialize)]
struct DiffReport {
    changed: bool,
    old: Counts,
    new: Counts,
    added: Vec<GrantItems>,
    removed: Vec<GrantItems>,
    modified: Vec<Modified>,
    new_warnings: Vec<String>,
}

#[derive(Serialize)]
struct Counts {
    grants: usize,
    secrets: usize,
}

#[derive(Serialize)]
struct GrantItems {
    grant: GrantRef,
    items: Vec<TargetRef>,
}

#[derive(Serialize)]
struct Modified {
    old: GrantRef,
    new: GrantRef,
    selector_changed: bool,
    items: Vec<ModifiedItem>,
}

#[derive(Serialize)]
struct ModifiedItem {
    #[serde(flatten)]
    target: TargetRef,
    /// `added`, `removed`, `value` (another value or FILE attributes), `source` (the
    /// same value from elsewhere).
    change: &'static str,
    old_origin: Option<String>,
    new_origin: Option<String>,
}

fn counts(policy: &Policy) -> Counts {
    Counts {
        grants: IntoIterator::into_iter(policy.grants()).count(),
        secrets: policy.secret_count(),
    }
}

fn grant_items(grant: &Grant) -> GrantItems {
    GrantItems {
        grant: grant.into(),
        items: grant.items.iter().map(|i| i.target().into()).collect(),
    }
}

fn modified(change: &ChangedGrant<'_>) -> Modified {
    Modified {
        old: change.old.into(),
        new: change.new.into(),
        selector_changed: change.selector_changed,
        items: change
            .items
            .iter()
            .map(|item| ModifiedItem {
                target: item.target.into(),
                change: item.change.as_str(),
                old_origin: item.old_origin.map(str::to_owned),
                new_origin: item.new_origin.map(str::to_owned),
            })
            .collect(),
    }
}

impl DiffReport {
    fn new(old: &Policy, new: &Policy, diff: &PolicyDiff<'_>) -> Self {
        Self {
            changed: !diff.is_empty(),
            old: counts(old),
            new: counts(new),
            added: diff.added.iter().map(|g| grant_items(g)).collect(),
            removed: diff.removed.iter().map(|g| grant_items(g)).collect(),
            modified: diff.changed.iter().map(modified).collect(),
            new_warnings: diff.new_warnings.clone(),
        }
    }
}

fn print_text(report: &DiffReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if !report.changed {
        writeln!(out, "no change: {} grant(s) in both", report.new.grants)?;
    } else {
        writeln!(
            out,
            "{} grant(s) added, {} removed, {} changed",
            report.added.len(),
            report.removed.len(),
            report.modified.len()
        )?;
    }
    for (sign, grants) in [("+", &report.added), ("-", &report.removed)] {
        for grant in grants {
            writeln!(out, "{sign} {} {}", describe(&grant.grant), selector_text(&grant.grant))?;
            for target in &grant.items {
                writeln!(out, "    {sign} {}", target_text(target))?;
            }
        }
    }
    for change in &report.modified {
        writeln!(out, "~ {}", describe(&change.new))?;
        if change.selector_changed {
            writeln!(
                out,
                "    selector: {} -> {}",
                selector_text(&change.old),
                selector_text(&change.new)
            )?;
        }
        for item in &change.items {
            let target = target_text(&item.target);
            let origin = |o: &Option<String>| o.clone().unwrap_or_default();
            match item.change {
                "added" => writeln!(out, "    + {target} from {}", origin(&item.new_origin))?,
                "removed" => writeln!(out, "    - {target} (was from {})", origin(&item.old_origin))?,
                "value" => writeln!(
                    out,
                    "    ~ {target}: value changed (from {}, was {})",
                    origin(&item.new_origin),
                    origin(&item.old_origin)
                )?,
                _ => writeln!(
                    out,
                    "    ~ {target}: same value, now from {} (was {})",
                    origin(&item.new_origin),
                    origin(&item.old_origin)
                )?,
            }
        }
    }
    for warning in &report.new_warnings {
        writeln!(out, "new warning: {warning}")?;
    }
    Ok(())
}
