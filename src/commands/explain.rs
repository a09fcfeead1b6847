//! `envoi explain`: what a workload receives (with its near misses), or, with
//! `--secret`, every grant that gives a secret. Text for people, `--format json` for
//! scripts (the shapes are in the README).

use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use super::{load_policy, CommandError};
use crate::auth::Workload;
use crate::cli::{ExplainArgs, OutputFormat};
use crate::config::Settings;
use crate::policy::review::report::GrantRef;
use crate::policy::Target;

pub(super) fn explain(config: Option<&Path>, args: &ExplainArgs) -> Result<(), CommandError> {
    super::init_quiet_logs();
    let settings = Settings::load(config)?;
    if let Some(name) = &args.secret {
        return super::reverse::explain_secret(&settings, name, args.format);
    }
    let workload = workload(args)?;
    let policy = load_policy(&settings)?;
    let report = WorkloadReport::new(&policy, &workload, args.show_values);
    match args.format {
        OutputFormat::Json => print_json(&report),
        OutputFormat::Text => print_text(&report),
    }
}

fn workload(args: &ExplainArgs) -> Result<Workload, CommandError> {
    let given = (args.project.as_deref(), args.kind.as_deref(), args.id.as_deref());
    let (Some(project), Some(kind), Some(id)) = given else {
        return Err(CommandError::Other(
            "give --project, --type and --id, or --secret".into(),
        ));
    };
    Workload::new(project, kind, id).map_err(|_| {
        CommandError::Other("--project, --type and --id must be non-empty names without control characters".into())
    })
}

/// `explain --format json` for a workload.
#[derive(Serialize)]
struct WorkloadReport {
    workload: WorkloadRef,
    items: Vec<ItemReport>,
    near_misses: Vec<NearMissReport>,
}

#[derive(Serialize)]
pub(super) struct WorkloadRef {
    project: String,
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Serialize)]
struct ItemReport {
    #[serde(flatten)]
    target: TargetRef,
    origin: String,
    grant: GrantRef,
    overrides: Vec<GrantRef>,
    /// Only with `--show-values`: the text, or `base64:…` for bytes that are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip)]
    binary: bool,
}

/// `{"type":"ENV","key":K}` or `{"type":"FILE","path":P}`, as the protocol names items.
#[derive(Serialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(tag = "type")]
pub(crate) enum TargetRef {
    #[serde(rename = "ENV")]
    Env { key: String },
    #[serde(rename = "FILE")]
    File { path: String },
}

impl From<&Target> for TargetRef {
    fn from(target: &Target) -> Self {
        match target {
            Target::Env(key) => Self::Env { key: key.to_string() },
            Target::File(path) => Self::File { path: path.to_string() },
        }
    }
}

#[derive(Serialize)]
struct NearMissReport {
    grant: GrantRef,
    field: &'static str,
    selector: String,
    workload: String,
}

impl WorkloadReport {
    fn new(policy: &crate::policy::Policy, workload: &Workload, show_values: bool) -> Self {
        let items = policy
            .explain(workload)
            .into_iter()
            .map(|entry| ItemReport {
                target: entry.item.target().into(),
                origin: entry.item.origin().to_string(),
                grant: entry.grant.into(),
                overrides: entry.overridden.iter().map(|g| (*g).into()).collect(),
                value: show_values.then(|| shown_value(entry.item, workload).0),
                binary: show_values && shown_value(entry.item, workload).1,
            })
            .collect();
        let near_misses = policy
            .near_misses(workload)
            .into_iter()
            .map(|miss| NearMissReport {
                grant: miss.grant.into(),
                field: miss.field,
                selector: miss.wanted,
                workload: miss.actual,
            })
            .collect();
        Self {
            workload: WorkloadRef {
                project: workload.project().to_owned(),
                kind: workload.kind().to_owned(),
                id: workload.id().to_owned(),
            },
            items,
            near_misses,
        }
    }
}

/// The value, only ever for `--show-values`.
fn shown_value(item: &crate::policy::Item, workload: &Workload) -> (String, bool) {
    use base64::Engine as _;
    let rendered = item.value(workload);
    match std::str::from_utf8(rendered.expose()) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (
            format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(rendered.expose())
            ),
            true,
        ),
    }
}

pub(super) fn describe(grant: &GrantRef) -> String {
    match &grant.name {
        Some(name) => format!("grant `{name}` ({})", grant.location),
        None => format!("grant at {}", grant.location),
    }
}

pub(super) fn target_text(target: &TargetRef) -> String {
    match target {
        TargetRef::Env { key } => format!("ENV {key}"),
        TargetRef::File { path } => format!("FILE {path}"),
    }
}

fn print_text(report: &WorkloadReport) -> Result<(), CommandError> {
    let WorkloadRef { project, kind, id } = &report.workload;
    let mut out = std::io::stdout().lock();
    let mut write = || -> std::io::Result<()> {
        writeln!(out, "{project}/{kind}/{id} receives {} item(s)", report.items.len())?;
        for item in &report.items {
            let value = match &item.value {
                Some(value) if item.binary => value.clone(),
                Some(value) => format!("{value:?}"),
                None => "********".to_owned(),
            };
            writeln!(out, "{} = {value}", target_text(&item.target))?;
            writeln!(out, "    from {} via {}", item.origin, describe(&item.grant))?;
            for other in &item.overrides {
                writeln!(out, "    overrides {}", describe(other))?;
            }
        }
        if !report.near_misses.is_empty() {
            writeln!(
                out,
                "near misses: {} grant(s) failed on one field only",
                report.near_misses.len()
            )?;
            for miss in report.near_misses.iter().take(NEAR_MISSES_SHOWN) {
                writeln!(
                    out,
                    "- {} [{}]: {} is `{}`, the workload's is `{}`",
                    describe(&miss.grant),
                    selector_text(&miss.grant),
                    miss.field,
                    miss.selector,
                    miss.workload
                )?;
            }
            if let Some(more) = report
                .near_misses
                .len()
                .checked_sub(NEAR_MISSES_SHOWN)
                .filter(|n| *n > 0)
            {
                writeln!(out, "and {more} more near miss(es) (--format json lists them all)")?;
            }
        }
        Ok(())
    };
    write().map_err(|e| CommandError::Other(e.to_string()))
}

/// Near misses listed in text: a fleet's per-workload grants can make thousands, one
/// per sibling workload; `--format json` lists them all.
const NEAR_MISSES_SHOWN: usize = 20;

pub(super) fn selector_text(grant: &GrantRef) -> String {
    let s = &grant.selector;
    format!("project={} type={} id={}", s.project, s.kind, s.id)
}

pub(super) fn print_json(report: &impl Serialize) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, report).map_err(|e| CommandError::Other(e.to_string()))?;
    writeln!(out).map_err(|e| CommandError::Other(e.to_string()))
}
