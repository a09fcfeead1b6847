//! envoi built in this process, by `Application::build_with` as `envoi serve` builds
//! it, on a free port: for the tests that hand it a compiled policy or chosen limits,
//! and that read what it logs. Requests go through reqwest or, byte for byte, through
//! [`raw_http`].

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoi::auth::{SigningKey, TokenRules, Verifier};
use envoi::http::limit::FailureLimiter;
use envoi::http::AppState;
use envoi::policy::Policy;
use envoi::startup::{Application, Edges, ServerOptions};
use envoi::store::PolicyHolder;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::Method;
use secrecy::SecretString;

use super::raw_http::{self, Outcome};

/// What the app is built with.
pub struct AppSpec {
    /// The signing keys, newest first.
    pub keys: Vec<String>,
    pub leeway_seconds: u64,
    pub max_lifetime_seconds: u64,
    /// The policy served; none: not loaded yet.
    pub policy: Option<Policy>,
    pub edges: Edges,
    pub failure_limit: Option<FailureLimiter>,
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub client: reqwest::Client,
    /// Runs the accept loop of a [`TestApp::start`]ed app; its workers have threads of
    /// their own.
    _runtime: Option<tokio::runtime::Runtime>,
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text, if present once or more (the first).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header value"))
    }
}

impl TestApp {
    /// Builds the app and runs it on the current runtime (a `#[tokio::test]`'s).
    pub async fn spawn(spec: AppSpec) -> Self {
        let keys: Vec<SigningKey> = spec
            .keys
            .iter()
            .map(|k| SigningKey::new(SecretString::from(k.clone())))
            .collect();
        let verifier = Verifier::new(
            &keys,
            TokenRules {
                leeway_seconds: spec.leeway_seconds,
                max_lifetime_seconds: spec.max_lifetime_seconds,
            },
        );
        let holder = match spec.policy {
            Some(policy) => PolicyHolder::with_policy(policy),
            None => PolicyHolder::new(),
        };
        let state = AppState::new(verifier, Arc::new(holder)).with_failure_limit(spec.failure_limit);
        let app = Application::build_with(
            state,
            &ServerOptions {
                listen: "127.0.0.1:0".into(),
                workers: 1,
                shutdown_timeout: Duration::from_secs(1),
            },
            &spec.edges,
        )
        .expect("the test server binds a free port");
        let addr = app.address();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client");
        Self {
            addr,
            address: format!("http://{addr}"),
            client,
            _runtime: None,
        }
    }

    /// Builds the app on a runtime of its own (for a `#[test]`) and waits until it
    /// answers `/healthz`.
    pub fn start(spec: AppSpec) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let mut app = runtime.block_on(Self::spawn(spec));
        app._runtime = Some(runtime);
        app.wait_healthy();
        app
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let request = b"GET /healthz HTTP/1.1\r\nHost: envoi.test\r\nConnection: close\r\n\r\n";
            if let Outcome::Answer(answer) = self.exchange(request) {
                if answer.status == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the test server never became healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // ---- Byte for byte, blocking ----

    /// A connection with 5 s timeouts.
    pub fn connect(&self) -> TcpStream {
        raw_http::connect(self.addr)
    }

    /// See [`raw_http::exchange`].
    pub fn exchange(&self, request: &[u8]) -> Outcome {
        raw_http::exchange(self.addr, request)
    }

    /// `GET /` with exactly these `Authorization` field values (raw bytes).
    pub fn get_with_authorization(&self, values: &[&[u8]]) -> Outcome {
        let mut request = b"GET / HTTP/1.1\r\nHost: envoi.test\r\n".to_vec();
        for value in values {
            request.extend_from_slice(b"Authorization: ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"Connection: close\r\n\r\n");
        self.exchange(&request)
    }

    pub fn get_bearer(&self, token: &str) -> Outcome {
        self.get_with_authorization(&[format!("Bearer {token}").as_bytes()])
    }

    // ---- Through reqwest ----

    /// `method path` with one `Authorization` header per entry of `authorization`.
    pub async fn request(&self, method: Method, path: &str, authorization: &[&str]) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.address));
        for value in authorization {
            request = request.header(AUTHORIZATION, *value);
        }
        let response = request.send().await.expect("the test server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("a whole body").to_vec();
        Reply { status, headers, body }
    }

    /// `GET /` with these `Authorization` header values (none, one or several).
    pub async fn get_root(&self, authorization: &[&str]) -> Reply {
        self.request(Method::GET, "/", authorization).await
    }

    /// `GET /` with `Authorization: Bearer <token>`.
    pub async fn get_secrets(&self, token: &str) -> Reply {
        self.get_root(&[&format!("Bearer {token}")]).await
    }
}
