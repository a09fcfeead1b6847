//! The built binary run as an operator runs it: in a scratch folder of its own, with an
//! environment cleaned of the test's own settings, its output kept for the assertions.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::jwt::SIGNING_KEY;

/// The binary under test.
pub const ENVOI: &str = env!("CARGO_BIN_EXE_envoi");

/// How long one command may run before it counts as a hang.
const COMMAND_LIMIT: Duration = Duration::from_secs(20);

/// The example policy that `serve --dev` serves, as checked in.
pub fn example_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-policy.toml")
}

/// A TOML basic string holding `text`.
pub fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A `std::process::Command` for the binary, run in `dir`, with a clean environment.
pub fn clean_command(dir: &Path) -> std::process::Command {
    clean_environment(std::process::Command::new(ENVOI), dir)
}

/// `cmd` run in `dir` without any `ENVOI…` variable or `DATABASE_URL` of the test's own
/// environment (a developer's shell, or CI, may have some set), and without colours.
pub fn clean_environment(mut cmd: std::process::Command, dir: &Path) -> std::process::Command {
    cmd.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("ENVOI") || text == "DATABASE_URL" {
            cmd.env_remove(name);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
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

    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `contents` to `relative` (creating folders) and returns the full path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.join(relative)).expect("read file")
    }

    /// Writes `relative` (a config file) naming [`SIGNING_KEY`], the policy path and the
    /// master key files (newest first), all relative to this folder.
    pub fn config_named(&self, relative: &str, policy: &str, key_files: &[&str]) -> PathBuf {
        let keys: Vec<String> = key_files.iter().map(|k| toml_string(k)).collect();
        self.write(
            relative,
            format!(
                "[auth]\nsecrets = [{}]\n\n[store]\npath = {}\n\n[seal]\nkey_files = [{}]\n",
                toml_string(SIGNING_KEY),
                toml_string(policy),
                keys.join(", ")
            ),
        )
    }

    /// `envoi.toml`, as [`Workspace::config_named`].
    pub fn config(&self, policy: &str, key_files: &[&str]) -> PathBuf {
        self.config_named("envoi.toml", policy, key_files)
    }

    /// Writes `envoi.toml` with the one signing key `key` and the policy at `policy`, and
    /// nothing else.
    pub fn config_with_key(&self, key: &str, policy: &Path) -> PathBuf {
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
        S: AsRef<OsStr>,
    {
        let mut cmd = assert_cmd::Command::from_std(clean_command(self.path()));
        cmd.args(args).timeout(COMMAND_LIMIT);
        cmd
    }

    /// `envoi ARGS` with `input` on standard input.
    pub fn run(&self, args: &[&str], input: &[u8]) -> Ran {
        let mut cmd = self.envoi(args);
        cmd.write_stdin(input.to_vec());
        Ran::of(cmd)
    }
}

/// What a finished command did, for assertions whose failure shows everything.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn of(mut cmd: impl std::borrow::BorrowMut<assert_cmd::Command>) -> Self {
        let out = cmd.borrow_mut().output().expect("envoi runs");
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success\n{self}");
        self
    }

    #[track_caller]
    pub fn failure(self) -> Self {
        assert!(
            matches!(self.code, Some(code) if code != 0),
            "expected a non-zero exit\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn stderr_names(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr should name `{needle}`\n{self}");
        self
    }

    #[track_caller]
    pub fn stdout_names(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout should contain `{needle}`\n{self}");
        self
    }

    /// Neither output contains `secret`.
    #[track_caller]
    pub fn never_shows(&self, secret: &str) -> &Self {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "`{secret}` must not be printed\n{self}"
        );
        self
    }

    /// The last non-empty line of standard output.
    #[track_caller]
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
