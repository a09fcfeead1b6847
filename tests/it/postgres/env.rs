//! A scratch folder holding a master key and configs for one database, with the binary
//! run in it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::jwt::SIGNING_KEY;
use crate::support::{toml_string, Ran, Server, Workspace};

/// A scratch folder with a master key and a config for one database.
pub struct Env {
    ws: Workspace,
}

/// How long one command may run: longer than elsewhere, as it may wait on the database.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

impl Env {
    /// A folder with `master.key` (made by `envoi keygen`) and `envoi.toml` on `db_url`.
    pub fn new(db_url: &str) -> Self {
        let env = Self { ws: Workspace::new() };
        let keygen = env.run(&["keygen"], b"").success();
        env.write("master.key", format!("{}\n", keygen.last_line()));
        env.config("envoi.toml", db_url, "");
        env
    }

    pub fn path(&self) -> &Path {
        self.ws.path()
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.ws.join(relative)
    }

    /// Writes `contents` to `relative` and returns the full path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        self.ws.write(relative, contents)
    }

    /// Writes a Postgres config named `relative` for `url`, with `store_extra` lines
    /// added to its `[store]` table.
    pub fn config(&self, relative: &str, url: &str, store_extra: &str) -> PathBuf {
        self.write(
            relative,
            format!(
                "[auth]\nsecrets = [{}]\n\n[store]\nkind = \"postgres\"\nurl = {}\n{store_extra}\n\n\
                 [seal]\nkey_files = [\"master.key\"]\n",
                toml_string(SIGNING_KEY),
                toml_string(url),
            ),
        )
    }

    /// Writes a TOML-store config named `relative` on the policy `policy`.
    pub fn toml_config(&self, relative: &str, policy: &str) -> PathBuf {
        self.write(
            relative,
            format!(
                "[auth]\nsecrets = [{}]\n\n[store]\nkind = \"toml\"\npath = {}\n\n[seal]\nkey_files = [\"master.key\"]\n",
                toml_string(SIGNING_KEY),
                toml_string(policy),
            ),
        )
    }

    /// `envoi ARGS` in this folder, with a clean environment and `input` on stdin.
    pub fn run(&self, args: &[&str], input: &[u8]) -> Ran {
        self.run_with(args, input, &[])
    }

    /// As [`Env::run`], with extra environment variables.
    pub fn run_with(&self, args: &[&str], input: &[u8], vars: &[(&str, &str)]) -> Ran {
        let mut cmd = self.ws.envoi(args);
        cmd.envs(vars.iter().copied())
            .write_stdin(input.to_vec())
            .timeout(COMMAND_LIMIT);
        Ran::of(cmd)
    }

    /// `envoi --config envoi.toml ARGS`.
    pub fn envoi(&self, args: &[&str], input: &[u8]) -> Ran {
        let mut all = vec!["--config", "envoi.toml"];
        all.extend_from_slice(args);
        self.run(&all, input)
    }

    /// Stores `value` for `name` with `secret put` (from stdin).
    #[track_caller]
    pub fn put(&self, name: &str, value: &str) -> Ran {
        self.envoi(&["secret", "put", name], value.as_bytes()).success()
    }

    /// `envoi serve --config CONFIG` (a file in this folder) with one worker, a 1 s
    /// shutdown timeout and `info` logs, once `/healthz` answers (not once a policy loads).
    pub fn serve(&self, config: &str) -> Server {
        Server::launch(self.path())
            .args(["serve", "--config"])
            .arg(self.join(config))
            .env("ENVOI__SERVER__SHUTDOWN_TIMEOUT_SECONDS", "1")
            .env("ENVOI__LOG__LEVEL", "info")
            .start()
    }
}

/// The body envoi gives for these ENV items (already in key order).
pub fn env_body(items: &[(&str, &str)]) -> Value {
    let secrets: Vec<Value> = items
        .iter()
        .map(|(key, value)| json!({"type": "ENV", "key": key, "value": value}))
        .collect();
    json!({ "secrets": secrets })
}
