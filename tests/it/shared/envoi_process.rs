//! What these tests share: a scratch folder, the binary run with a clean environment, an
//! HS256 token minter written independently of envoi, and a running server that is
//! killed when its guard drops.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use tempfile::TempDir;

pub use super::cli_run::*;

/// The binary under test.
pub const ENVOI: &str = env!("CARGO_BIN_EXE_envoi");

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

    /// Writes `relative` (a config file) naming the signing key, the policy path and
    /// the master key files (newest first), all relative to this folder.
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

    /// `envoi ARGS` run in this folder with a clean environment.
    pub fn envoi<I, S>(&self, args: I) -> assert_cmd::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = assert_cmd::Command::from_std(clean_command(self.path()));
        cmd.args(args).timeout(Duration::from_secs(20));
        cmd
    }

    /// `envoi ARGS` with `input` on standard input.
    pub fn run(&self, args: &[&str], input: &[u8]) -> Ran {
        let mut cmd = self.envoi(args);
        cmd.write_stdin(input.to_vec());
        Ran::of(cmd)
    }
}

/// A `std::process::Command` for the binary, run in `dir`, without any `ENVOI…`
/// variable of the test's own environment.
pub fn clean_command(dir: &Path) -> std::process::Command {
    clean_environment(std::process::Command::new(ENVOI), dir)
}

/// `cmd` run in `dir` without any `ENVOI…` variable of the test's own environment.
fn clean_environment(mut cmd: std::process::Command, dir: &Path) -> std::process::Command {
    cmd.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENVOI") {
            cmd.env_remove(name);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

// ---- A running server ----

/// How long a server may take to answer `/healthz`.
const PATIENCE: Duration = Duration::from_secs(15);

/// `envoi serve --config FILE` on a free port, logging JSON to a file; killed on drop.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    stderr: PathBuf,
    client: reqwest::Client,
    _output: TempDir,
}

impl Server {
    /// Starts the server in `dir` with `config` and waits until `/healthz` answers. A
    /// port taken between choosing and binding it is retried with another.
    pub async fn start(dir: &Path, config: &Path) -> Self {
        Self::start_on(dir, config, None).await
    }

    /// [`Server::start`], with the server and all its threads held to one CPU (`taskset`).
    pub async fn start_pinned(dir: &Path, config: &Path, cpu: usize) -> Self {
        Self::start_on(dir, config, Some(cpu)).await
    }

    async fn start_on(dir: &Path, config: &Path, cpu: Option<usize>) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let mut server = Self::spawn(dir, config, cpu);
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

    fn spawn(dir: &Path, config: &Path, cpu: Option<usize>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        let output = tempfile::tempdir().expect("a temporary folder");
        let stderr = output.path().join("stderr");
        let mut cmd = match cpu {
            None => clean_command(dir),
            Some(cpu) => {
                let mut taskset = std::process::Command::new("taskset");
                taskset.arg("-c").arg(cpu.to_string()).arg(ENVOI);
                clean_environment(taskset, dir)
            }
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("ENVOI__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("ENVOI__SERVER__WORKERS", "2")
            .env("ENVOI__LOG__FORMAT", "json")
            .env("ENVOI__LOG__LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let child = cmd.spawn().expect("envoi starts");
        Self {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            stderr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            _output: output,
        }
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("poll the child") {
                return Err(format!("it exited with {status}\n{}", self.diagnostics()));
            }
            if let Ok(response) = self.client.get(format!("{}/healthz", self.base)).send().await {
                if response.status() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "/healthz did not answer in {PATIENCE:?}\n{}",
                    self.diagnostics()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the server has not been reaped")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server has not been reaped").id()
    }

    /// Sends `signal` (such as `HUP`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child_mut().try_wait().expect("poll the child").is_none()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The log for a failure message: without the audit lines of answers served, the
    /// last 40 lines.
    pub fn diagnostics(&self) -> String {
        let text = self.stderr();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("\"secrets served\"")).collect();
        let skip = lines.len().saturating_sub(40);
        format!(
            "--- envoi's log (last lines, answers left out) ---\n{}",
            lines[skip..].join("\n")
        )
    }

    /// The JSON log lines written so far.
    pub fn logs(&self) -> Vec<Value> {
        self.stderr()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET /` with `token`: the status and the body.
    pub async fn get(&self, token: &str) -> (u16, String) {
        get(&self.client, &self.base, token).await
    }

    /// `GET /` for a workload: the status and the parsed body.
    pub async fn secrets(&self, project: &str, kind: &str, id: &str) -> (u16, Value) {
        let (status, body) = self.get(&token(project, kind, id)).await;
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        (status, json)
    }

    /// The status of `GET path`.
    pub async fn status_of(&self, path: &str) -> u16 {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the server answers")
            .status()
            .as_u16()
    }

    /// Polls `GET /` with `token` until the body is `want`, for at most `within`;
    /// returns how long it took, or panics with the last body seen.
    pub async fn wait_for_body(&self, token: &str, want: &str, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let (status, body) = self.get(token).await;
            if status == 200 && body == want {
                return started.elapsed();
            }
            if started.elapsed() > within {
                panic!(
                    "not served within {within:?}\nwanted: {want}\nlast:   {status} {body}\n{}",
                    self.diagnostics()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls the log until a line satisfies `matches`, for at most `within`.
    pub async fn wait_for_log(&self, within: Duration, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| matches(l)) {
                return line;
            }
            if started.elapsed() > within {
                panic!("no log line {what} within {within:?}\n{}", self.diagnostics());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Busy loops (`sh -c 'while :; do :; done'`), each held to one CPU, as on a shared
/// machine whose other tenants keep the cores busy; killed on drop.
pub struct BusyLoops(Vec<Child>);

impl BusyLoops {
    pub fn start(count: usize, cpu: Option<usize>) -> Self {
        let loops = (0..count)
            .map(|_| {
                let mut cmd = std::process::Command::new("taskset");
                match cpu {
                    Some(cpu) => cmd.arg("-c").arg(cpu.to_string()),
                    None => cmd.arg("-c").arg(format!("0-{}", last_cpu())),
                };
                cmd.args(["sh", "-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("start a busy loop")
            })
            .collect();
        Self(loops)
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The highest CPU number this process may run on.
pub fn last_cpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
}

/// `GET base/` with `token`: the status and the body.
pub async fn get(client: &reqwest::Client, base: &str, token: &str) -> (u16, String) {
    let response = client
        .get(format!("{base}/"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
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
