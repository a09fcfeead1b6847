//! Prometheus metrics. Each worker thread counts into its own [`WorkerMetrics`], so the
//! request path touches no shared cache line; a scrape adds the workers up. No label ever
//! carries a project or object name.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::AuthError;
use crate::store::PolicyHolder;

mod process;

/// Statuses counted by name; anything else goes to `other`.
const STATUSES: [u16; 10] = [200, 400, 401, 404, 405, 408, 413, 429, 431, 503];
/// Latency histogram bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
const REASONS: [AuthError; 11] = [
    AuthError::Missing,
    AuthError::NotBearer,
    AuthError::TooLarge,
    AuthError::Malformed,
    AuthError::BadHeader,
    AuthError::BadSignature,
    AuthError::BadClaims,
    AuthError::Expired,
    AuthError::NotYetValid,
    AuthError::TooLongLived,
    AuthError::RateLimited,
];

/// The routes counted apart, so that the protocol's error rate is not diluted by probes
/// and scrapes. The label's values are fixed: a path never becomes a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`, the protocol.
    Secrets,
    /// `/healthz` and `/readyz`.
    Health,
    /// `/metrics`.
    Metrics,
    /// Any other path (a `404`).
    Other,
}

impl Route {
    const ALL: [Route; 4] = [Route::Secrets, Route::Health, Route::Metrics, Route::Other];

    /// The route of a request path: a comparison of bytes, no allocation.
    pub fn of_path(path: &str) -> Self {
        match path {
            "/" => Self::Secrets,
            "/healthz" | "/readyz" => Self::Health,
            "/metrics" => Self::Metrics,
            _ => Self::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Secrets => "/",
            Self::Health => "health",
            Self::Metrics => "metrics",
            Self::Other => "other",
        }
    }
}

/// One route's counters in one worker.
#[derive(Debug, Default)]
struct RouteMetrics {
    statuses: [AtomicU64; STATUSES.len() + 1],
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

/// One worker's counters. Written by that worker only.
#[derive(Debug)]
pub struct WorkerMetrics {
    routes: [RouteMetrics; Route::ALL.len()],
    refusals: [AtomicU64; REASONS.len()],
    /// Per signing key, by position: tokens whose signature it verified (SPEC §6). Here
    /// rather than beside the keys, which both workers read on every request: one count
    /// they both wrote cost each request a cache miss on it and on the keys (perf,
    /// bench/README.md).
    verified: Box<[AtomicU64]>,
}

impl WorkerMetrics {
    fn new(keys: usize) -> Self {
        Self {
            routes: Default::default(),
            refusals: Default::default(),
            verified: (0..keys).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts a token whose signature the `key`-th signing key verified.
    pub fn token_verified(&self, key: usize) {
        if let Some(count) = self.verified.get(key) {
            count.fetch_add(1, Relaxed);
        }
    }

    /// Counts a finished request: relaxed atomic adds, no lock, no allocation.
    pub fn observe(&self, route: Route, status: u16, elapsed: Duration) {
        let counters = &self.routes[route as usize];
        let slot = STATUSES.iter().position(|s| *s == status).unwrap_or(STATUSES.len());
        counters.statuses[slot].fetch_add(1, Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|b| seconds <= *b) {
            counters.buckets[bucket].fetch_add(1, Relaxed);
        }
        counters.latency_count.fetch_add(1, Relaxed);
        counters
            .latency_sum_nanos
            .fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Counts a refused token by reason.
    pub fn token_refused(&self, reason: AuthError) {
        if let Some(slot) = REASONS.iter().position(|r| *r == reason) {
            self.refusals[slot].fetch_add(1, Relaxed);
        }
    }
}

/// All workers' counters and the process-wide ones.
#[derive(Debug)]
pub struct Registry {
    workers: Mutex<Vec<Arc<WorkerMetrics>>>,
    policy: Arc<PolicyHolder>,
    /// How many signing keys are configured.
    keys: usize,
    /// Requests refused for carrying a body (the protocol has none).
    pub bodies_refused: AtomicU64,
    /// TLS handshakes cut at the handshake timeout.
    pub tls_timeouts: AtomicU64,
    /// TLS handshakes closed to make room for newer ones (`server.max_tls_handshakes…`).
    pub tls_evictions: AtomicU64,
}

impl Registry {
    /// The registry of a server verifying tokens with `keys` signing keys.
    pub fn new(policy: Arc<PolicyHolder>, keys: usize) -> Self {
        Self {
            workers: Mutex::default(),
            policy,
            keys,
            bodies_refused: AtomicU64::new(0),
            tls_timeouts: AtomicU64::new(0),
            tls_evictions: AtomicU64::new(0),
        }
    }

    /// A fresh set of counters for one worker.
    pub fn worker(&self) -> Arc<WorkerMetrics> {
        let worker = Arc::new(WorkerMetrics::new(self.keys));
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(worker.clone());
        worker
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let sum = |f: &dyn Fn(&WorkerMetrics) -> u64| workers.iter().map(|w| f(w)).sum::<u64>();
        let mut out = String::with_capacity(16384);
        render_requests(&mut out, &workers);

        out.push_str("# HELP envoi_token_refusals_total Requests refused at authentication, by reason.\n# TYPE envoi_token_refusals_total counter\n");
        for (n, reason) in REASONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "envoi_token_refusals_total{{reason=\"{}\"}} {}",
                reason.reason(),
                sum(&|w| w.refusals[n].load(Relaxed))
            );
        }

        render_verifications(
            &mut out,
            (0..self.keys).map(|key| sum(&|w| w.verified[key].load(Relaxed))),
        );

        out.push_str("# HELP envoi_body_refusals_total Requests refused for carrying a body.\n# TYPE envoi_body_refusals_total counter\n");
        let _ = writeln!(out, "envoi_body_refusals_total {}", self.bodies_refused.load(Relaxed));
        out.push_str("# HELP envoi_tls_handshakes_cut_total TLS handshakes closed before they finished, by reason.\n# TYPE envoi_tls_handshakes_cut_total counter\n");
        for (reason, count) in [("timeout", &self.tls_timeouts), ("evicted", &self.tls_evictions)] {
            let _ = writeln!(
                out,
                "envoi_tls_handshakes_cut_total{{reason=\"{reason}\"}} {}",
                count.load(Relaxed)
            );
        }

        out.push_str("# HELP envoi_policy_loads_total Policy loads that succeeded: a policy swapped in, or a reload that found every file as it was.\n# TYPE envoi_policy_loads_total counter\n");
        let _ = writeln!(out, "envoi_policy_loads_total {}", self.policy.loads());
        out.push_str("# HELP envoi_policy_loads_unchanged_total Reloads that found every file holding the bytes the serving policy was compiled from, and kept it.\n# TYPE envoi_policy_loads_unchanged_total counter\n");
        let _ = writeln!(
            out,
            "envoi_policy_loads_unchanged_total {}",
            self.policy.unchanged_loads()
        );
        out.push_str("# HELP envoi_policy_load_failures_total Policy loads that failed; the last good policy kept serving.\n# TYPE envoi_policy_load_failures_total counter\n");
        let _ = writeln!(out, "envoi_policy_load_failures_total {}", self.policy.failures());
        out.push_str(
            "# HELP envoi_policy_ready Whether a policy snapshot is loaded.\n# TYPE envoi_policy_ready gauge\n",
        );
        let staleness = self.policy.staleness();
        let _ = writeln!(out, "envoi_policy_ready {}", u8::from(staleness.is_some()));
        render_freshness(&mut out, &self.policy);
        out.push_str("# HELP envoi_policy_source_up Whether the policy's source (the database) answered when last asked.\n# TYPE envoi_policy_source_up gauge\n");
        let _ = writeln!(
            out,
            "envoi_policy_source_up {}",
            u8::from(self.policy.source_reachable())
        );
        if let Some(snapshot) = self.policy.current().as_ref() {
            out.push_str("# HELP envoi_policy_grants Grants in the loaded policy.\n# TYPE envoi_policy_grants gauge\n");
            let _ = writeln!(out, "envoi_policy_grants {}", snapshot.policy.grant_count());
        }

        out.push_str("# HELP envoi_build_info Build information.\n# TYPE envoi_build_info gauge\n");
        let _ = writeln!(out, "envoi_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        process::render(&mut out);
        out
    }
}

/// `envoi_token_verifications_total{key="N"}`: tokens whose signature the N-th configured
/// signing key (from 0, in `auth.secrets` then `auth.secret_files` order) verified. A key
/// is named by its position only: its bytes, or a hash of them, never appear.
fn render_verifications(out: &mut String, counts: impl Iterator<Item = u64>) {
    out.push_str("# HELP envoi_token_verifications_total Tokens whose signature each signing key verified, by its position in the configured list.\n# TYPE envoi_token_verifications_total counter\n");
    for (position, count) in counts.enumerate() {
        let _ = writeln!(out, "envoi_token_verifications_total{{key=\"{position}\"}} {count}");
    }
}

/// `envoi_requests_total` and `envoi_request_duration_seconds`, by route.
fn render_requests(out: &mut String, workers: &[Arc<WorkerMetrics>]) {
    let sum = |f: &dyn Fn(&WorkerMetrics) -> u64| workers.iter().map(|w| f(w)).sum::<u64>();
    out.push_str(
        "# HELP envoi_requests_total HTTP requests answered, by route and status.\n# TYPE envoi_requests_total counter\n",
    );
    for route in Route::ALL {
        let at = route as usize;
        let label = route.label();
        for (n, status) in STATUSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "envoi_requests_total{{route=\"{label}\",status=\"{status}\"}} {}",
                sum(&|w| w.routes[at].statuses[n].load(Relaxed))
            );
        }
        let other = sum(&|w| w.routes[at].statuses[STATUSES.len()].load(Relaxed));
        let _ = writeln!(
            out,
            "envoi_requests_total{{route=\"{label}\",status=\"other\"}} {other}"
        );
    }

    out.push_str("# HELP envoi_request_duration_seconds Time to answer a request, by route.\n# TYPE envoi_request_duration_seconds histogram\n");
    for route in Route::ALL {
        let at = route as usize;
        let label = route.label();
        let mut cumulative = 0;
        for (n, bound) in BUCKETS.iter().enumerate() {
            cumulative += sum(&|w| w.routes[at].buckets[n].load(Relaxed));
            let _ = writeln!(
                out,
                "envoi_request_duration_seconds_bucket{{route=\"{label}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = sum(&|w| w.routes[at].latency_count.load(Relaxed));
        let _ = writeln!(
            out,
            "envoi_request_duration_seconds_bucket{{route=\"{label}\",le=\"+Inf\"}} {count}"
        );
        let nanos = sum(&|w| w.routes[at].latency_sum_nanos.load(Relaxed));
        let _ = writeln!(
            out,
            "envoi_request_duration_seconds_sum{{route=\"{label}\"}} {}",
            nanos as f64 / 1e9
        );
        let _ = writeln!(out, "envoi_request_duration_seconds_count{{route=\"{label}\"}} {count}");
    }
}

/// When the snapshot was last known current, as a timestamp (Prometheus' convention for
/// "last success": `time() - …` is its age), and its age; both absent before the first
/// snapshot, rather than a sentinel value.
fn render_freshness(out: &mut String, policy: &PolicyHolder) {
    let (Some(at), Some(age)) = (policy.fresh_at(), policy.staleness()) else {
        return;
    };
    out.push_str("# HELP envoi_policy_last_success_timestamp_seconds When the snapshot was last loaded or confirmed current against its source (Unix time).\n# TYPE envoi_policy_last_success_timestamp_seconds gauge\n");
    let _ = writeln!(out, "envoi_policy_last_success_timestamp_seconds {at}");
    out.push_str("# HELP envoi_policy_snapshot_age_seconds Time since the snapshot was last known current.\n# TYPE envoi_policy_snapshot_age_seconds gauge\n");
    let _ = writeln!(out, "envoi_policy_snapshot_age_seconds {}", age.as_secs_f64());
}
