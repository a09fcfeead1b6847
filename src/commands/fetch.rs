//! `envoi fetch`: one answer, printed (SPEC §8).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::cli::{ClientArgs, FetchArgs, WorkloadArgs};
use crate::client::{self, FetchSettings, TokenSource};
use crate::config::Settings;

use super::{init_quiet_logs, workload, CommandError};

pub(super) fn fetch(config: Option<&Path>, args: &FetchArgs) -> Result<(), CommandError> {
    init_quiet_logs();
    let settings = settings(config, &args.client)?;
    let answer = client::fetch(&settings)?;
    let rendered = client::render(&answer, args.format)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&rendered)
        .and_then(|()| out.flush())
        .map_err(|e| CommandError::Other(format!("cannot write to standard output: {e}")))
}

/// The client's settings from its flags; `--config` is read only to mint a token.
pub(crate) fn settings(config: Option<&Path>, args: &ClientArgs) -> Result<FetchSettings, CommandError> {
    let token = match (&args.token_file, &args.token_env, &args.project) {
        (Some(path), _, _) => TokenSource::File(path.clone()),
        (None, Some(name), _) => TokenSource::Env(name.clone()),
        (None, None, Some(project)) => {
            let keys = Settings::load(config)?.signing_keys()?;
            let workload = workload(&WorkloadArgs {
                project: project.clone(),
                kind: args.kind.clone().unwrap_or_default(),
                id: args.id.clone().unwrap_or_default(),
            })?;
            let key = keys.into_iter().next().ok_or_else(|| {
                CommandError::Other("--project needs a signing key in auth.secrets of --config".into())
            })?;
            TokenSource::Mint { key, workload }
        }
        (None, None, None) => {
            return Err(CommandError::Other(
                "a token is needed: --token-file, --token-env or --project/--type/--id".into(),
            ))
        }
    };
    Ok(FetchSettings {
        url: client::fetch::parse_url(&args.url)?,
        token,
        cafile: args.cafile.clone(),
        connect_timeout: Duration::from_secs(args.connect_timeout),
        read_timeout: Duration::from_secs(args.read_timeout),
        retry_for: Duration::from_secs(args.retry_for),
    })
}
