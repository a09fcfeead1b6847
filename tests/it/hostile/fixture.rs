//! What every hostile case shares: the keys, the policy and the answers a correct
//! server gives, tokens for it, the server itself (in this process, so that its log
//! lines can be captured), and that capture.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use envoi::http::limit::FailureLimiter;
use envoi::startup::Edges;
use serde_json::{json, Value};

use crate::support::app::AppSpec;
pub use crate::support::app::TestApp;
use crate::support::jwt;
pub use crate::support::jwt::{b64, mac, now, sign_bytes, signing_input, MacAlg, HS256};
pub use crate::support::raw_http::{contains, parse_answer, parse_answers, read_answer, read_some, Answer, Outcome};

// ---- Keys, policy and workloads: obviously fake, for these tests only. ----

/// The key every test server trusts first.
pub const KEY: &str = "hostile-test-key-current-0d5e9a";
/// The previous key of a rotation: trusted too.
pub const OLD_KEY: &str = "hostile-test-key-previous-77b1";
/// A key no test server trusts.
pub const STRANGER_KEY: &str = "hostile-test-key-of-a-stranger";

pub const LEEWAY: i64 = 30;
pub const MAX_LIFETIME: i64 = 7 * 24 * 3600;

/// Every secret value the policy holds. None may appear in an error answer, in a
/// response header or in a log line, ever.
pub const SECRET_VALUES: [&str; 4] = [
    "sk_live_HOSTILE_stripe_4242",
    "db-pass-HOSTILE-91ac",
    "shop-token-HOSTILE-5e3f",
    "admin-root-HOSTILE-c0de",
];

pub const POLICY: &str = r#"
[secrets.stripe_key]
value = "sk_live_HOSTILE_stripe_4242"

[secrets.db_password]
value = "db-pass-HOSTILE-91ac"

[secrets.shop_token]
value = "shop-token-HOSTILE-5e3f"

[secrets.admin_root]
value = "admin-root-HOSTILE-c0de"

[[grants]]
name = "billing-api"
project = "billing"
type = "service"
id = "api"
env = { STRIPE_KEY = "stripe_key" }

[[grants.files]]
path = "/etc/billing/db_password"
secret = "db_password"
mode = "0400"

[[grants]]
name = "shops"
project = "shop-*"
env = { SHOP_TOKEN = "shop_token", DB_URL = { template = "postgres://app@db/${projectId}" } }

[[grants]]
name = "admin"
project = "admin"
type = "job"
id = "root"
env = { ROOT = "admin_root" }
"#;

/// The workload most cases speak for, and what it receives.
pub const BILLING: [&str; 3] = ["billing", "service", "api"];

pub fn billing_answer() -> Value {
    json!({"secrets": [
        {"type": "ENV", "key": "STRIPE_KEY", "value": "sk_live_HOSTILE_stripe_4242"},
        {"type": "FILE", "path": "/etc/billing/db_password", "data": "db-pass-HOSTILE-91ac",
         "permissions": {"policy": "AlwaysSet", "mode": "0400"}},
    ]})
}

/// What a `shop-*` project receives: its name spliced into a template, as text.
pub fn shop_answer(project: &str) -> Value {
    json!({"secrets": [
        {"type": "ENV", "key": "DB_URL", "value": format!("postgres://app@db/{project}")},
        {"type": "ENV", "key": "SHOP_TOKEN", "value": "shop-token-HOSTILE-5e3f"},
    ]})
}

pub fn empty_answer() -> Value {
    json!({"secrets": []})
}

// ---- Tokens ----

/// Waits, if need be, until the clock is early in a second, so that a case whose
/// outcome hangs on one second cannot straddle a tick between minting and checking.
pub fn early_in_a_second() {
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .subsec_nanos();
        if nanos < 400_000_000 {
            return;
        }
        std::thread::sleep(Duration::from_nanos(u64::from(1_000_000_000 - nanos) + 1_000_000));
    }
}

/// A compact JWT of arbitrary header and claims text, HMAC-signed with `alg` and `key`
/// whatever the header says.
pub fn jwt_with(alg: MacAlg, key: &[u8], header: &str, claims: &str) -> String {
    sign_bytes(alg, key, header.as_bytes(), claims.as_bytes())
}

/// HS256 with [`KEY`].
pub fn jwt(header: &str, claims: &str) -> String {
    jwt_with(MacAlg::Sha256, KEY.as_bytes(), header, claims)
}

/// Claims for `[project, type, id]`, issued now, valid an hour, as JSON text.
pub fn claims_for(w: [&str; 3]) -> Value {
    let now = now();
    jwt::claims(w[0], w[1], w[2], now, now + 3600)
}

/// Claims of [`BILLING`] changed by `edit`.
pub fn claims_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut claims = claims_for(BILLING);
    edit(claims.as_object_mut().expect("an object"));
    claims.to_string()
}

/// A valid token for [`BILLING`].
pub fn good_token() -> String {
    jwt(HS256, &claims_for(BILLING).to_string())
}

pub fn token_for(w: [&str; 3]) -> String {
    jwt(HS256, &claims_for(w).to_string())
}

/// Splits a compact token into its segments.
pub fn segments(token: &str) -> Vec<&str> {
    token.split('.').collect()
}

// ---- Logs ----

/// Every log line of this process (the server runs in it), from the first server on.
pub fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        // Everything envoi and its HTTP stack log, at every level, in both formats'
        // source: the fields, not only the messages.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init();
        buffer
    })
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured logs as text.
pub fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

// ---- The server ----

/// A server trusting [`KEY`] and [`OLD_KEY`] with the default limits.
pub fn start_server() -> TestApp {
    start_server_with(LEEWAY as u64, &Edges::default())
}

pub fn start_server_with(leeway: u64, edges: &Edges) -> TestApp {
    start_server_limited(leeway, edges, None)
}

/// As [`start_server_with`], with a bound on failed authentications per address.
pub fn start_server_limited(leeway: u64, edges: &Edges, limiter: Option<FailureLimiter>) -> TestApp {
    logs();
    let policy = envoi::policy::load_str("hostile.toml", POLICY, None).expect("the test policy loads");
    TestApp::start(AppSpec {
        keys: vec![KEY.into(), OLD_KEY.into()],
        leeway_seconds: leeway,
        max_lifetime_seconds: MAX_LIFETIME as u64,
        policy: Some(policy),
        edges: edges.clone(),
        failure_limit: limiter,
    })
}
