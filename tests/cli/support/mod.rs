//! What the command-line tests share: a scratch folder per test, the binary with a clean
//! environment, a token minter and checker written independently of envoi's own code,
//! and a guard around a running server.

pub mod jwt;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::Output;

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

/// A TOML basic string holding `text`.
pub fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// What a finished command did, for assertions whose failure shows everything.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn of(mut cmd: impl std::borrow::BorrowMut<assert_cmd::Command>) -> Self {
        let Output { status, stdout, stderr } = cmd.borrow_mut().output().expect("envoi runs");
        Self {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success\n{self}");
        self
    }

    pub fn failure(self) -> Self {
        assert!(
            matches!(self.code, Some(code) if code != 0),
            "expected a non-zero exit\n{self}"
        );
        self
    }

    pub fn stderr_names(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr should name `{needle}`\n{self}");
        self
    }

    pub fn stdout_names(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout should contain `{needle}`\n{self}");
        self
    }

    /// Neither output contains `secret`.
    pub fn never_shows(&self, secret: &str) -> &Self {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "`{secret}` must not be printed\n{self}"
        );
        self
    }

    /// The last non-empty line of standard output.
    pub fn last_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("no output\n{self}"))
            .trim()
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}
