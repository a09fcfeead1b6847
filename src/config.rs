//! Settings, layered (SPEC §5): built-in defaults (`config/default.toml`, compiled in),
//! the file given with `--config`, then `ENVOI__SECTION__KEY` environment variables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::auth::{SigningKey, TokenRules};
use crate::seal::{Keyring, MasterKey};

/// The checked-in defaults, which also document every key.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(String),
    #[error("setting `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("no signing key: set `auth.secrets` (ENVOI__AUTH__SECRETS) or `auth.secret_files` (ENVOI__AUTH__SECRET_FILES) to the secret shared with the platform")]
    NoSigningKey,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub store: StoreSettings,
    pub seal: SealSettings,
    pub log: LogSettings,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Settings {
    /// Reads the layers. Relative paths given by `file` are resolved against its folder;
    /// others against the working directory.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        use config::{Config, Environment, File, FileFormat};
        let mut builder = Config::builder().add_source(File::from_str(DEFAULT_CONFIG, FileFormat::Toml));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            builder = builder.add_source(File::from(file).format(FileFormat::Toml).required(true));
        }
        let mut env: config::Map<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("ENVOI__")).collect();
        // List settings are split here rather than by config-rs, which would first try to
        // parse each value as a number or a boolean (and, failing, quote it in the error).
        let mut lists = Vec::new();
        for (var, key) in LIST_SETTINGS {
            if let Some(value) = env.remove(var) {
                let items: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .map(str::to_owned)
                    .collect();
                lists.push((key, items));
            }
        }
        let from_env: Vec<String> = env
            .keys()
            .cloned()
            .chain(lists.iter().map(|(k, _)| k.to_string()))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("ENVOI")
                .prefix_separator("__")
                .separator("__")
                .source(Some(env)),
        );
        for (key, items) in lists {
            builder = builder.set_override(key, items).map_err(describe)?;
        }
        let config = builder.build().map_err(describe)?;
        let mut settings: Settings = config.try_deserialize().map_err(describe)?;
        if let Some(base) = file.and_then(Path::parent) {
            settings.rebase(base, &from_env);
        }
        Ok(settings)
    }

    /// Resolves relative paths that came from the `--config` file against its folder;
    /// paths from the environment stay relative to the working directory.
    fn rebase(&mut self, base: &Path, from_env: &[String]) {
        let from_file = |var: &str| !from_env.iter().any(|e| e == var || *e == env_key(var));
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

    /// The server's edges: limits, TLS, admin listener.
    pub fn edges(&self) -> Result<crate::startup::Edges, ConfigError> {
        let server = &self.server;
        let ms = Duration::from_millis;
        let limits = crate::startup::Limits {
            keep_alive: Duration::from_secs(server.keep_alive_seconds),
            request_timeout: ms(server.request_timeout_ms),
            disconnect_timeout: ms(server.disconnect_timeout_ms),
            tls_handshake_timeout: ms(server.tls_handshake_timeout_ms),
            max_connections: server.max_connections.max(1),
            max_tls_handshakes: server.max_tls_handshakes.max(1),
            max_tls_handshakes_per_address: server.max_tls_handshakes_per_address,
            backlog: server.backlog.max(1),
            max_header_bytes: server.max_header_bytes.max(1024),
        };
        let tls = match (&server.tls.cert, &server.tls.key) {
            (Some(cert), Some(key)) => {
                Some(
                    crate::tls::CertStore::load(cert, key).map_err(|e| ConfigError::Invalid {
                        key: "server.tls",
                        problem: e.to_string(),
                    })?,
                )
            }
            (None, None) => None,
            _ => return Err(ConfigError::Invalid {
                key: "server.tls",
                problem:
                    "give both server.tls.cert and server.tls.key (ENVOI__SERVER__TLS__CERT, ENVOI__SERVER__TLS__KEY)"
                        .into(),
            }),
        };
        Ok(crate::startup::Edges {
            limits,
            tls,
            admin_listen: server.admin_listen.clone(),
        })
    }

    /// The failed-authentication limiter, if `server.auth_failure_limit` is set.
    pub fn failure_limiter(&self) -> Result<Option<crate::http::limit::FailureLimiter>, ConfigError> {
        if self.server.auth_failure_limit == 0 {
            return Ok(None);
        }
        let exempt = self
            .server
            .auth_failure_exempt
            .iter()
            .map(|n| crate::http::limit::Network::parse(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|problem| ConfigError::Invalid {
                key: "server.auth_failure_exempt",
                problem,
            })?;
        Ok(Some(crate::http::limit::FailureLimiter::new(
            self.server.auth_failure_limit,
            exempt,
        )))
    }

    /// The Postgres URL: `store.url`, else `DATABASE_URL`.
    pub fn database_url(&self) -> Result<SecretString, ConfigError> {
        if let Some(url) = &self.store.url {
            return Ok(url.clone());
        }
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Ok(SecretString::from(url)),
            _ => Err(ConfigError::Invalid {
                key: "store.url",
                problem: "the Postgres store needs a URL: set store.url (ENVOI__STORE__URL) or DATABASE_URL".into(),
            }),
        }
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

/// The settings that hold lists, with the variable that sets each (comma-separated).
const LIST_SETTINGS: [(&str, &str); 5] = [
    ("ENVOI__AUTH__SECRETS", "auth.secrets"),
    ("ENVOI__AUTH__SECRET_FILES", "auth.secret_files"),
    ("ENVOI__SEAL__KEYS", "seal.keys"),
    ("ENVOI__SEAL__KEY_FILES", "seal.key_files"),
    ("ENVOI__SERVER__AUTH_FAILURE_EXEMPT", "server.auth_failure_exempt"),
];

/// The dotted key a variable sets: `ENVOI__STORE__PATH` → `store.path`.
fn env_key(var: &str) -> String {
    var.trim_start_matches("ENVOI__").replace("__", ".").to_lowercase()
}

/// Describes a configuration error without the offending value, which may be a secret.
fn describe(e: config::ConfigError) -> ConfigError {
    match e {
        config::ConfigError::Type {
            origin, expected, key, ..
        } => ConfigError::Load(format!(
            "setting `{}`{}: expected {expected}",
            key.unwrap_or_default(),
            origin.map(|o| format!(" (in {o})")).unwrap_or_default()
        )),
        config::ConfigError::At { error, origin, key } => ConfigError::Load(format!(
            "setting `{}`{}: {}",
            key.unwrap_or_default(),
            origin.map(|o| format!(" (in {o})")).unwrap_or_default(),
            describe(*error)
        )),
        other => ConfigError::Load(crate::redact::redact_values(&other.to_string())),
    }
}
