//! `envoi check`: the configuration and the policy loaded as `serve` would, every
//! problem named, and the policy's warnings with its lint (`--strict` refuses them).

use std::path::Path;

use serde::Serialize;

use super::{init_quiet_logs, source, CommandError};
use crate::cli::{CheckArgs, OutputFormat};
use crate::config::Settings;

/// `check --format json`.
#[derive(Serialize, Default)]
struct CheckReport {
    ok: bool,
    /// Where the policy was read: a path, or `postgres`.
    store: Option<String>,
    grants: Option<usize>,
    secrets: Option<usize>,
    signing_keys: Option<usize>,
    errors: Vec<String>,
    warnings: Vec<String>,
}

pub(super) fn check(config: Option<&Path>, args: &CheckArgs) -> Result<(), CommandError> {
    init_quiet_logs();
    let report = match Settings::load(config) {
        Ok(settings) => {
            // About the deployment, not the policy: told, never counted by --strict.
            for weak in settings.weak_settings() {
                eprintln!("warning: weak setting: {weak}");
            }
            assess(&settings, args.strict)
        }
        Err(e) => CheckReport {
            errors: vec![e.to_string()],
            ..CheckReport::default()
        },
    };
    match args.format {
        OutputFormat::Json => {
            super::explain::print_json(&report)?;
            if report.ok {
                Ok(())
            } else {
                Err(CommandError::Status(1))
            }
        }
        OutputFormat::Text => {
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            if !report.ok {
                return Err(CommandError::Other(report.errors.join("\nerror: ")));
            }
            println!(
                "ok: {} grants and {} secrets in {}; {} signing key(s)",
                report.grants.unwrap_or_default(),
                report.secrets.unwrap_or_default(),
                report.store.as_deref().unwrap_or_default(),
                report.signing_keys.unwrap_or_default()
            );
            Ok(())
        }
    }
}

fn assess(settings: &Settings, strict: bool) -> CheckReport {
    // Every problem at once, and everything that `serve` would refuse (the pieces it
    // builds from the settings before it listens): a missing key, a bad filter, address
    // or certificate, and a broken policy are all named.
    let mut report = CheckReport::default();
    let keys = settings
        .signing_keys()
        .map_err(|e| report.errors.push(e.to_string()))
        .ok();
    let pieces = [
        settings.log_filter().map(drop),
        settings.check_listeners(),
        crate::startup::Edges::from_settings(&settings.server).map(drop),
        crate::http::limit::FailureLimiter::from_settings(&settings.server).map(drop),
    ];
    report
        .errors
        .extend(pieces.into_iter().filter_map(Result::err).map(|e| e.to_string()));
    let loaded = source(settings).and_then(|source| {
        let place = source.describe();
        Ok((source.load_now()?, place))
    });
    match loaded {
        Ok((policy, place)) => {
            report.warnings.extend(policy.warnings().iter().cloned());
            report.warnings.extend(policy.lint());
            report.grants = Some(policy.grant_count());
            report.secrets = Some(policy.secret_count());
            report.store = Some(place);
        }
        Err(e) => report.errors.push(e.to_string()),
    }
    report.signing_keys = keys.map(|keys| keys.len());
    if strict && !report.warnings.is_empty() {
        report.errors.push(format!(
            "{} warning(s), and --strict treats warnings as errors",
            report.warnings.len()
        ));
    }
    report.ok = report.errors.is_empty();
    report
}
