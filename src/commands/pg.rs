//! Commands of the Postgres store: `db`, `secret`, `grant`, and `serve` on Postgres.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::progress::Progress;
use super::{init_quiet_logs, CommandError};
use crate::cli::{DbCommand, GrantAddArgs, GrantCommand, OutputFormat, SecretCommand};
use crate::config::Settings;
use crate::policy::model::{EnvSpec, FileSpec, GrantSpec, OwnerSpec};
use crate::store::postgres::{self, PgSettings, PgStore};
use crate::store::source::PostgresSource;

pub(super) fn store(settings: &Settings) -> Result<PgStore, CommandError> {
    let pg = PgSettings {
        url: settings.database_url()?,
        pool_size: settings.store.pool_size,
        connect_timeout: Duration::from_secs(settings.store.connect_timeout_seconds.max(1)),
        statement_timeout: Duration::from_secs(settings.store.statement_timeout_seconds.max(1)),
        import_timeout: Duration::from_secs(settings.store.import_timeout_seconds.max(1)),
        retention: postgres::Retention {
            keep_changes: settings.store.history_keep_changes,
            keep_days: settings.store.history_keep_days,
        },
        tls_ca_file: settings.store.tls_ca_file.clone(),
    };
    // Commands run outside any runtime; the pool must be built inside one.
    block_on(async move { Ok(PgStore::new(&pg, Arc::new(settings.keyring()?))?) })
}

pub(super) fn block_on<T>(work: impl std::future::Future<Output = Result<T, CommandError>>) -> Result<T, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Other(format!("cannot start a runtime: {e}")))?
        .block_on(work)
}

/// `block_on` for work on `store`, with a missing connection's cause found and named.
fn on_store(
    store: &PgStore,
    work: impl std::future::Future<Output = Result<(), CommandError>>,
) -> Result<(), CommandError> {
    block_on(async {
        match work.await {
            Err(CommandError::Store(e)) => Err(CommandError::Store(store.explain(e).await)),
            done => done,
        }
    })
}

fn settings(config: Option<&Path>) -> Result<Settings, CommandError> {
    init_quiet_logs();
    Ok(Settings::load(config)?)
}

pub(super) fn db(config: Option<&Path>, command: DbCommand) -> Result<(), CommandError> {
    let settings = settings(config)?;
    let store = store(&settings)?;
    on_store(&store.clone(), async move {
        match command {
            DbCommand::Migrate => {
                store.migrate().await?;
                println!("migrations applied");
            }
            DbCommand::Import {
                path,
                dry_run: true,
                format,
            } => {
                let failed = super::diff::failure;
                let keyring = settings.keyring().map_err(|e| failed(e.into()))?;
                let loader = crate::policy::Loader::new(&keyring);
                let new = loader.load_path(&path).map_err(|e| failed(e.into()))?;
                let doc = store.import_baseline().await.map_err(|e| failed(e.into()))?;
                let old = loader.load_doc("postgres", doc).map_err(|e| failed(e.into()))?;
                super::diff::show(&old, &new, format)?;
            }
            DbCommand::Import { path, .. } => {
                // The file must load as a TOML policy first: the same checks, the same messages.
                // The compiled policy is dropped before the files are parsed again for the
                // import, so that the two never take memory at once.
                let progress = Progress::start(&format!("checking {}", path.display()));
                crate::policy::Loader::new(&settings.keyring()?).load_path(&path)?;
                progress.phase(&format!("reading {}", path.display()));
                let files = crate::policy::parse_path(&path)?;
                progress.phase("importing: comparing with the tables, writing what differs, checking the result");
                let report = store.import(files, &postgres::actor("import")).await?;
                drop(progress);
                println!(
                    "imported {}: {} secret(s) written, {} removed; {} grant(s) written, {} removed; {} unchanged",
                    path.display(),
                    report.secrets_written,
                    report.secrets_removed,
                    report.grants_written,
                    report.grants_removed,
                    report.unchanged
                );
            }
            DbCommand::Diff { from, to, format } => {
                let failed = super::diff::failure;
                let keyring = settings.keyring().map_err(|e| failed(e.into()))?;
                let loader = crate::policy::Loader::new(&keyring);
                let mut compiled = Vec::with_capacity(2);
                for at in [Some(from), to] {
                    let (generation, doc) = store.read_at(at).await.map_err(|e| failed(e.into()))?;
                    let policy = loader
                        .load_doc(&format!("generation {generation}"), doc)
                        .map_err(|e| failed(e.into()))?;
                    compiled.push(policy);
                }
                super::diff::show(&compiled[0], &compiled[1], format)?;
            }
            DbCommand::Prune => {
                let (gone, from) = store.compact_history().await?;
                println!("compacted {gone} history entries; every generation from {from} on can be rolled back to");
            }
            DbCommand::Export => {
                let progress = Progress::start("reading the policy from the database");
                let text = store.export().await?;
                drop(progress);
                print!("{text}");
            }
            DbCommand::Rollback { to } => {
                let report = store.rollback(to, &postgres::actor("rollback")).await?;
                println!(
                    "rolled back to generation {to}: {} secret(s) written, {} removed; {} grant(s) written, {} removed",
                    report.secrets_written, report.secrets_removed, report.grants_written, report.grants_removed
                );
            }
            DbCommand::History { name, format } => {
                let entries = store.history(name.as_deref()).await?;
                match format {
                    OutputFormat::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&entries)
                            .map_err(|e| CommandError::Other(format!("cannot write JSON: {e}")))?
                    ),
                    OutputFormat::Text => {
                        println!(
                            "{:>10}  {:<20}  {:<8}  {:<6}  {:<32}  {:<8}  ACTOR",
                            "GENERATION", "AT", "CHANGE", "OBJECT", "NAME", "ACTION"
                        );
                        for e in entries {
                            println!(
                                "{:>10}  {:<20}  {:<8}  {:<6}  {:<32}  {:<8}  {}",
                                e.generation, e.at, e.change, e.object, e.name, e.action, e.actor
                            );
                        }
                    }
                }
            }
        }
        store.close().await;
        Ok(())
    })
}

pub(super) fn secret(config: Option<&Path>, command: SecretCommand) -> Result<(), CommandError> {
    let settings = settings(config)?;
    let store = store(&settings)?;
    on_store(&store.clone(), async move {
        match command {
            SecretCommand::Put {
                name,
                file,
                raw,
                allow_empty,
            } => {
                let value = read_value(file.as_deref(), raw)?;
                if value.is_empty() && !allow_empty {
                    let input = match &file {
                        Some(path) => format!("{} is empty", path.display()),
                        None if raw => "standard input is empty".to_owned(),
                        None => "standard input is empty (once its trailing newline is dropped)".to_owned(),
                    };
                    return Err(CommandError::Other(format!(
                        "{input}: secret `{name}` not stored, as an empty value would blank it for every \
                         workload granted it; pass --allow-empty if an empty value is meant"
                    )));
                }
                let version = store.put_secret(&name, &value, &postgres::actor("cli")).await?;
                println!("secret `{name}` stored, version {version}");
            }
            SecretCommand::Ls {
                format: OutputFormat::Json,
            } => super::listing::print_secrets(&store.list_secrets().await?)?,
            SecretCommand::Ls { .. } => {
                // Read first: a command that fails prints nothing on standard output.
                let secrets = store.list_secrets().await?;
                println!(
                    "{:<32} {:<8} {:<10} {:>7}  {:<20}  UPDATED BY",
                    "NAME", "KIND", "KEY", "VERSION", "UPDATED"
                );
                for s in secrets {
                    println!(
                        "{:<32} {:<8} {:<10} {:>7}  {:<20}  {}",
                        s.name,
                        s.kind,
                        s.key_id.as_deref().unwrap_or("-"),
                        s.version,
                        s.updated_at,
                        s.updated_by
                    );
                }
            }
            SecretCommand::Rm { name } => {
                store.remove_secret(&name, &postgres::actor("cli")).await?;
                println!("secret `{name}` removed");
            }
        }
        store.close().await;
        Ok(())
    })
}

pub(super) fn grant(config: Option<&Path>, command: GrantCommand) -> Result<(), CommandError> {
    let settings = settings(config)?;
    let store = store(&settings)?;
    on_store(&store.clone(), async move {
        match command {
            GrantCommand::Add(args) => {
                let name = args.name.clone();
                store.add_grant(grant_spec(args)?, &postgres::actor("cli")).await?;
                println!("grant `{name}` added");
            }
            GrantCommand::Put(args) => {
                let name = args.name.clone();
                match store.put_grant(grant_spec(args)?, &postgres::actor("cli")).await? {
                    true => println!("grant `{name}` replaced"),
                    false => println!("grant `{name}` added"),
                }
            }
            GrantCommand::Ls {
                format: OutputFormat::Json,
            } => super::listing::print_grants(&store.list_grants().await?)?,
            GrantCommand::Ls { .. } => {
                for grant in store.list_grants().await? {
                    let [project, kind, id] = postgres::selector_columns(&grant);
                    println!(
                        "{}  project={project} type={kind} id={id}",
                        grant.name.as_deref().unwrap_or("-"),
                    );
                    for (key, entry) in &grant.env {
                        match entry {
                            EnvSpec::Secret(secret) => println!("    ENV {key} = secret `{secret}`"),
                            EnvSpec::Inline(_) => println!("    ENV {key} = inline value"),
                        }
                    }
                    for file in &grant.files {
                        match &file.secret {
                            Some(secret) => println!("    FILE {} = secret `{secret}`", file.path),
                            None => println!("    FILE {} = inline value", file.path),
                        }
                    }
                }
            }
            GrantCommand::Rm { name } => {
                store.remove_grant(&name, &postgres::actor("cli")).await?;
                println!("grant `{name}` removed");
            }
        }
        store.close().await;
        Ok(())
    })
}

/// A value from a file or standard input; never from the command line, where it would
/// show in `ps` and shell history.
fn read_value(file: Option<&Path>, raw: bool) -> Result<zeroize::Zeroizing<Vec<u8>>, CommandError> {
    match file {
        Some(path) => std::fs::read(path)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| CommandError::Other(format!("cannot read {}: {e}", path.display()))),
        None => {
            super::read_stdin_value(raw).map_err(|e| CommandError::Other(format!("cannot read standard input: {e}")))
        }
    }
}

fn grant_spec(args: GrantAddArgs) -> Result<GrantSpec, CommandError> {
    let mut spec = GrantSpec {
        name: Some(args.name),
        project: args.project,
        kind: args.kind,
        id: args.id,
        env: Default::default(),
        files: Vec::new(),
    };
    for entry in args.env {
        let (key, secret) = entry
            .split_once('=')
            .filter(|(k, s)| !k.is_empty() && !s.is_empty())
            .ok_or_else(|| CommandError::Other(format!("--env `{entry}`: expected KEY=SECRET_NAME")))?;
        spec.env.insert(key.to_owned(), EnvSpec::Secret(secret.to_owned()));
    }
    for entry in args.files {
        let (path, rest) = entry.split_once('=').ok_or_else(|| {
            CommandError::Other(format!("--file `{entry}`: expected PATH=SECRET_NAME[,mode=0400]..."))
        })?;
        let mut parts = rest.split(',');
        let secret = parts.next().filter(|s| !s.is_empty()).ok_or_else(|| {
            CommandError::Other(format!("--file `{entry}`: expected PATH=SECRET_NAME[,mode=0400]..."))
        })?;
        let mut file = FileSpec {
            path: path.to_owned(),
            secret: Some(secret.to_owned()),
            value: None,
            env: None,
            file: None,
            sealed: None,
            template: None,
            encoding: None,
            mode: None,
            permissions: None,
            owner: None,
            group: None,
        };
        for attribute in parts {
            let unknown = || {
                CommandError::Other(format!(
                    "--file `{entry}`: `{attribute}` is not one of mode=, owner=, group=, encoding="
                ))
            };
            match attribute.split_once('=') {
                Some(("mode", mode)) => file.mode = Some(mode.to_owned()),
                Some(("owner", owner)) => file.owner = Some(OwnerSpec::Short(owner.to_owned())),
                Some(("group", group)) => file.group = Some(OwnerSpec::Short(group.to_owned())),
                Some(("encoding", encoding)) => file.encoding = Some(encoding.parse().map_err(|_| unknown())?),
                _ => return Err(unknown()),
            }
        }
        spec.files.push(file);
    }
    Ok(spec)
}

/// The Postgres store as a policy source for `serve`, `check` and `explain`.
pub(super) fn source(settings: &Settings) -> Result<PostgresSource, CommandError> {
    Ok(PostgresSource {
        store: store(settings)?,
        refresh: Duration::from_secs(settings.store.refresh_seconds.max(1)),
        migrate: settings.store.migrate_on_start,
        max_staleness: match settings.store.max_staleness_seconds {
            0 => None,
            seconds => Some(Duration::from_secs(seconds)),
        },
    })
}
