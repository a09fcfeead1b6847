//! What these tests share: a scratch folder, the binary run with a clean environment, an
//! HS256 token minter written independently of envoi, and a running server that is
//! killed when its guard drops.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tempfile::TempDir;

/// The binary under test.
pub const ENVOI: &str = env!("CARGO_BIN_EXE_envoi");

/// The signing key every test server shares with its "platform".
pub const SIGNING_KEY: &str = "test-signing-key-0123456789abcdef";

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
    pub fn of(mut cmd: assert_cmd::Command) -> Self {
        let out = cmd.output().expect("envoi runs");
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

// ---- Tokens ----

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A compact HS256 JWT over `claims`, keyed with the UTF-8 bytes of `key`.
pub fn sign(key: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{claims}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// A token for the workload, valid for an hour, signed with [`SIGNING_KEY`].
pub fn token(project: &str, kind: &str, id: &str) -> String {
    let now = now();
    sign(
        SIGNING_KEY,
        &json!({"projectId": project, "nfObjectType": kind, "nfObjectId": id, "iat": now, "exp": now + 3600}),
    )
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
        let mut last = String::new();
        for _ in 0..3 {
            let mut server = Self::spawn(dir, config);
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

    fn spawn(dir: &Path, config: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        let output = tempfile::tempdir().expect("a temporary folder");
        let stderr = output.path().join("stderr");
        let mut cmd = clean_command(dir);
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
