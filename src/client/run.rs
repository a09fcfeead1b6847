//! `envoi run` (SPEC §8): fetch, write the files, start the command with the variables.
//!
//! Fail closed: everything that can fail before the command starts (the fetch, the
//! answer, a write, an owner that does not exist) does so before anything is started,
//! and [`files::write_all`] leaves nothing half-written. With neither `--redact` nor
//! `--watch`, envoi replaces itself with the command (exec); otherwise it stays as its
//! parent ([`supervise`]).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::client::answer::Answer;
use crate::client::fallback::{Fallback, FallbackError};
use crate::client::fetch::{fetch_async, FetchError, FetchSettings, TokenSource};
use crate::client::files::{self, WriteError};
use crate::client::supervise::supervise;
use crate::client::warn;

#[derive(Debug)]
pub struct RunSettings {
    pub fetch: FetchSettings,
    /// Every FILE path is taken under this folder.
    pub root: Option<PathBuf>,
    /// COMMAND and its arguments; never empty.
    pub command: Vec<OsString>,
    /// Mask every value in the command's output (envoi stays its parent).
    pub redact: bool,
    /// Fetch again this often, and restart the command when the answer changed.
    pub watch: Option<Duration>,
    /// How long a restarted command has between TERM and KILL.
    pub grace: Duration,
    /// Where the last good answer is kept, for when the server cannot be reached.
    pub fallback: Option<Fallback>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Fallback(#[from] FallbackError),
    #[error("{fetch}; and the fallback cannot be used: {fallback}")]
    NoFallback {
        fetch: Box<FetchError>,
        fallback: Box<FallbackError>,
    },
    #[error("ENV {key}: {problem}")]
    Env { key: String, problem: &'static str },
    #[error("cannot start {program}: {cause}")]
    Start {
        program: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot wait for {program}: {cause}")]
    Wait {
        program: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("the runtime cannot be built: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Runs as the module says. Returns only when the command could not be started, or
/// (when envoi stays its parent) with the exit status to leave with.
pub fn run(settings: &RunSettings) -> Result<u8, RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let answer = runtime.block_on(first_answer(settings))?;
    check_env(&answer)?;
    files::write_all(settings.root.as_deref(), &answer.files)?;
    if settings.redact || settings.watch.is_some() {
        return runtime.block_on(supervise(settings, answer));
    }
    drop(runtime);
    let cause = command(settings, &answer).exec();
    Err(RunError::Start {
        program: program(&settings.command),
        cause,
    })
}

/// One fetch; a good answer is kept in the fallback file (a failure to keep it is only
/// a warning: the answer itself is good).
pub(crate) async fn fetch_and_keep(settings: &RunSettings) -> Result<Answer, FetchError> {
    let answer = fetch_async(&settings.fetch).await?;
    if let Some(fallback) = &settings.fallback {
        if let Err(error) = fallback.save(&settings.fetch.token, &answer) {
            warn(&format!("the answer could not be kept: {error}"));
        }
    }
    Ok(answer)
}

/// The answer to start with: fetched, or, when the server could not be reached (after
/// every retry; never after a 401 or another refusal), the fallback's, with a warning.
async fn first_answer(settings: &RunSettings) -> Result<Answer, RunError> {
    match (fetch_and_keep(settings).await, &settings.fallback) {
        (Ok(answer), _) => Ok(answer),
        (Err(fetch @ FetchError::GaveUp { .. }), Some(fallback)) => match fallback.load(&settings.fetch.token) {
            Ok((answer, age)) => {
                warn(&format!(
                    "{fetch}; using the last good answer, kept in --fallback {} {}s ago",
                    fallback.path().display(),
                    age.as_secs()
                ));
                Ok(answer)
            }
            Err(fallback) => Err(RunError::NoFallback {
                fetch: Box::new(fetch),
                fallback: Box::new(fallback),
            }),
        },
        (Err(fetch), _) => Err(fetch.into()),
    }
}

/// COMMAND with the answer's ENV items added to envoi's own environment, less the
/// variable that held envoi's token (`--token-env`): COMMAND has no use for it.
pub(crate) fn command(settings: &RunSettings, answer: &Answer) -> std::process::Command {
    let command = &settings.command;
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]);
    if let TokenSource::Env(name) = &settings.fetch.token {
        cmd.env_remove(name);
    }
    for item in &answer.env {
        cmd.env(&item.key, OsString::from_vec(item.value.expose().to_vec()));
    }
    cmd
}

/// Refuses what no environment can carry, before anything is written: a key that is
/// empty or holds `=` or NUL, a value that holds NUL.
pub(crate) fn check_env(answer: &Answer) -> Result<(), RunError> {
    for item in &answer.env {
        let problem = if item.key.is_empty() || item.key.contains(['=', '\0']) {
            "is not a variable name (empty, or holding `=` or NUL)"
        } else if item.value.expose().contains(&0) {
            "has a value holding a NUL byte, which no environment variable can carry"
        } else {
            continue;
        };
        return Err(RunError::Env {
            key: item.key.escape_debug().to_string(),
            problem,
        });
    }
    Ok(())
}

/// The program's name as shown in an error.
pub(crate) fn program(command: &[OsString]) -> String {
    command[0].to_string_lossy().into_owned()
}
