//! `envoi run`: the answer delivered to a command (SPEC §8; the work is in `client::run`).

use std::path::Path;
use std::time::Duration;

use crate::cli::RunArgs;
use crate::client::fallback::Fallback;
use crate::client::{self, RunError, RunSettings};

use super::{fetch::settings, init_quiet_logs, CommandError};

/// The exit status to leave with, when envoi stayed the command's parent.
pub(super) fn run(config: Option<&Path>, args: &RunArgs) -> Result<u8, CommandError> {
    init_quiet_logs();
    let fallback = match (&args.fallback, &args.fallback_key_file) {
        (Some(path), Some(key_file)) => Some(
            Fallback::new(path.clone(), key_file, Duration::from_secs(args.fallback_max_age))
                .map_err(RunError::from)?,
        ),
        _ => None,
    };
    let settings = RunSettings {
        fetch: settings(config, &args.client)?,
        root: args.root.clone(),
        command: args.command.clone(),
        redact: args.redact,
        watch: args.watch.map(Duration::from_secs),
        grace: Duration::from_secs(args.grace),
        fallback,
    };
    Ok(client::run::run(&settings)?)
}
