//! What the Postgres tests share: a scratch database per test (dropped by a guard, even
//! when the test fails), the binary run with a clean environment, an HS256 token minter
//! written independently of envoi, a tiny blocking HTTP client, a running server killed
//! when its guard drops, and a TCP proxy that can cut envoi off from the database or
//! silence it.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection as _;
use tempfile::TempDir;

pub use crate::shared::cli_run::*;

/// The binary under test.
pub const ENVOI: &str = env!("CARGO_BIN_EXE_envoi");

// ---- The database ----

/// Runs `work` on a runtime of its own, on a thread of its own, so that it works from
/// any context (a test, a `Drop` during a panic).
pub fn block_on<T, F, Fut>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(work())
    })
    .join()
    .expect("the database thread does not panic")
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    format!("{}/{database}{query}", &base[..path_start])
}

/// `url` with its host and port replaced by `address`.
pub fn with_address(url: &str, address: SocketAddr) -> String {
    let authority_start = url.find("://").map(|i| i + 3).expect("a URL with a scheme");
    let authority_end = url[authority_start..]
        .find(['/', '?'])
        .map(|i| authority_start + i)
        .unwrap_or(url.len());
    let authority = &url[authority_start..authority_end];
    let user = authority.rsplit_once('@').map(|(user, _)| format!("{user}@"));
    format!(
        "{}{}{address}{}",
        &url[..authority_start],
        user.unwrap_or_default(),
        &url[authority_end..]
    )
}

/// Whether a test that needs Postgres can run: `DATABASE_URL`, or a loud skip (a panic
/// when `ENVOI_REQUIRE_DATABASE=1`).
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("ENVOI_REQUIRE_DATABASE").is_ok_and(|v| v == "1") {
                panic!("{test}: DATABASE_URL is not set and ENVOI_REQUIRE_DATABASE=1");
            }
            // Straight to the process's stderr: `eprintln!` would be captured, and hidden,
            // by the test harness for a test that passes.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: DATABASE_URL is not set, so the Postgres test `{test}` did not run. \
                 Set DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres to run it. ***"
            );
            None
        }
    }
}

/// A database of its own for one test, dropped (WITH (FORCE)) when the guard drops.
pub struct Db {
    pub name: String,
    /// The URL of this test's database.
    pub url: String,
    admin_url: String,
}

impl Db {
    /// Creates `envoi_t_<random>`, or returns `None` (after a loud message) without
    /// `DATABASE_URL`.
    pub fn create(test: &str) -> Option<Self> {
        let admin_url = database_url(test)?;
        let name = format!("envoi_t_{:016x}", rand::random::<u64>());
        let db = Self {
            url: with_database(&admin_url, &name),
            name: name.clone(),
            admin_url: admin_url.clone(),
        };
        block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
            let _ = conn.close().await;
        });
        Some(db)
    }

    /// The host and port of the Postgres server, for the proxy.
    pub fn server_address(&self) -> SocketAddr {
        use sqlx::postgres::PgConnectOptions;
        let options: PgConnectOptions = self.admin_url.parse().expect("DATABASE_URL parses");
        let host = options.get_host().to_owned();
        let port = options.get_port();
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .expect("the database host resolves")
            .next()
            .expect("the database host has an address")
    }

    /// Runs one statement; its result as sqlx gives it.
    pub fn try_exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let result = sqlx::raw_sql(&sql).execute(&mut conn).await;
            let _ = conn.close().await;
            result.map(|done| done.rows_affected())
        })
    }

    #[track_caller]
    pub fn exec(&self, sql: &str) -> u64 {
        self.try_exec(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A query whose one column is text: its rows.
    #[track_caller]
    pub fn strings(&self, sql: &str) -> Vec<String> {
        let (url, query) = (self.url.clone(), sql.to_owned());
        block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let rows = sqlx::query_scalar::<_, String>(&query).fetch_all(&mut conn).await;
            let _ = conn.close().await;
            rows
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A query of one bigint.
    #[track_caller]
    pub fn int(&self, sql: &str) -> i64 {
        let (url, query) = (self.url.clone(), sql.to_owned());
        block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let value = sqlx::query_scalar::<_, i64>(&query).fetch_one(&mut conn).await;
            let _ = conn.close().await;
            value
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Terminates every other session on this test's database (envoi's pool and
    /// listener); returns how many.
    pub fn terminate_sessions(&self) -> usize {
        self.strings(&format!(
            "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ))
        .len()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let result = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(async move {
                    let mut conn = sqlx::PgConnection::connect(&admin_url)
                        .await
                        .map_err(|e| e.to_string())?;
                    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = conn.close().await;
                    dropped.map(|_| ())
                })
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: cannot drop test database {}: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

// ---- The command line ----

/// A scratch folder with a master key and a config for one database.
pub struct Env {
    dir: TempDir,
    pub db_url: String,
}

impl Env {
    /// A folder with `master.key` (made by `envoi keygen`) and `envoi.toml` on `db_url`.
    pub fn new(db_url: &str) -> Self {
        let env = Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
            db_url: db_url.to_owned(),
        };
        let keygen = env.run(&["keygen"], b"").success();
        env.write("master.key", format!("{}\n", keygen.last_line()));
        env.config("envoi.toml", db_url, "");
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `contents` to `relative` and returns the full path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(&path, contents).expect("write file");
        path
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
        let mut cmd = assert_cmd::Command::from_std(clean_command(self.path()));
        cmd.args(args)
            .envs(vars.iter().copied())
            .write_stdin(input.to_vec())
            .timeout(Duration::from_secs(30));
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
}

/// A `std::process::Command` for the binary, run in `dir`, without any `ENVOI…` variable
/// or `DATABASE_URL` of the test's own environment.
pub fn clean_command(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(ENVOI);
    cmd.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("ENVOI") || name_text == "DATABASE_URL" {
            cmd.env_remove(name);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// The body envoi gives for these ENV items (already in key order).
pub fn env_body(items: &[(&str, &str)]) -> Value {
    let secrets: Vec<Value> = items
        .iter()
        .map(|(key, value)| json!({"type": "ENV", "key": key, "value": value}))
        .collect();
    json!({ "secrets": secrets })
}

// ---- HTTP ----

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// `GET path` on `address`, with a bearer token when given; the whole exchange takes at
/// most `timeout`.
pub fn http_get(address: SocketAddr, path: &str, token: Option<&str>, timeout: Duration) -> std::io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_write_timeout(Some(timeout))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no full answer in time",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        let mut decoded = Vec::new();
        let mut rest = body.as_slice();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(|| bad("chunk"))?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .map_err(|_| bad("chunk size"))?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(rest.get(..size).ok_or_else(|| bad("short chunk"))?);
            rest = rest.get(size + 2..).ok_or_else(|| bad("short chunk"))?;
        }
        body = decoded;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// ---- A running server ----

/// How long a server may take to answer `/healthz`.
const PATIENCE: Duration = Duration::from_secs(15);

/// `envoi serve --config FILE` on a free port, logging to a file; killed on drop.
pub struct Server {
    child: Child,
    pub address: SocketAddr,
    log: PathBuf,
    _output: TempDir,
}

impl Server {
    /// Starts the server in `dir` with `config` and waits until `/healthz` answers (not
    /// until a policy loads). A port taken between choosing and binding is retried.
    pub fn start(dir: &Path, config: &Path) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let mut server = Self::spawn(dir, config);
            match server.wait_healthy() {
                Ok(()) => return server,
                Err(why) => {
                    last = why;
                    if !server.log().contains("cannot listen") {
                        break;
                    }
                }
            }
        }
        panic!("envoi serve did not start: {last}");
    }

    fn spawn(dir: &Path, config: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        let output = tempfile::tempdir().expect("a temporary folder");
        let log = output.path().join("stderr");
        let mut cmd = clean_command(dir);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("ENVOI__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("ENVOI__SERVER__WORKERS", "1")
            .env("ENVOI__SERVER__SHUTDOWN_TIMEOUT_SECONDS", "1")
            .env("ENVOI__LOG__LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"));
        let child = cmd.spawn().expect("envoi starts");
        Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _output: output,
        }
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return Err(format!("it exited with {status}\n{}", self.log()));
            }
            if let Ok(response) = http_get(self.address, "/healthz", None, Duration::from_secs(2)) {
                if response.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("/healthz did not answer in {PATIENCE:?}\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path`, with a 2 s limit; panics (with the log) if there is no answer.
    #[track_caller]
    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        http_get(self.address, path, token, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("GET {path}: no answer within 2 s: {e}\n--- log ---\n{}", self.log()))
    }

    /// `GET /` for the workload.
    #[track_caller]
    pub fn secrets(&self, project: &str, kind: &str, id: &str) -> Response {
        self.get("/", Some(&token(project, kind, id)))
    }

    /// The value of the first sample in `/metrics` whose name contains `needle`.
    #[track_caller]
    pub fn metric(&self, needle: &str) -> f64 {
        let metrics = self.get("/metrics", None);
        assert_eq!(metrics.status, 200, "{metrics:?}");
        metrics
            .body
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter(|line| line.split([' ', '{']).next().is_some_and(|name| name.contains(needle)))
            .find_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no `{needle}` sample in /metrics:\n{}", metrics.body))
    }

    /// Polls `GET /` for the workload every 50 ms until it answers 200 with `want`, for
    /// at most `within`; returns how long it took, or panics with the last answer.
    #[track_caller]
    pub fn wait_for(&self, workload: (&str, &str, &str), want: &Value, within: Duration) -> Duration {
        let started = Instant::now();
        let token = token(workload.0, workload.1, workload.2);
        loop {
            let answer = http_get(self.address, "/", Some(&token), Duration::from_secs(2));
            if let Ok(response) = &answer {
                if response.status == 200 && serde_json::from_str::<Value>(&response.body).ok().as_ref() == Some(want) {
                    return started.elapsed();
                }
            }
            if started.elapsed() > within {
                panic!(
                    "not served within {within:?}\nwanted: {want}\nlast:   {answer:?}\n--- log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `GET path` (with `token`) until its status is `status`, for at most `within`.
    #[track_caller]
    pub fn wait_for_status(&self, path: &str, token: Option<&str>, status: u16, within: Duration) -> Response {
        let started = Instant::now();
        loop {
            let answer = http_get(self.address, path, token, Duration::from_secs(2));
            match answer {
                Ok(response) if response.status == status => return response,
                _ if started.elapsed() > within => panic!(
                    "GET {path} did not answer {status} within {within:?}; last: {answer:?}\n--- log ---\n{}",
                    self.log()
                ),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- A proxy between envoi and the database ----

const UP: u8 = 0;
const DOWN: u8 = 1;
const SILENT: u8 = 2;

/// A TCP proxy to the database that can be taken down (new connections dropped at once,
/// open ones cut), silenced (every connection, open or new, held open with nothing
/// forwarded either way: a network that stops answering), and brought back up, either for
/// every connection (the network heals) or for new ones only (the silenced ones stay
/// silent for good, as behind a firewall or NAT that forgot them).
pub struct Proxy {
    pub address: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

struct ProxyShared {
    mode: AtomicU8,
    /// Connections accepted before this epoch were forgotten: they never forward again.
    epoch: AtomicU64,
    stop: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

impl ProxyShared {
    fn cut_all(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn keep(&self, stream: &TcpStream) {
        if let Ok(clone) = stream.try_clone() {
            self.open.lock().unwrap_or_else(|p| p.into_inner()).push(clone);
        }
    }

    /// Waits while a connection accepted in epoch `born` may not forward; `false` when it
    /// is to end instead.
    fn may_forward(&self, born: u64) -> bool {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            match self.mode.load(Ordering::SeqCst) {
                DOWN => return false,
                UP if born >= self.epoch.load(Ordering::SeqCst) => return true,
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

/// Copies `from` to `to` while the proxy lets connection `born` forward.
fn forward(mut from: TcpStream, mut to: TcpStream, born: u64, state: &ProxyShared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Silenced, the chunk read is held and nothing more is read: the sender's
        // writes pile up in the kernel's buffers, as on a network that went quiet.
        if !state.may_forward(born) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Proxy {
    /// A proxy to `upstream` on a free local port, up or down.
    pub fn start(upstream: SocketAddr, up: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(ProxyShared {
            mode: AtomicU8::new(if up { UP } else { DOWN }),
            epoch: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let state = shared.clone();
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if state.mode.load(Ordering::SeqCst) == DOWN {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let born = state.epoch.load(Ordering::SeqCst);
                state.keep(&client);
                let state = state.clone();
                // Silenced, a new connection is accepted and held, its upstream not yet made.
                std::thread::spawn(move || {
                    if !state.may_forward(born) {
                        let _ = client.shutdown(Shutdown::Both);
                        return;
                    }
                    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
                        let _ = client.shutdown(Shutdown::Both);
                        return;
                    };
                    state.keep(&server);
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    for (from, to) in [(&client, &server), (&server, &client)] {
                        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                            continue;
                        };
                        let state = state.clone();
                        std::thread::spawn(move || forward(from, to, born, &state));
                    }
                });
            }
        });
        Self {
            address,
            shared,
            accept: Some(accept),
        }
    }

    /// Refuses new connections and cuts the open ones.
    pub fn down(&self) {
        self.shared.mode.store(DOWN, Ordering::SeqCst);
        self.shared.cut_all();
    }

    /// Stops forwarding anything, on open connections and on new ones, which are accepted
    /// and held: nothing is refused or cut, nothing answers.
    pub fn silence(&self) {
        self.shared.mode.store(SILENT, Ordering::SeqCst);
    }

    /// Accepts and forwards connections again, the held ones included.
    pub fn up(&self) {
        self.shared.mode.store(UP, Ordering::SeqCst);
    }

    /// Accepts and forwards new connections again; those open until now stay silent.
    pub fn up_for_new_connections(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        self.shared.mode.store(UP, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.mode.store(DOWN, Ordering::SeqCst);
        self.shared.cut_all();
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
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
