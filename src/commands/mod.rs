//! What each subcommand does.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::auth::{mint_token, SigningKey, Workload};
use crate::cli::{Cli, Command, TokenArgs};
use crate::config::{ConfigError, Settings, StoreKind};
use crate::policy::reseal::reseal_text;
use crate::policy::{self, Policy, PolicyError};
use crate::seal::MasterKey;
use crate::serve::Assembly;

mod check;
mod diff;
mod explain;
mod fetch;
mod listing;
mod pg;
mod progress;
mod reverse;
mod run;
use crate::store::toml::TomlStore;
use crate::store::PolicySource;

/// The example policy, compiled in for `serve --dev`.
pub const EXAMPLE_POLICY: &str = include_str!("../../config/example-policy.toml");

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] crate::store::postgres::StoreError),
    #[error(transparent)]
    Source(#[from] crate::store::source::SourceError),
    #[error(transparent)]
    Fetch(#[from] crate::client::FetchError),
    #[error(transparent)]
    Format(#[from] crate::client::FormatError),
    #[error(transparent)]
    Run(#[from] crate::client::RunError),
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    #[error("{0}")]
    Other(String),
    /// A command that answers through its exit status alone (`diff`: 1 for "changed").
    #[error("exit status {0}")]
    Status(u8),
    /// An error with an exit status of its own (`diff`'s 2, as diff(1) does).
    #[error("{source}")]
    WithStatus { status: u8, source: Box<CommandError> },
}

impl CommandError {
    /// The process's exit status for this error.
    pub fn status(&self) -> u8 {
        match self {
            Self::Status(status) | Self::WithStatus { status, .. } => *status,
            _ => 1,
        }
    }

    /// Whether there is nothing to print: the status says it all.
    pub fn is_silent(&self) -> bool {
        matches!(self, Self::Status(_))
    }
}

/// Runs the command; the exit status is 0, or (for `envoi run`) its command's.
pub fn run(cli: Cli) -> Result<u8, CommandError> {
    let config = cli.config.as_deref();
    let done = match cli.command {
        Command::Run(args) => return run::run(config, &args),
        Command::Serve(args) if args.dev => serve_dev(config),
        Command::Serve(_) => serve(config),
        Command::Check(args) => check::check(config, &args),
        Command::Explain(args) => explain::explain(config, &args),
        Command::Diff(args) => diff::diff(config, &args),
        Command::Token(args) => token(config, &args),
        Command::Keygen => keygen(),
        Command::Seal(args) => seal(config, &args),
        Command::Reseal => reseal(config),
        Command::Fetch(args) => fetch::fetch(config, &args),
        Command::Db(command) => pg::db(config, command),
        Command::Secret(command) => pg::secret(config, command),
        Command::Grant(command) => pg::grant(config, command),
        Command::Completions { shell } => completions(shell),
        Command::Man { dir } => man(dir.as_deref()),
    };
    done.map(|()| 0)
}

fn toml_store(settings: &Settings) -> Result<TomlStore, CommandError> {
    match settings.store.kind {
        StoreKind::Toml => Ok(TomlStore::new(&settings.store.path, Arc::new(settings.keyring()?))),
        StoreKind::Postgres => Err(CommandError::Other(
            "this command works on a TOML policy; store.kind is \"postgres\"".into(),
        )),
    }
}

/// Loads the policy from the configured store, as `serve` would.
pub(crate) fn load_policy(settings: &Settings) -> Result<Policy, CommandError> {
    Ok(source(settings)?.load_now()?)
}

/// Logs for `serve`, as configured.
pub(crate) fn init_logs(settings: &Settings) -> Result<(), CommandError> {
    let flush_interval = Duration::from_millis(settings.log.flush_interval_ms);
    crate::telemetry::init(settings.log_filter()?, settings.log.format, flush_interval).map_err(CommandError::Other)
}

/// Logs for commands other than `serve`: warnings and errors only.
pub(crate) fn init_quiet_logs() {
    let warn = crate::telemetry::LogFilter::Targets(
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::WARN),
    );
    let _ = crate::telemetry::init(warn, crate::config::LogFormat::Pretty, Duration::ZERO);
}

/// The configured store as a source: the one place that asks which kind it is.
fn source(settings: &Settings) -> Result<PolicySource, CommandError> {
    Ok(match settings.store.kind {
        StoreKind::Toml => PolicySource::Toml(toml_store(settings)?),
        StoreKind::Postgres => PolicySource::Postgres(pg::source(settings)?),
    })
}

fn serve(config: Option<&Path>) -> Result<(), CommandError> {
    let settings = Settings::load(config)?;
    init_logs(&settings)?;
    for weak in settings.weak_settings() {
        tracing::warn!("weak setting: {weak}");
    }
    let keys = settings.signing_keys()?;
    Assembly::new(&settings, &keys, source(&settings)?)?.run(|_| Ok(()))?;
    Ok(())
}

fn serve_dev(config: Option<&Path>) -> Result<(), CommandError> {
    let settings = Settings::load(config)?;
    init_logs(&settings)?;
    let policy = policy::load_str("example-policy.toml (embedded)", EXAMPLE_POLICY, None)?;
    let key = SigningKey::new(SecretString::from(random_hex(32)));
    let assembly = Assembly::new(&settings, std::slice::from_ref(&key), PolicySource::Fixed(policy))?.loopback_only();
    assembly.run(|address| {
        let mut out = std::io::stdout().lock();
        let curl = |project: &str, kind: &str, id: &str| {
            let workload = Workload::new(project, kind, id).expect("example workloads are valid");
            format!(
                "curl -s -H 'Authorization: Bearer {}' http://{address}/",
                mint_token(&key, &workload, 3600)
            )
        };
        writeln!(
            out,
            "envoi dev server on http://{address} with the example policy and a throwaway signing key."
        )?;
        writeln!(
            out,
            "Ask for the secrets of billing/service/api (token valid for 1 hour):\n"
        )?;
        writeln!(out, "  {}\n", curl("billing", "service", "api"))?;
        writeln!(out, "and of a workload that only the catch-all grant matches:\n")?;
        writeln!(out, "  {}\n", curl("web", "job", "nightly-report"))?;
        writeln!(out, "Ctrl-C stops it.")?;
        out.flush()
    })?;
    Ok(())
}

pub(crate) fn workload(args: &crate::cli::WorkloadArgs) -> Result<Workload, CommandError> {
    Workload::new(&args.project, &args.kind, &args.id).map_err(|_| {
        CommandError::Other("--project, --type and --id must be non-empty names without control characters".into())
    })
}

fn token(config: Option<&Path>, args: &TokenArgs) -> Result<(), CommandError> {
    init_quiet_logs();
    let settings = Settings::load(config)?;
    let keys = settings.signing_keys()?;
    let workload = workload(&args.workload)?;
    if args.ttl > settings.auth.max_lifetime_seconds {
        eprintln!(
            "warning: --ttl is longer than auth.max_lifetime_seconds ({}s); envoi will refuse this token",
            settings.auth.max_lifetime_seconds
        );
    }
    println!("{}", mint_token(&keys[0], &workload, args.ttl));
    Ok(())
}

fn keygen() -> Result<(), CommandError> {
    let key = MasterKey::generate();
    eprintln!(
        "New master key {}. Store the last line in a file (mode 0400) named by seal.key_files, newest first.",
        key.id()
    );
    println!("{}", key.encode().as_str());
    Ok(())
}

fn completions(shell: clap_complete::Shell) -> Result<(), CommandError> {
    use clap::CommandFactory as _;
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "envoi", &mut out);
    out.flush().map_err(|e| CommandError::Other(e.to_string()))
}

/// envoi(1) on standard output, or every page written into `dir`: both made from the
/// clap definitions, so the manual cannot drift from `--help`.
fn man(dir: Option<&Path>) -> Result<(), CommandError> {
    use clap::CommandFactory as _;
    let command = Cli::command();
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        return clap_mangen::Man::new(command)
            .render(&mut out)
            .and_then(|()| out.flush())
            .map_err(|e| CommandError::Other(e.to_string()));
    };
    let cannot =
        |e: std::io::Error| CommandError::Other(format!("cannot write the manual pages into {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(cannot)?;
    clap_mangen::generate_to(command, dir).map_err(cannot)?;
    println!("manual pages written into {}", dir.display());
    Ok(())
}

fn seal(config: Option<&Path>, args: &crate::cli::SealArgs) -> Result<(), CommandError> {
    init_quiet_logs();
    let settings = Settings::load(config)?;
    let keyring = settings.keyring()?;
    let input = read_stdin_value(args.raw)
        .map_err(|e| CommandError::Other(format!("cannot read the value from standard input: {e}")))?;
    let sealed = keyring
        .seal(&args.name, &input)
        .map_err(|e| CommandError::Other(e.to_string()))?;
    println!("{sealed}");
    Ok(())
}

/// A value from standard input, without the one line ending (`\n` or `\r\n`) that `echo`
/// or a heredoc ends it with, unless `raw`: `seal` and `secret put` read values alike.
pub(crate) fn read_stdin_value(raw: bool) -> std::io::Result<zeroize::Zeroizing<Vec<u8>>> {
    read_value_from(std::io::stdin().lock(), raw)
}

fn read_value_from(mut input: impl std::io::Read, raw: bool) -> std::io::Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut value = zeroize::Zeroizing::new(Vec::new());
    input.read_to_end(&mut value)?;
    if !raw && value.last() == Some(&b'\n') {
        value.pop();
        if value.last() == Some(&b'\r') {
            value.pop();
        }
    }
    Ok(value)
}

fn reseal(config: Option<&Path>) -> Result<(), CommandError> {
    init_quiet_logs();
    let settings = Settings::load(config)?;
    let keyring = settings.keyring()?;
    let path = &settings.store.path;
    // The files a load reads, with the same checks: what reseal rewrites is what serves.
    let files = if path.is_dir() {
        policy::list_policy_folder(path).map_err(PolicyError::new)?
    } else {
        vec![path.clone()]
    };
    // Check every file first, then write: all or nothing.
    let mut rewrites = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        let text =
            std::fs::read_to_string(file).map_err(|e| CommandError::Other(format!("cannot read {name}: {e}")))?;
        match reseal_text(&name, &text, &keyring) {
            Ok((new_text, done)) => rewrites.push((file, new_text, done)),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if !problems.is_empty() {
        return Err(PolicyError::new(problems).into());
    }
    for (file, text, done) in rewrites {
        if done.changed > 0 {
            write_atomically(file, text.as_bytes())
                .map_err(|e| CommandError::Other(format!("cannot write {}: {e}", file.display())))?;
        }
        println!(
            "{}: {} value(s) resealed under key {}, {} already under it",
            file.display(),
            done.changed,
            keyring.newest_id().unwrap_or("-"),
            done.current
        );
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so that a reader (or envoi's own
/// reload) never sees half a file. The file's permissions are kept.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = folder.join(format!(".{name}.envoi-{}", random_hex(4)));
    std::fs::write(&temp, bytes)?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&temp, meta.permissions())?;
    }
    std::fs::rename(&temp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    crate::seal::fill_random(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
