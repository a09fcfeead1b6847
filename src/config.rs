//! Settings, layered (SPEC §5): built-in defaults (`config/default.toml`, compiled in),
//! the file given with `--config`, then `ENVOI__SECTION__KEY` environment variables.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::auth::{SigningKey, TokenRules};
use crate::seal::{Keyring, MasterKey};

mod layers;
mod weak;

/// The checked-in defaults, which also document every key.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
    /// As `Invalid`, with where the setting was given: its file or its variable.
    #[error("setting `{key}` ({at}): {problem}")]
    Setting {
        key: &'static str,
        at: String,
        problem: String,
    },
    #[error("no signing key: set `auth.secrets` (ENVOI__AUTH__SECRETS) or `auth.secret_files` (ENVOI__AUTH__SECRET_FILES) to the secret shared with the platform")]
    NoSigningKey,
    /// Every problem of the layers at once, each named where it stands.
    #[error("{}", problem_list(.0))]
    Settings(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub store: StoreSettings,
    pub seal: SealSettings,
    pub log: LogSettings,
    /// Where the settings were given, to name in a problem found after loading.
    #[serde(skip)]
    origin: Origin,
}

/// The `--config` file, and the dotted keys that variables set.
#[derive(Debug, Default)]
struct Origin {
    file: Option<PathBuf>,
    from_env: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealSettings {
    pub keys: Vec<SecretString>,
    pub key_files: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: String,
    pub workers: usize,
    pub shutdown_timeout_seconds: u64,
    pub admin_listen: Option<String>,
    pub keep_alive_seconds: u64,
    pub request_timeout_ms: u64,
    pub disconnect_timeout_ms: u64,
    pub tls_handshake_timeout_ms: u64,
    pub max_connections: usize,
    pub max_tls_handshakes: usize,
    /// 0: no limit per address.
    pub max_tls_handshakes_per_address: usize,
    pub backlog: u32,
    pub max_header_bytes: usize,
    pub auth_failure_limit: u32,
    pub auth_failure_exempt: Vec<String>,
    pub tls: TlsSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub secrets: Vec<SecretString>,
    pub secret_files: Vec<PathBuf>,
    pub leeway_seconds: u64,
    pub max_lifetime_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub kind: StoreKind,
    pub path: PathBuf,
    /// Postgres: the connection URL; `DATABASE_URL` when unset.
    pub url: Option<SecretString>,
    pub pool_size: u32,
    pub connect_timeout_seconds: u64,
    pub statement_timeout_seconds: u64,
    /// Postgres: the whole of a `db import`, each of its statements included.
    pub import_timeout_seconds: u64,
    /// Postgres: the history is compacted past this many changes, once also older than
    /// `history_keep_days`.
    pub history_keep_changes: u64,
    pub history_keep_days: u64,
    pub refresh_seconds: u64,
    /// 0: off.
    pub max_staleness_seconds: u64,
    pub migrate_on_start: bool,
    /// A PEM file of CA certificates: TLS to the database, verifying its certificate.
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Toml,
    Postgres,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
    /// Lines below WARN wait at most this long to be written together; 0 writes each
    /// at once.
    pub flush_interval_ms: u64,
}

/// The log format: the telemetry's own vocabulary, named here by `log.format`.
pub use crate::telemetry::LogFormat;

impl Settings {
    /// Reads the layers. Relative paths given by `file` are resolved against its folder;
    /// others against the working directory.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        // `vars_os`: `vars` panics on any variable that is not UTF-8, with its value.
        Self::load_with_env(file, std::env::vars_os())
    }

    /// As [`Settings::load`], with the environment given (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self, ConfigError> {
        let loaded = layers::load::<Settings>(DEFAULT_CONFIG, file, env).map_err(ConfigError::Settings)?;
        let mut settings = loaded.settings;
        if let Some(base) = file.and_then(Path::parent) {
            settings.rebase(base, &loaded.from_env);
        }
        settings.origin = Origin {
            file: file.map(Path::to_path_buf),
            from_env: loaded.from_env,
        };
        Ok(settings)
    }

    /// Where `key` was given: its variable, the `--config` file, or the defaults.
    fn origin_of(&self, key: &str) -> String {
        if self.origin.from_env.iter().any(|k| k == key) {
            env_var(key)
        } else if let Some(file) = &self.origin.file {
            file.display().to_string()
        } else {
            format!("the default; {} sets it", env_var(key))
        }
    }

    /// Resolves relative paths that came from the `--config` file against its folder;
    /// paths from the environment (`from_env`: dotted keys) stay relative to the working
    /// directory.
    fn rebase(&mut self, base: &Path, from_env: &[String]) {
        let from_file = |var: &str| !from_env.iter().any(|key| *key == env_key(var));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if from_file("ENVOI__STORE__PATH") {
            rebase(&mut self.store.path);
        }
        if from_file("ENVOI__AUTH__SECRET_FILES") {
            self.auth.secret_files.iter_mut().for_each(rebase);
        }
        if from_file("ENVOI__SEAL__KEY_FILES") {
            self.seal.key_files.iter_mut().for_each(rebase);
        }
        let singles = [
            ("ENVOI__STORE__TLS_CA_FILE", self.store.tls_ca_file.as_mut()),
            ("ENVOI__SERVER__TLS__CERT", self.server.tls.cert.as_mut()),
            ("ENVOI__SERVER__TLS__KEY", self.server.tls.key.as_mut()),
        ];
        for (var, path) in singles {
            if let (true, Some(path)) = (from_file(var), path) {
                rebase(path);
            }
        }
    }

    /// The signing keys, from `auth.secrets` then `auth.secret_files`.
    pub fn signing_keys(&self) -> Result<Vec<SigningKey>, ConfigError> {
        let mut keys = Vec::new();
        for secret in &self.auth.secrets {
            if secret.expose_secret().is_empty() {
                return Err(ConfigError::Invalid {
                    key: "auth.secrets",
                    problem: "a secret is empty".into(),
                });
            }
            keys.push(SigningKey::new(secret.clone()));
        }
        for path in &self.auth.secret_files {
            keys.push(SigningKey::new(read_secret_file(path, "auth.secret_files")?));
        }
        if keys.is_empty() {
            return Err(ConfigError::NoSigningKey);
        }
        Ok(keys)
    }

    /// The master keys, from `seal.keys` then `seal.key_files`; possibly none.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let mut keys = Vec::new();
        for (n, key) in self.seal.keys.iter().enumerate() {
            keys.push(MasterKey::parse(key.expose_secret()).map_err(|e| ConfigError::Invalid {
                key: "seal.keys",
                problem: format!("entry {}: {e}", n + 1),
            })?);
        }
        for path in &self.seal.key_files {
            let text = read_secret_file(path, "seal.key_files")?;
            keys.push(
                MasterKey::parse(text.expose_secret()).map_err(|e| ConfigError::Invalid {
                    key: "seal.key_files",
                    problem: format!("{}: {e}", path.display()),
                })?,
            );
        }
        Ok(Keyring::new(keys))
    }

    /// The Postgres URL: `store.url`, else `DATABASE_URL`.
    pub fn database_url(&self) -> Result<SecretString, ConfigError> {
        if let Some(url) = &self.store.url {
            return Ok(url.clone());
        }
        let problem = match std::env::var_os("DATABASE_URL").map(OsString::into_string) {
            Some(Ok(url)) if !url.is_empty() => return Ok(SecretString::from(url)),
            // Named, never shown: a URL holds a password.
            Some(Err(_)) => "DATABASE_URL is not valid UTF-8",
            _ => "the Postgres store needs a URL: set store.url (ENVOI__STORE__URL) or DATABASE_URL",
        };
        Err(ConfigError::Invalid {
            key: "store.url",
            problem: problem.into(),
        })
    }

    /// `server.listen` and, when set, `server.admin_listen`, checked as `serve` binds
    /// them, without binding.
    pub fn check_listeners(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut check = |address: &str, key| {
            if let Err(e) = check_listen(address, key, self.origin_of(key)) {
                problems.push(e.to_string());
            }
        };
        check(&self.server.listen, "server.listen");
        if let Some(admin) = &self.server.admin_listen {
            check(admin, "server.admin_listen");
        }
        match problems.len() {
            0 => Ok(()),
            _ => Err(ConfigError::Settings(problems)),
        }
    }

    /// The filter of `log.level`.
    pub fn log_filter(&self) -> Result<crate::telemetry::LogFilter, ConfigError> {
        // The parser's message may quote the directive: it is not shown.
        crate::telemetry::LogFilter::parse(&self.log.level).ok_or_else(|| ConfigError::Setting {
            key: "log.level",
            at: self.origin_of("log.level"),
            problem: "not a tracing filter, such as info, debug or envoi=debug,actix_web=info".into(),
        })
    }

    pub fn token_rules(&self) -> TokenRules {
        TokenRules {
            leeway_seconds: self.auth.leeway_seconds,
            max_lifetime_seconds: self.auth.max_lifetime_seconds,
        }
    }
}

/// Reads a file that holds one secret; one trailing newline (as editors and `echo` add)
/// is not part of it.
pub fn read_secret_file(path: &Path, key: &'static str) -> Result<SecretString, ConfigError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
        key,
        problem: format!("cannot read {}: {}", path.display(), e.kind()),
    })?);
    let secret = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            problem: format!("{} is empty", path.display()),
        });
    }
    Ok(SecretString::from(secret.to_owned()))
}

/// Checks an address setting as the listener binds it: `HOST:PORT`, a host name that
/// resolves. The value is never quoted: it may be a secret pasted in the wrong place.
fn check_listen(address: &str, key: &'static str, at: String) -> Result<(), ConfigError> {
    use std::net::ToSocketAddrs as _;
    let problem = match address.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(_)) => return Ok(()),
        Ok(_) => "the host name resolves to no address".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            "expected HOST:PORT, such as 127.0.0.1:8080 or [::]:8443".to_owned()
        }
        // The resolver's message names the failure, not the name looked up.
        Err(e) => format!("the host name does not resolve: {e}"),
    };
    Err(ConfigError::Setting { key, at, problem })
}

/// One problem alone, or several as a list, as the policy's are.
fn problem_list(problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        many => {
            let mut text = format!("the configuration has {} problems:", many.len());
            for problem in many {
                text.push_str("\n  - ");
                text.push_str(problem);
            }
            text
        }
    }
}

/// The variable that sets a dotted key: `server.listen` → `ENVOI__SERVER__LISTEN`.
fn env_var(key: &str) -> String {
    format!("ENVOI__{}", key.replace('.', "__").to_uppercase())
}

/// The dotted key a variable sets: `ENVOI__STORE__PATH` → `store.path`.
fn env_key(var: &str) -> String {
    var.trim_start_matches("ENVOI__").replace("__", ".").to_lowercase()
}
