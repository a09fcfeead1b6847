//! `envoi serve` as a child process on a free port, killed when the guard drops.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to answer `/healthz`, or to stop after SIGTERM.
const PATIENCE: Duration = Duration::from_secs(15);

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    stdout: PathBuf,
    stderr: PathBuf,
    _output: TempDir,
}

impl Server {
    /// Runs `envoi ARGS` in `dir` with `env` added and `ENVOI__SERVER__LISTEN` set to a
    /// free port, and waits until `/healthz` answers. A port taken between choosing and
    /// binding it is retried with another.
    pub async fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, OsStr::new(v))).collect();
        Self::start_with(dir, args, &env).await
    }

    /// As [`Server::start`], with values that need not be UTF-8.
    pub async fn start_with(dir: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let mut server = Self::spawn(dir, args, env);
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(why) => {
                    last = why;
                    if !server.stderr().contains("cannot listen") {
                        break;
                    }
                }
            }
        }
        panic!("envoi serve did not start: {last}");
    }

    fn spawn(dir: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Self {
        let port = super::free_port();
        let output = tempfile::tempdir().expect("a temporary folder");
        let stdout = output.path().join("stdout");
        let stderr = output.path().join("stderr");
        let mut cmd = super::clean_command(dir);
        cmd.args(args)
            .env("ENVOI__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("ENVOI__SERVER__WORKERS", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let child = cmd.spawn().expect("envoi starts");
        Self {
            child: Some(child),
            port,
            base: format!("http://127.0.0.1:{port}"),
            stdout,
            stderr,
            _output: output,
        }
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("poll the child") {
                return Err(format!("it exited with {status}\n{}", self.output()));
            }
            if let Ok(response) = client.get(format!("{}/healthz", self.base)).send().await {
                if response.status() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("/healthz did not answer in {PATIENCE:?}\n{}", self.output()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the server has not been reaped")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server has not been reaped").id()
    }

    /// Sends `signal` (such as `TERM`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Sends SIGTERM and waits for the process to end.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("poll the child") {
                return status;
            }
            if Instant::now() > deadline {
                panic!("envoi did not stop within {PATIENCE:?} of SIGTERM\n{}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child_mut().try_wait().expect("poll the child").is_none()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Both outputs, labelled, for failure messages.
    pub fn output(&self) -> String {
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout(), self.stderr())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
