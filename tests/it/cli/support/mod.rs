//! What the command-line tests share: a scratch folder per test, the binary with a clean
//! environment, a token minter and checker written independently of envoi's own code,
//! and a guard around a running server.

pub mod jwt;
pub mod server;

pub use crate::shared::cli_run::{toml_string, Ran};

use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub use server::Server;

/// The binary under test.
pub const ENVOI: &str = env!("CARGO_BIN_EXE_envoi");

/// The example policy that `serve --dev` serves, as checked in.
pub fn example_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-policy.toml")
}

/// A scratch folder, removed when the test ends.
pub struct Workspace {
    dir: TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `relative` (creating folders) and returns the full path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Writes `envoi.toml` with one signing key and the given policy path.
    pub fn config(&self, key: &str, policy: &Path) -> PathBuf {
        self.write(
            "envoi.toml",
            format!(
                "[auth]\nsecrets = [{}]\n\n[store]\npath = {}\n",
                toml_string(key),
                toml_string(&policy.display().to_string())
            ),
        )
    }

    /// `envoi ARGS` run in this folder with a clean environment.
    pub fn envoi<I, S>(&self, args: I) -> assert_cmd::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = assert_cmd::Command::from_std(clean_command(self.path()));
        cmd.args(args).timeout(std::time::Duration::from_secs(20));
        cmd
    }
}

/// A `std::process::Command` for the binary, run in `dir`, without any `ENVOI…` variable
/// of the test's own environment (a developer's shell may have some set).
pub fn clean_command(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(ENVOI);
    cmd.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENVOI") {
            cmd.env_remove(name);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}
