//! `envoi run`: the answer delivered to a command (SPEC §8; the work is in `client::run`).

use std::path::Path;
use std::time::Duration;

use crate::cli::RunArgs;
use crate::client::{self, RunSettings};

use super::{fetch::settings, init_quiet_logs, CommandError};

/// The exit status to leave with, when envoi stayed the command's parent.
pub(super) fn run(config: Option<&Path>, args: &RunArgs) -> Result<u8, CommandError> {
    init_quiet_logs();
    let settings = RunSettings {
        fetch: settings(config, &args.client)?,
        root: args.root.clone(),
        command: args.command.clone(),
        redact: args.redact,
        watch: args.watch.map(Duration::from_secs),
        grace: Duration::from_secs(args.grace),
    };
    Ok(client::run::run(&settings)?)
}
