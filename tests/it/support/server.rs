//! The one server guard: `envoi` run as a child process on a free port, its standard
//! output and error kept in files, killed when the guard drops. A start waits for an
//! event (`/healthz` answering), never for a guessed time.
//!
//! Requests to it come in two kinds: `async` ones through reqwest for `#[tokio::test]`s,
//! and `blocking_*` ones over a plain `TcpStream` for `#[test]`s, which have no runtime.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::jwt::token;
use super::raw_http::{self, Answer};
use super::workspace::{clean_command, clean_environment, free_port, ENVOI};

/// How long a server may take to answer `/healthz`, or to stop after SIGTERM.
const PATIENCE: Duration = Duration::from_secs(15);

/// How long one blocking request may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(2);

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    stdout: PathBuf,
    stderr: PathBuf,
    client: OnceLock<reqwest::Client>,
    _output: TempDir,
}

/// Says whether a server that has not exited yet is ready.
type Ready<'a> = dyn Fn(&Server) -> bool + 'a;

/// What to run: `envoi ARGS` in a folder, with variables added, perhaps held to one CPU,
/// and what says it is ready.
pub struct Launch<'a> {
    dir: &'a Path,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cpu: Option<usize>,
    ready: Option<Box<Ready<'a>>>,
}

impl<'a> Launch<'a> {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(self, args: impl IntoIterator<Item = S>) -> Self {
        args.into_iter().fold(self, Self::arg)
    }

    /// Adds a variable, over the defaults (`ENVOI__SERVER__WORKERS=1`).
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((name.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(self, vars: impl IntoIterator<Item = (K, V)>) -> Self {
        vars.into_iter().fold(self, |launch, (k, v)| launch.env(k, v))
    }

    /// The server and all its threads held to one CPU (`taskset`).
    pub fn pinned(mut self, cpu: usize) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// What says the server is ready, instead of `/healthz` answering 200 over plain
    /// HTTP (a server that speaks only TLS, say).
    pub fn ready_when(mut self, ready: impl Fn(&Server) -> bool + 'a) -> Self {
        self.ready = Some(Box::new(ready));
        self
    }

    /// Starts the server with `ENVOI__SERVER__LISTEN` set to a free port and waits until
    /// it is ready: `/healthz` answers (not until a policy loads). A port taken between
    /// choosing and binding it is retried with another.
    pub fn start(self) -> Server {
        let mut last = String::new();
        for _ in 0..3 {
            let mut server = self.spawn();
            match server.wait_ready(self.ready.as_deref()) {
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

    fn spawn(&self) -> Server {
        let port = free_port();
        let output = tempfile::tempdir().expect("a temporary folder");
        let stdout = output.path().join("stdout");
        let stderr = output.path().join("stderr");
        let mut cmd = match self.cpu {
            None => clean_command(self.dir),
            Some(cpu) => {
                let mut taskset = std::process::Command::new("taskset");
                taskset.arg("-c").arg(cpu.to_string()).arg(ENVOI);
                clean_environment(taskset, self.dir)
            }
        };
        cmd.args(&self.args)
            .env("ENVOI__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("ENVOI__SERVER__WORKERS", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let child = cmd.spawn().expect("envoi starts");
        Server {
            child: Some(child),
            port,
            base: format!("http://127.0.0.1:{port}"),
            stdout,
            stderr,
            client: OnceLock::new(),
            _output: output,
        }
    }
}

impl Server {
    /// `envoi` run in `dir`, once [`Launch`] is told what to run.
    pub fn launch(dir: &Path) -> Launch<'_> {
        Launch {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            cpu: None,
            ready: None,
        }
    }

    /// `envoi ARGS` in `dir` with `env` added; see [`Launch::start`].
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(dir).args(args).envs(env.iter().copied()).start()
    }

    /// As [`Server::start`], with values that need not be UTF-8.
    pub fn start_with(dir: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Self {
        Self::launch(dir).args(args).envs(env.iter().copied()).start()
    }

    /// `envoi serve --config CONFIG` in `dir` with two workers, logging JSON lines at
    /// `info`, which [`Server::logs`] reads.
    pub fn serve(dir: &Path, config: &Path) -> Self {
        Self::serve_launch(dir, config).start()
    }

    /// [`Server::serve`], with the server and all its threads held to one CPU.
    pub fn serve_pinned(dir: &Path, config: &Path, cpu: usize) -> Self {
        Self::serve_launch(dir, config).pinned(cpu).start()
    }

    fn serve_launch<'a>(dir: &'a Path, config: &Path) -> Launch<'a> {
        Self::launch(dir)
            .args(["serve", "--config"])
            .arg(config)
            .env("ENVOI__SERVER__WORKERS", "2")
            .env("ENVOI__LOG__FORMAT", "json")
            .env("ENVOI__LOG__LEVEL", "info")
    }

    fn wait_ready(&mut self, ready: Option<&Ready<'_>>) -> Result<(), String> {
        let healthy = |server: &Server| {
            raw_http::get(server.address(), "/healthz", None, REQUEST_LIMIT).is_ok_and(|answer| answer.status == 200)
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("poll the child") {
                return Err(format!("it exited with {status}\n{}", self.output()));
            }
            if ready.map_or_else(|| healthy(self), |ready| ready(self)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("it was not ready within {PATIENCE:?}\n{}", self.output()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the server has not been reaped")
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server has not been reaped").id()
    }

    /// Sends `signal` (such as `HUP` or `TERM`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Sends SIGTERM and waits for the process to end.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("poll the child") {
                return status;
            }
            if Instant::now() > deadline {
                panic!("envoi did not stop within {PATIENCE:?} of SIGTERM\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child_mut().try_wait().expect("poll the child").is_none()
    }

    // ---- What it wrote ----

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

    // ---- Requests from a `#[tokio::test]` ----

    /// A client with a 10 s timeout, made on first use.
    pub fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client")
        })
    }

    /// `GET /` with `token`: the status and the body.
    pub async fn get(&self, token: &str) -> (u16, String) {
        let response = self
            .client()
            .get(format!("{}/", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// `GET /` for a workload (a token signed with the shared test key): the status and
    /// the parsed body.
    pub async fn secrets(&self, project: &str, kind: &str, id: &str) -> (u16, Value) {
        let (status, body) = self.get(&token(project, kind, id)).await;
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        (status, json)
    }

    /// The status of `GET path`.
    pub async fn status_of(&self, path: &str) -> u16 {
        self.client()
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

    // ---- Requests from a `#[test]` ----

    /// `GET path`, with a 2 s limit; panics (with the log) if there is no answer.
    #[track_caller]
    pub fn blocking_get(&self, path: &str, token: Option<&str>) -> Answer {
        raw_http::get(self.address(), path, token, REQUEST_LIMIT).unwrap_or_else(|e| {
            panic!(
                "GET {path}: no answer within {REQUEST_LIMIT:?}: {e}\n--- log ---\n{}",
                self.stderr()
            )
        })
    }

    /// `GET /` for the workload (a token signed with the shared test key).
    #[track_caller]
    pub fn blocking_secrets(&self, project: &str, kind: &str, id: &str) -> Answer {
        self.blocking_get("/", Some(&token(project, kind, id)))
    }

    /// The value of the first sample in `/metrics` whose name contains `needle`.
    #[track_caller]
    pub fn blocking_metric(&self, needle: &str) -> f64 {
        let metrics = self.blocking_get("/metrics", None);
        assert_eq!(metrics.status, 200, "{metrics:?}");
        let body = metrics.body_text();
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .filter(|line| line.split([' ', '{']).next().is_some_and(|name| name.contains(needle)))
            .find_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no `{needle}` sample in /metrics:\n{body}"))
    }

    /// Polls `GET /` for the workload every 50 ms until it answers 200 with `want`, for
    /// at most `within`; returns how long it took, or panics with the last answer.
    #[track_caller]
    pub fn blocking_wait_for(&self, workload: (&str, &str, &str), want: &Value, within: Duration) -> Duration {
        let started = Instant::now();
        let token = token(workload.0, workload.1, workload.2);
        loop {
            let answer = raw_http::get(self.address(), "/", Some(&token), REQUEST_LIMIT);
            if let Ok(response) = &answer {
                if response.status == 200 && serde_json::from_slice::<Value>(&response.body).ok().as_ref() == Some(want)
                {
                    return started.elapsed();
                }
            }
            if started.elapsed() > within {
                panic!(
                    "not served within {within:?}\nwanted: {want}\nlast:   {answer:?}\n--- log ---\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `GET path` (with `token`) until its status is `status`, for at most `within`.
    #[track_caller]
    pub fn blocking_wait_for_status(&self, path: &str, token: Option<&str>, status: u16, within: Duration) -> Answer {
        let started = Instant::now();
        loop {
            let answer = raw_http::get(self.address(), path, token, REQUEST_LIMIT);
            match answer {
                Ok(response) if response.status == status => return response,
                _ if started.elapsed() > within => panic!(
                    "GET {path} did not answer {status} within {within:?}; last: {answer:?}\n--- log ---\n{}",
                    self.stderr()
                ),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
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

/// Calls `ready` every 50 ms until it says yes, for at most `within`: how long that took.
pub fn poll_until(within: Duration, mut ready: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if ready() {
            return Some(started.elapsed());
        }
        if started.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
