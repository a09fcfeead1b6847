//! The command line (SPEC §4). Types only; `commands` does the work.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "envoi",
    version,
    about = "A self-hosted secret source for PaaS workloads",
    after_help = EXIT_STATUS
)]
pub struct Cli {
    /// A configuration file layered over the built-in defaults. Every command that reads
    /// settings takes it; `keygen`, `completions` and `man` read none and refuse it.
    #[arg(long, global = true, value_name = "FILE", env = "ENVOI_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The exit statuses, the same for every command (README, "Exit status").
pub const EXIT_STATUS: &str = "\
Exit status: 0 success; 1 the command failed (`error: ...` names why); 2 a usage error \
(an unknown flag, a missing argument). `envoi run` exits with its COMMAND's status.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the secret source protocol.
    #[command(after_help = "Examples:
  envoi serve --config /etc/envoi/envoi.toml
  envoi serve --dev                  # a local demo with the example policy")]
    Serve(ServeArgs),
    /// Load the configuration and the policy as `serve` would, and report every problem
    /// and every lint warning.
    Check(CheckArgs),
    /// Show what a workload receives and which grant gave each item.
    Explain(ExplainArgs),
    /// Compare two policies (files or folders; with one path, the configured store against
    /// it): grants added, removed and changed, and per ENV key or FILE path whether the
    /// value changed, never a value. Exit 0: no change, 1: changes, 2: an error.
    Diff(DiffArgs),
    /// Mint a token for a workload, signed with the first configured key (for tests).
    Token(TokenArgs),
    /// Print a new master key for sealing (its id, then the key alone on the last line).
    /// Reads no configuration, so it refuses `--config`.
    #[command(after_help = "Examples:
  envoi keygen | tail -n 1 > master.key && chmod 0400 master.key")]
    Keygen,
    /// Seal a value read from standard input for the secret NAME, with the newest master key.
    #[command(after_help = "Examples:
  echo -n 'sk_live_...' | envoi seal --config envoi.toml --name stripe_key
  envoi seal --name tls_key --raw < key.pem")]
    Seal(SealArgs),
    /// Re-seal every sealed value of the policy under the newest master key, in place,
    /// keeping comments and order.
    #[command(after_help = "Examples:
  envoi reseal --config envoi.toml && envoi check --config envoi.toml")]
    Reseal,
    /// Ask an envoi (or any server that speaks the protocol) for a workload's answer, as
    /// the platform would, and print it. FILE items are not written.
    Fetch(FetchArgs),
    /// Fetch a workload's answer, write its FILE items and run COMMAND with its ENV items
    /// added. Exit status: COMMAND's (128 + N when a signal N ended it); 1 when envoi
    /// failed before COMMAND started (nothing is started then); 2 for a usage error.
    #[command(after_help = "Examples:
  envoi run --url https://envoi.internal:8443/ --token-file /run/secrets/envoi-token \\
    --root /run/app -- /usr/local/bin/server --port 8000
  envoi run --url http://127.0.0.1:8080/ --config envoi.toml \\
    --project billing --type service --id api --redact --watch 5m -- ./server")]
    Run(RunArgs),
    /// Postgres store: schema and bulk import/export.
    #[command(subcommand)]
    Db(DbCommand),
    /// Postgres store: named secrets, sealed at rest.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Postgres store: grants.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Print a completion script for SHELL on standard output.
    #[command(after_help = "Examples:
  envoi completions bash > /etc/bash_completion.d/envoi
  envoi completions zsh > \"${fpath[1]}/_envoi\"
  envoi completions fish > ~/.config/fish/completions/envoi.fish")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page envoi(1) as roff, or write one page per command into DIR.
    #[command(after_help = "Examples:
  envoi man | man -l -
  envoi man --dir /usr/local/share/man/man1")]
    Man {
        /// Write envoi.1 and a page per subcommand (envoi-serve.1, envoi-db-import.1...)
        /// into this folder instead of printing envoi.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply the embedded migrations.
    #[command(after_help = "Examples:
  DATABASE_URL=postgres://envoi@db:5432/envoi envoi db migrate")]
    Migrate,
    /// Make the database hold exactly this TOML policy (a file or a folder); values are
    /// sealed on the way in. Importing the same policy twice changes nothing.
    #[command(after_help = "Examples:
  envoi db import --config envoi.toml policy/
  envoi db export > policy.toml && envoi db import policy.toml   # re-seal under the newest key")]
    Import {
        /// The policy file or folder.
        path: PathBuf,
        /// Write nothing: print what the import would change, as `envoi diff` shows it
        /// (exit 0 when nothing, 1 when something, 2 on an error).
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: `text` or `json` (the shape of `envoi diff --format json`).
        #[arg(long, value_enum, default_value_t = OutputFormat::Text, requires = "dry_run")]
        format: OutputFormat,
    },
    /// Print the policy as TOML with sealed values, as `envoi check` accepts it.
    Export,
    /// Who changed what, when, at which generation, oldest first; never a value.
    History {
        /// Only the changes to the secret or grant of this name.
        #[arg(long, value_name = "N")]
        name: Option<String>,
        /// `text` (a table) or `json` (an array, one object per change; see the README).
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Restore the secrets and grants as they were at generation GEN, in one change,
    /// checked like any other; sealed values are restored as they were sealed.
    #[command(after_help = "Examples:
  envoi db history --name db_password
  envoi db rollback --to 41")]
    Rollback {
        /// The generation to restore (see `db history`).
        #[arg(long, value_name = "GEN")]
        to: i64,
    },
    /// What the changes from generation GEN to GEN2 (the current one by default) changed,
    /// as `envoi diff` shows two policies; never a value. Exit 0 when nothing did, 1 when
    /// something did, 2 on an error.
    Diff {
        /// The older generation (see `db history`).
        #[arg(value_name = "GEN")]
        from: i64,
        /// The newer generation; the current one when left out.
        #[arg(value_name = "GEN2")]
        to: Option<i64>,
        /// `text` or `json` (the shape of `envoi diff --format json`).
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Compact the history older than both `store.history_keep_changes` changes and
    /// `store.history_keep_days` days (every hundredth change also does): every generation
    /// after the cut-off can still be rolled back to.
    #[command(after_help = "Examples:
  ENVOI__STORE__HISTORY_KEEP_DAYS=30 envoi db prune --config envoi.toml")]
    Prune,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Seal and store a secret's value, read from standard input or --file (never argv).
    #[command(after_help = "Examples:
  echo -n 's3cret' | envoi secret put db_password
  envoi secret put tls_key --file key.pem")]
    Put {
        /// The secret's name: letters, digits, `_`, `-` and `.`.
        name: String,
        /// Read the value from this file instead of standard input.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Keep a trailing newline read from standard input.
        #[arg(long)]
        raw: bool,
        /// Store an empty value. Refused by default: an empty input (`printf ''`, or
        /// `echo` once its newline is dropped) is more often a mistake than a wish, and
        /// would blank the secret for every workload granted it.
        #[arg(long)]
        allow_empty: bool,
    },
    /// List secrets: names, versions, key ids and dates, never values.
    Ls {
        /// `text` (a table) or `json` (an array; its shape is in the README).
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Remove a secret; refused while a grant or template names it.
    #[command(after_help = "Examples:
  envoi secret rm db_password")]
    Rm {
        /// The secret's name, as `secret ls` shows it.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Add a grant: a selector and what it gives.
    #[command(after_help = "Examples:
  envoi grant add billing-api --project billing --type service --id api \\
    --env DB_PASSWORD=db_password \\
    --file /etc/billing/db_password=db_password,mode=0400,owner=app")]
    Add(GrantAddArgs),
    /// Create or replace a grant in one change: replicas never serve a moment without it.
    #[command(after_help = "Examples:
  envoi grant put billing-api --project billing --type service --id api \\
    --env DB_PASSWORD=db_password_v2   # the whole grant, replaced in one change")]
    Put(GrantAddArgs),
    /// List grants with their selectors and items.
    Ls {
        /// `text` or `json` (an array; its shape is in the README).
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Remove a grant.
    #[command(after_help = "Examples:
  envoi grant rm billing-api")]
    Rm {
        /// The grant's name, as `grant ls` shows it.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct GrantAddArgs {
    /// The grant's name, unique.
    pub name: String,
    /// Project selector: a name or a glob; `*` when left out.
    #[arg(long)]
    pub project: Option<String>,
    /// Type selector.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Id selector.
    #[arg(long)]
    pub id: Option<String>,
    /// An ENV item: KEY=SECRET_NAME (repeatable).
    #[arg(long = "env", value_name = "KEY=SECRET")]
    pub env: Vec<String>,
    /// A FILE item: PATH=SECRET_NAME[,mode=0400][,owner=NAME][,group=NAME][,encoding=base64] (repeatable).
    #[arg(long = "file", value_name = "PATH=SECRET[,ATTR=V]")]
    pub files: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Treat warnings (lint included) as errors: exit 1 when there is any.
    #[arg(long)]
    pub strict: bool,
    /// `text`, or `json` (one object; its shape is in the README).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// OLD and NEW policy files or folders; NEW alone compares the configured store to it.
    #[arg(num_args = 1..=2, required = true, value_name = "OLD NEW")]
    pub paths: Vec<PathBuf>,
    /// `text`, or `json` (one object; its shape is in the README).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// The secret's name (or, for an inline value, the ENV key or FILE path): a sealed
    /// value only opens under the name it was sealed for.
    #[arg(long)]
    pub name: String,
    /// Keep the input exactly; by default one trailing newline (as `echo` adds) is dropped.
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A local demo: 127.0.0.1, the example policy, a fresh random signing key, and a
    /// ready `curl` line.
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Args)]
pub struct WorkloadArgs {
    /// The workload's project (`projectId`).
    #[arg(long)]
    pub project: String,
    /// The workload's type (`nfObjectType`), such as service or job.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: String,
    /// The workload's id (`nfObjectId`).
    #[arg(long)]
    pub id: String,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["project", "secret"])))]
pub struct ExplainArgs {
    /// The workload's project (`projectId`), with --type and --id.
    #[arg(long, requires_all = ["kind", "id"])]
    pub project: Option<String>,
    /// The workload's type (`nfObjectType`), such as service or job.
    #[arg(long = "type", value_name = "TYPE", requires = "project")]
    pub kind: Option<String>,
    /// The workload's id (`nfObjectId`).
    #[arg(long, requires = "project")]
    pub id: Option<String>,
    /// The reverse: every grant that gives the secret NAME, directly or through templates.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["project", "show_values"])]
    pub secret: Option<String>,
    /// Print values instead of masking them.
    #[arg(long)]
    pub show_values: bool,
    /// `text`, or `json` (one object; its shape is in the README).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Where to ask and with which token: shared by `fetch` and `run`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("token").required(true).args(["token_file", "token_env", "project"])))]
pub struct ClientArgs {
    /// The server's protocol URL, such as https://envoi.internal:8443/.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Read the token from this file on every fetch (one trailing newline is dropped).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Read the token from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Mint the token for this project (with --type and --id), signed with the first
    /// signing key of --config.
    #[arg(long, requires_all = ["kind", "id"])]
    pub project: Option<String>,
    /// The workload's type, for a minted token.
    #[arg(long = "type", value_name = "TYPE", requires = "project")]
    pub kind: Option<String>,
    /// The workload's id, for a minted token.
    #[arg(long, requires = "project")]
    pub id: Option<String>,
    /// Trust the certificates of this PEM file (a private CA) instead of the web's roots.
    #[arg(long, value_name = "FILE")]
    pub cafile: Option<PathBuf>,
    /// How long a connection may take to open: 90s, 15m...
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: u64,
    /// How long the server may stay silent while answering.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub read_timeout: u64,
    /// For how long connection errors, timeouts and 5xx are retried, with backoff
    /// (never a 401 or another 4xx).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub retry_for: u64,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// json: the protocol's body as received; dotenv: KEY="VALUE"; shell: export KEY='VALUE'.
    #[arg(long, value_enum, default_value = "json")]
    pub format: crate::client::Format,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Write every FILE item under this folder (a shared volume): its path is taken as
    /// relative to it, and one that leads out (`..`, a symbolic link) is refused.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Stay as COMMAND's parent and replace every value received (ENV values and FILE
    /// data of 4 bytes or more) by ***REDACTED*** in its standard output and error.
    /// Signals are forwarded to COMMAND.
    #[arg(long)]
    pub redact: bool,
    /// Fetch the answer again this often (30s, 5m...); when it changed, write the files
    /// again and restart COMMAND. A failed fetch keeps COMMAND running, with a warning.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_duration)]
    pub watch: Option<u64>,
    /// How long COMMAND has to exit after SIGTERM, on a restart, before SIGKILL.
    #[arg(long, default_value = "10s", value_parser = parse_duration, requires = "watch")]
    pub grace: u64,
    /// Keep the last good answer in this file, sealed with --fallback-key-file for this
    /// workload only, and use it when the server cannot be reached (never after a 401).
    #[arg(long, value_name = "FILE", requires = "fallback_key_file")]
    pub fallback: Option<PathBuf>,
    /// The master key (as `envoi keygen` prints it) that seals the --fallback file.
    #[arg(long, value_name = "K", requires = "fallback")]
    pub fallback_key_file: Option<PathBuf>,
    /// How old a --fallback answer may be and still be used.
    #[arg(long, value_name = "D", default_value = "1d", value_parser = parse_duration)]
    pub fallback_max_age: u64,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// How long the token is valid: 90s, 15m, 1h, 2d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: u64,
}

/// `90`, `90s`, `15m`, `1h`, `2d` → seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s, 15m, 1h or 2d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("`{text}`: unit must be s, m, h or d")),
    };
    if number == 0 {
        return Err("a duration must be longer than 0".into());
    }
    number.checked_mul(scale).ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every subcommand, with its path (`envoi db import`).
    fn every_command() -> Vec<(String, clap::Command)> {
        let mut all = Vec::new();
        let mut todo = vec![("envoi".to_owned(), super::Cli::command())];
        while let Some((path, command)) = todo.pop() {
            for sub in command.get_subcommands() {
                todo.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
            all.push((path, command));
        }
        all
    }

    #[test]
    fn every_command_and_every_argument_says_what_it_is() {
        for (path, command) in every_command() {
            assert!(command.get_about().is_some(), "`{path}` has no description");
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if ["help", "version"].contains(&id) {
                    continue;
                }
                assert!(
                    arg.get_help().is_some_and(|h| !h.to_string().trim().is_empty()),
                    "`{path}`: the argument `{id}` has no help"
                );
            }
        }
    }

    #[test]
    fn every_command_that_changes_something_shows_examples() {
        let changing = [
            "envoi serve",
            "envoi seal",
            "envoi keygen",
            "envoi reseal",
            "envoi run",
            "envoi secret put",
            "envoi secret rm",
            "envoi grant add",
            "envoi grant put",
            "envoi grant rm",
            "envoi db import",
            "envoi db migrate",
            "envoi db rollback",
            "envoi db prune",
        ];
        let all = every_command();
        for name in changing {
            let (_, command) = all
                .iter()
                .find(|(path, _)| path == name)
                .unwrap_or_else(|| panic!("no command `{name}`"));
            let examples = command.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            let leaf = name.trim_start_matches("envoi ");
            assert!(
                examples.starts_with("Examples:") && examples.contains(&format!("envoi {leaf}")),
                "`{name} --help` shows no example of itself:\n{examples}"
            );
        }
    }
}
