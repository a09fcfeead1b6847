//! `envoi serve` and `envoi serve --dev` as child processes: start-up checks, the
//! protocol answered over real HTTP, and shutdown on signals (SPEC §1, §4, §6).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{jwt, Ran, Server, Workspace};

const POLICY: &str = r#"
[secrets.db_password]
file = "db_password.txt"

[secrets.sentry_dsn]
env = "ENVOI_TEST_SERVE_DSN"

[[grants]]
name = "everyone"
project = "*"
env = { LOG_LEVEL = { value = "info" } }

[[grants]]
name = "billing-api"
project = "billing"
type = "service"
id = "api"
env = { SENTRY_DSN = "sentry_dsn", LOG_LEVEL = { value = "debug" } }

[[grants.files]]
path = "/etc/billing/db_password"
secret = "db_password"
mode = "0400"
owner = "1000"

[[grants.files]]
path = "/etc/billing/blob.bin"
file = "blob.bin"
group = { policy = "KeepOrSetInherited" }
"#;

const KEY: &str = "serve-test-shared-secret";
const DSN: &str = "https://public@sentry.example/42";

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("db_password.txt", "pw-from-file\n");
    ws.write("blob.bin", [0xff, 0x00, 0x01]);
    let policy = ws.write("policy.toml", POLICY);
    ws.config_with_key(KEY, &policy);
    ws
}

fn start(ws: &Workspace) -> Server {
    Server::start(
        ws.path(),
        &["serve", "--config", "envoi.toml"],
        &[("ENVOI_TEST_SERVE_DSN", DSN)],
    )
}

/// A token from `envoi token`, as a developer would make one.
fn token(ws: &Workspace, project: &str, kind: &str, id: &str) -> String {
    let ran = Ran::of(ws.envoi([
        "token",
        "--config",
        "envoi.toml",
        "--project",
        project,
        "--type",
        kind,
        "--id",
        id,
        "--ttl",
        "15m",
    ]))
    .success();
    ran.last_line().to_owned()
}

#[tokio::test]
async fn serve_answers_a_token_from_envoi_token_and_stops_with_status_0_on_sigterm() {
    let ws = workspace();
    let mut server = start(&ws);
    let token = token(&ws, "billing", "service", "api");

    let response = reqwest::Client::new()
        .get(format!("{}/", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", server.output());
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header("content-type").starts_with("application/json"));
    assert_eq!(header("cache-control"), "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"secrets": [
            {"type": "ENV", "key": "LOG_LEVEL", "value": "debug"},
            {"type": "ENV", "key": "SENTRY_DSN", "value": DSN},
            {"type": "FILE", "path": "/etc/billing/blob.bin", "data": "/wAB", "encoding": "base64",
             "group": {"policy": "KeepOrSetInherited"}},
            {"type": "FILE", "path": "/etc/billing/db_password", "data": "pw-from-file\n",
             "owner": {"policy": "AlwaysSetExplicit", "value": "1000"},
             "permissions": {"policy": "AlwaysSet", "mode": "0400"}},
        ]})
    );

    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean stop\n{}", server.output());
}

#[tokio::test]
async fn serve_answers_health_readiness_and_refusals() {
    let ws = workspace();
    let mut server = start(&ws);
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", server.base));

    assert_eq!(get("/healthz").send().await.unwrap().status(), 200);
    let ready = get("/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // A token signed with another key, and none at all.
    let now = jwt::now();
    let forged = jwt::sign("not-the-key", &jwt::claims("billing", "service", "api", now, now + 600));
    for request in [get("/").bearer_auth(&forged), get("/")] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers().get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        let body = response.text().await.unwrap();
        assert!(!body.contains(&forged) && !body.contains("billing"), "{body}");
    }

    // A token of our own making, with the right key, is as good as envoi's.
    let own = jwt::sign(KEY, &jwt::claims("web", "job", "nightly", now, now + 600));
    let response = get("/").bearer_auth(&own).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"secrets": [{"type": "ENV", "key": "LOG_LEVEL", "value": "info"}]})
    );

    let post = client.post(format!("{}/", server.base)).send().await.unwrap();
    assert_eq!(post.status(), 405);

    // Prometheus text, and no workload names as labels (SPEC §6).
    let metrics = get("/metrics").send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` sample\n{metrics}"))
    };
    // By route: the probes are counted apart, so the protocol's error rate is its own.
    // (The start-up's own readiness polls are probes too.)
    assert!(
        sample("envoi_requests_total{route=\"health\",status=\"200\"}") >= 2.0,
        "{metrics}"
    );
    for (name, want) in [
        ("envoi_requests_total{route=\"/\",status=\"200\"}", 1.0),
        ("envoi_requests_total{route=\"/\",status=\"401\"}", 2.0),
        ("envoi_requests_total{route=\"/\",status=\"405\"}", 1.0),
        ("envoi_request_duration_seconds_count{route=\"/\"}", 4.0),
    ] {
        assert_eq!(sample(name), want, "{name}\n{metrics}");
    }
    // A timestamp, not a sentinel; and the process's own metrics, read from /proc.
    let loaded_at = sample("envoi_policy_last_success_timestamp_seconds");
    assert!(
        (loaded_at - now as f64).abs() < 120.0,
        "{loaded_at} vs {now}\n{metrics}"
    );
    assert!(sample("process_resident_memory_bytes") > 1_000_000.0, "{metrics}");
    assert!(sample("process_open_fds") >= 3.0, "{metrics}");
    assert!(sample("process_start_time_seconds") > 1.0e9, "{metrics}");
    assert!(sample("process_cpu_seconds_total") >= 0.0, "{metrics}");
    for name in ["billing", "nightly", "\"web\"", "\"job\""] {
        assert!(!metrics.contains(name), "metrics name a workload ({name}):\n{metrics}");
    }

    assert_eq!(server.terminate().code(), Some(0), "{}", server.output());
}

#[test]
fn serve_refuses_to_start_without_a_signing_key_and_names_the_setting() {
    let ws = workspace();
    ws.write(
        "envoi.toml",
        format!(
            "[store]\npath = {}\n",
            crate::support::toml_string(&ws.path().join("policy.toml").display().to_string())
        ),
    );
    let ran = Ran::of(
        ws.envoi(["serve", "--config", "envoi.toml"])
            .env("ENVOI__SERVER__LISTEN", "127.0.0.1:0")
            .env("ENVOI_TEST_SERVE_DSN", DSN),
    )
    .failure();
    ran.stderr_names("auth.secrets").stderr_names("ENVOI__AUTH__SECRETS");
}

#[test]
fn serve_refuses_to_start_on_a_policy_that_does_not_load() {
    let ws = workspace();
    // ENVOI_TEST_SERVE_DSN is not set: the policy names a variable that does not exist.
    let ran = Ran::of(
        ws.envoi(["serve", "--config", "envoi.toml"])
            .env("ENVOI__SERVER__LISTEN", "127.0.0.1:0"),
    )
    .failure();
    ran.stderr_names("ENVOI_TEST_SERVE_DSN").stderr_names("sentry_dsn");
}

#[tokio::test]
async fn serve_dev_prints_a_curl_line_that_works() {
    let ws = Workspace::new();
    let server = Server::start(ws.path(), &["serve", "--dev"], &[]);

    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let stdout = server.stdout();
        if let Some(line) = stdout.lines().find(|l| l.contains("curl ")) {
            break line.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no curl line\n{}", server.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let token = line
        .split("Authorization: Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no `Authorization: Bearer TOKEN` in {line}"));
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line}"));
    assert_eq!(url, format!("http://127.0.0.1:{}/", server.port), "{line}");

    let client = reqwest::Client::new();
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", server.output());
    let body: Value = response.json().await.unwrap();
    let secrets = body["secrets"].as_array().unwrap_or_else(|| panic!("{body}"));
    assert!(!secrets.is_empty(), "the demo workload receives something: {body}");
    assert!(
        secrets.iter().all(|s| s["type"] == "ENV" || s["type"] == "FILE"),
        "{body}"
    );

    // The throwaway key is the only one: the token is needed.
    assert_eq!(client.get(url).send().await.unwrap().status(), 401);
}

/// GETs `/` for billing/service/api and returns its `LOG_LEVEL`.
async fn log_level(server: &Server) -> Option<String> {
    let now = jwt::now();
    let token = jwt::sign(KEY, &jwt::claims("billing", "service", "api", now, now + 600));
    let response = reqwest::Client::new()
        .get(format!("{}/", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    let secrets = body["secrets"].as_array()?;
    let item = secrets.iter().find(|s| s["key"] == "LOG_LEVEL")?;
    item["value"].as_str().map(str::to_owned)
}

/// Polls until `done` holds, or fails with `what` after a few seconds.
async fn eventually(server: &mut Server, what: &str, mut done: impl AsyncFnMut(&mut Server) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        assert!(
            server.is_running(),
            "envoi stopped while waiting for {what}\n{}",
            server.output()
        );
        if done(server).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sighup_does_not_stop_the_server() {
    let ws = workspace();
    let mut server = start(&ws);
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.is_running(), "SIGHUP stopped envoi\n{}", server.output());
    assert_eq!(
        log_level(&server).await.as_deref(),
        Some("debug"),
        "{}",
        server.output()
    );
    assert_eq!(server.terminate().code(), Some(0), "{}", server.output());
}

#[tokio::test]
async fn an_edited_policy_is_served_without_a_restart_and_a_broken_edit_keeps_the_last_good_one() {
    let ws = workspace();
    let mut server = start(&ws);
    assert_eq!(log_level(&server).await.as_deref(), Some("debug"));

    // A broken edit: the failure is logged, naming the problem, and the old policy serves.
    ws.write(
        "policy.toml",
        POLICY.replace("\"sentry_dsn\", LOG_LEVEL", "\"sentry_dsn_typo\", LOG_LEVEL"),
    );
    server.signal("HUP");
    eventually(&mut server, "the failed reload to be logged", async |s: &mut Server| {
        s.stderr().contains("sentry_dsn_typo")
    })
    .await;
    assert_eq!(
        log_level(&server).await.as_deref(),
        Some("debug"),
        "{}",
        server.output()
    );
    let ready = reqwest::get(format!("{}/readyz", server.base)).await.unwrap();
    assert_eq!(ready.status(), 200, "the last good policy is still loaded");

    // A good edit is picked up (by the file watch, or at the latest by SIGHUP).
    ws.write("policy.toml", POLICY.replace("value = \"debug\"", "value = \"trace\""));
    server.signal("HUP");
    eventually(&mut server, "the edited policy to be served", async |s: &mut Server| {
        log_level(s).await.as_deref() == Some("trace")
    })
    .await;
    assert_eq!(server.terminate().code(), Some(0), "{}", server.output());
}

/// Every `envoi_…` and `process_…` name in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("envoi_") || word.starts_with("process_"))
        .collect()
}

#[tokio::test]
async fn the_alert_rules_and_the_dashboard_use_only_metrics_that_envoi_exports() {
    let ws = workspace();
    let mut server = start(&ws);
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for file in ["deploy/prometheus-alerts.yml", "deploy/grafana-dashboard.json"] {
        let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        let used = metric_names(&text);
        assert!(used.len() >= 8, "{file} uses envoi's metrics: {used:?}");
        for name in used {
            assert!(
                exported.contains(name),
                "{file} uses `{name}`, which /metrics does not have:\n{metrics}"
            );
        }
    }
    let dashboard =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(
        dashboard["panels"].as_array().is_some_and(|p| p.len() >= 10),
        "{dashboard}"
    );
    assert_eq!(server.terminate().code(), Some(0), "{}", server.output());
}

#[tokio::test]
async fn with_an_admin_listener_metrics_move_off_the_main_port() {
    let ws = workspace();
    let admin_port = crate::support::free_port();
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let mut server = Server::start(
        ws.path(),
        &["serve", "--config", "envoi.toml"],
        &[
            ("ENVOI_TEST_SERVE_DSN", DSN),
            ("ENVOI__SERVER__ADMIN_LISTEN", &admin_listen),
        ],
    );
    let client = reqwest::Client::new();
    let admin = format!("http://{admin_listen}");
    let answered = |metrics: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with("envoi_requests_total{route=\"/\",status=\"200\"}"))
            .expect("a 200 counter");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let before = answered(
        &client
            .get(format!("{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let now = jwt::now();
    let token = jwt::sign(KEY, &jwt::claims("billing", "service", "api", now, now + 600));
    let served = client
        .get(format!("{}/", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);

    let main = client.get(format!("{}/metrics", server.base)).send().await.unwrap();
    assert_eq!(main.status(), 404, "/metrics stays off the main listener");
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            client.get(format!("{admin}{path}")).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    let metrics = client.get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    // The answer above is counted (scrapes of the admin listener are not), and the policy
    // is reported as loaded.
    assert_eq!(answered(&metrics), before + 1, "{metrics}");
    assert!(metrics.contains("envoi_policy_ready 1"), "{metrics}");
    assert!(!metrics.contains("billing"), "metrics name a workload:\n{metrics}");
    let secrets = client
        .get(format!("{admin}/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(secrets.status(), 404, "the admin listener serves no secrets");

    assert_eq!(server.terminate().code(), Some(0), "{}", server.output());
}
