//! The one serve assembly: settings, signing keys and a [`PolicySource`] become a
//! running server. `serve` on either store and `serve --dev` all go through
//! [`Assembly::new`] and [`Assembly::run`]; only the source differs.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{SigningKey, Verifier};
use crate::config::{ConfigError, Settings};
use crate::http::limit::FailureLimiter;
use crate::http::AppState;
use crate::startup::{Application, Edges, ServerOptions};
use crate::store::{Keeper, PolicyHolder, PolicySource};
use crate::tls::CertStore;

/// How often the TLS files are checked for a new certificate.
const CERT_CHECK: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(#[from] crate::store::source::SourceError),
    #[error("{0}")]
    Server(String),
}

/// Everything a server needs, built from the settings before it listens.
pub struct Assembly {
    pub state: AppState,
    pub options: ServerOptions,
    pub edges: Edges,
    keeper: Keeper,
}

impl Assembly {
    /// Loads what the source loads before serving (a TOML policy that does not load
    /// stops here), then builds the shared state and the server's edges.
    pub fn new(settings: &Settings, keys: &[SigningKey], source: PolicySource) -> Result<Self, ServeError> {
        // As `check` does: a bad address is named, never quoted.
        settings.check_listeners()?;
        let holder = Arc::new(PolicyHolder::new());
        let max_staleness = source.max_staleness();
        let keeper = source.start(&holder)?;
        let state = AppState::new(Verifier::new(keys, settings.token_rules()), holder)
            .with_max_staleness(max_staleness)
            .with_failure_limit(FailureLimiter::from_settings(&settings.server)?);
        Ok(Self {
            state,
            options: ServerOptions::from_settings(&settings.server),
            edges: Edges::from_settings(&settings.server)?,
            keeper,
        })
    }

    /// Plain HTTP on 127.0.0.1 at the configured port, without an admin listener: the
    /// local demo, whatever the configuration says.
    pub fn loopback_only(mut self) -> Self {
        let port = self
            .options
            .listen
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(8080);
        self.options.listen = format!("127.0.0.1:{port}");
        self.edges.tls = None;
        self.edges.admin_listen = None;
        self
    }

    /// Runs the server with the source's tasks beside it, SIGHUP handling and the
    /// certificate watch, until SIGTERM or SIGINT; the tasks are stopped inside the
    /// runtime, before it goes away. `on_bound` runs once the address is known.
    pub fn run(self, on_bound: impl FnOnce(std::net::SocketAddr) -> std::io::Result<()>) -> Result<(), ServeError> {
        let Self {
            state,
            options,
            edges,
            keeper,
        } = self;
        let mut keeper = keeper;
        let mut tasks = std::mem::take(&mut keeper.tasks);
        if let Some(certs) = edges.tls.clone() {
            tasks.push(Box::pin(certs.watch(CERT_CHECK)));
        }
        tasks.push(Box::pin(on_hangup(keeper, edges.tls.clone())));
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build_with(state, &options, &edges).map_err(|e| {
                let which = match edges.admin_listen {
                    Some(_) => "server.listen or server.admin_listen",
                    None => "server.listen",
                };
                ServeError::Server(format!("cannot listen on the address of {which}: {e}"))
            })?;
            let scheme = if edges.tls.is_some() { "https" } else { "http" };
            let admin = crate::telemetry::Optional(app.admin_address());
            tracing::info!(address = %app.address(), scheme, admin = ?admin, "listening");
            on_bound(app.address()).map_err(|e| ServeError::Server(e.to_string()))?;
            let tasks: Vec<_> = tasks.into_iter().map(actix_web::rt::spawn).collect();
            let result = app.run_until_stopped().await;
            for task in tasks {
                task.abort();
                let _ = task.await;
            }
            result.map_err(|e| ServeError::Server(format!("server failed: {e}")))?;
            tracing::info!("stopped");
            Ok(())
        })
    }
}

/// Holds SIGHUP back, on this thread and every thread it starts, until [`on_hangup`]
/// listens for it. Its default action ends the process: a SIGHUP sent while `serve` was
/// still loading a large policy (a config reloader, an operator) stopped the server
/// before it ever served. Held, it waits, and is then taken as a reload. Call it first,
/// before any thread starts (the log's, say): a signal goes to any thread that does not
/// hold it back.
pub fn hold_hangups() {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
    let hangup = SigSet::from(Signal::SIGHUP);
    if let Err(e) = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&hangup), None) {
        tracing::debug!("cannot hold SIGHUP back while starting: {e}");
    }
}

/// Lets SIGHUP through to this thread again, one held back included.
fn release_hangups() {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
    let hangup = SigSet::from(Signal::SIGHUP);
    if let Err(e) = pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&hangup), None) {
        tracing::error!("cannot listen for SIGHUP: {e}");
    }
}

/// SIGHUP reloads the policy where its source does and re-reads the TLS certificate,
/// as daemons do.
async fn on_hangup(keeper: Keeper, certs: Option<Arc<CertStore>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let listening = signal(SignalKind::hangup());
    // The handler is in place: a SIGHUP held back while starting arrives now. This task
    // runs on the thread that held it back (the server's own, `Assembly::run`'s).
    release_hangups();
    match listening {
        Ok(mut hangups) => {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading");
                keeper.hangup();
                if let Some(certs) = &certs {
                    if let Err(e) = certs.reload() {
                        tracing::error!("{e}; the current certificate keeps serving");
                    }
                }
            }
        }
        Err(e) => tracing::error!("cannot listen for SIGHUP: {e}"),
    }
}
