//! Micro-benchmarks of the request path: token verification, policy lookup, answer
//! serialisation, the whole `GET /` handler without the network, and policy compilation.
//!
//! Policies are the shape `bench/gen_policy.py` writes (see `bench/policy.rs`), for 10,
//! 10,000 and 100,000 workloads, each built once on first use and shared by the groups.
//!
//! Run: `cargo bench --bench request_path` (add `-- policy/answer` to pick groups).
//! `ENVOI_BENCH_LOAD_100K=1` adds `policy/load/100000` (about 1.5 s an iteration).

#[path = "policy.rs"]
mod policy;

use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{http::StatusCode, test, web, App};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use secrecy::SecretString;

use envoi::auth::{mint_token, SigningKey, TokenRules, Verifier, Workload};
use envoi::http::AppState;
use envoi::policy::Policy;
use envoi::store::{PolicyHolder, Snapshot};

/// Fleet sizes of the groups where the policy matters.
const SIZES: [usize; 3] = [10, 10_000, 100_000];

const KEY: &str = "bench-shared-secret";
const OLD_KEY: &str = "bench-retired-secret";
const RULES: TokenRules = TokenRules {
    leeway_seconds: 30,
    max_lifetime_seconds: 24 * 3600,
};

fn key(secret: &str) -> SigningKey {
    SigningKey::new(SecretString::from(secret.to_owned()))
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit i64")
}

/// A workload with an exact grant (with a claims template and a FILE), its project's
/// grant and all three fleet-wide globs: `proj-0/job/worker-0`.
fn exact_workload(n: usize) -> Workload {
    let (project, kind, id) = policy::workload(n, 0);
    Workload::new(&project, kind, &id).expect("valid claims")
}

/// A workload of no known project: only the fleet-wide globs (`everyone`, `jobs`,
/// `workers`) match, and every item is static.
fn globs_only_workload() -> Workload {
    Workload::new("proj-unknown", "job", "worker-unknown").expect("valid claims")
}

/// The compiled policy for a fleet of `n`, installed in a holder the handler shares.
struct Fixture {
    holder: Arc<PolicyHolder>,
    snapshot: Arc<Snapshot>,
}

impl Fixture {
    fn policy(&self) -> &Policy {
        &self.snapshot.policy
    }
}

fn fixture(n: usize) -> &'static Fixture {
    static FIXTURES: [OnceLock<Fixture>; SIZES.len()] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = SIZES.iter().position(|&s| s == n).expect("a benchmarked size");
    FIXTURES[slot].get_or_init(|| {
        let text = policy::policy_toml(n);
        let policy = envoi::policy::load_str("bench-policy.toml", &text, None).expect("the bench policy loads");
        assert_eq!(
            policy.grant_count(),
            3 + policy::projects(n) + n,
            "grants of the fleet of {n}"
        );
        let holder = Arc::new(PolicyHolder::with_policy(policy));
        let snapshot = holder.current().as_ref().expect("just installed").clone();
        Fixture { holder, snapshot }
    })
}

fn token_verify(c: &mut Criterion) {
    let workload = exact_workload(10);
    let now = now();
    let token = mint_token(&key(KEY), &workload, 3600);
    let one_key = Verifier::new(&[key(KEY)], RULES);
    // Rotation: the token is signed with the second key, so the first is tried in vain.
    let two_keys = Verifier::new(&[key(OLD_KEY), key(KEY)], RULES);
    for verifier in [&one_key, &two_keys] {
        assert_eq!(verifier.verify(token.as_bytes(), now), Ok(workload.clone()));
    }
    let mut group = c.benchmark_group("token/verify");
    group.bench_function("1_key", |b| b.iter(|| one_key.verify(black_box(token.as_bytes()), now)));
    group.bench_function("2_keys_second_matches", |b| {
        b.iter(|| two_keys.verify(black_box(token.as_bytes()), now))
    });
    group.finish();
}

fn policy_answer(c: &mut Criterion) {
    for n in SIZES {
        let mut group = c.benchmark_group(format!("policy/answer/{n}"));
        group.bench_function("exact+project+globs", |b| {
            let policy = fixture(n).policy();
            let workload = exact_workload(n);
            // SERVICE_NAME, API_KEY, INSTANCE, DATABASE_URL, LOG_LEVEL, SENTRY_DSN,
            // JOB_QUEUE, CONCURRENCY; the project's tls.pem and the workload's config.json.
            assert_eq!(policy.answer(&workload).len(), 10);
            b.iter(|| policy.answer(black_box(&workload)))
        });
        group.bench_function("globs_only", |b| {
            let policy = fixture(n).policy();
            let workload = globs_only_workload();
            assert_eq!(policy.answer(&workload).len(), 4);
            b.iter(|| policy.answer(black_box(&workload)))
        });
        group.finish();
    }
}

/// A new workload each time, as a fleet's start asks: the answer and its JSON for
/// workloads spread over the whole 100k fleet (a fixed permutation, `i = k·7919 mod n`),
/// so that each finds its grant, items and JSON out of the caches, the policy being
/// larger than the last-level cache. What `exact+project+globs` measures with one hot
/// workload, here as `bench/cold.sh` meets it.
fn policy_spread(c: &mut Criterion) {
    let n = 100_000;
    let policy = fixture(n).policy();
    let workloads: Vec<Workload> = (0..n)
        .map(|k| {
            let (project, kind, id) = policy::workload(n, k * 7919 % n);
            Workload::new(&project, kind, &id).expect("valid claims")
        })
        .collect();
    let mut group = c.benchmark_group(format!("policy/answer+write/{n}"));
    group.bench_function("a_new_workload_each_time", |b| {
        let mut next = workloads.iter().cycle();
        let mut buf = Vec::with_capacity(4096);
        b.iter(|| {
            let workload = next.next().expect("a cycle never ends");
            buf.clear();
            policy.answer(black_box(workload)).write_json(workload, &mut buf);
            buf.len()
        })
    });
    group.finish();
}

fn policy_serialise(c: &mut Criterion) {
    for n in SIZES {
        let mut group = c.benchmark_group(format!("policy/serialise/{n}"));
        for (name, workload) in [
            ("static_items", globs_only_workload()),
            ("claims_template", exact_workload(n)),
        ] {
            group.bench_function(name, |b| {
                let answer = fixture(n).policy().answer(&workload);
                let mut buf = Vec::new();
                answer.write_json(&workload, &mut buf);
                serde_json::from_slice::<serde_json::Value>(&buf).expect("the answer is JSON");
                if name == "claims_template" {
                    let text = String::from_utf8_lossy(&buf);
                    assert!(text.contains("proj-0/job/worker-0"), "INSTANCE rendered: {text}");
                }
                b.iter(|| {
                    buf.clear();
                    answer.write_json(black_box(&workload), &mut buf);
                    buf.len()
                })
            });
        }
        group.finish();
    }
}

fn handler(c: &mut Criterion) {
    let mut group = c.benchmark_group("handler");
    for n in SIZES {
        for (name, workload) in [
            ("exact+project+globs", exact_workload(n)),
            ("globs_only", globs_only_workload()),
        ] {
            // The runtime and the service are built on the first sample and kept for the
            // others (criterion calls this closure once per sample).
            let mut rig = None;
            group.bench_function(BenchmarkId::new(name, n), |b| {
                let first_sample = rig.is_none();
                let (system, app, authorization) = rig.get_or_insert_with(|| {
                    let fixture = fixture(n);
                    let state =
                        web::Data::new(AppState::new(Verifier::new(&[key(KEY)], RULES), fixture.holder.clone()));
                    let system = actix_web::rt::System::new();
                    let app = system.block_on(test::init_service(
                        App::new().configure(envoi::http::configure(state, true)),
                    ));
                    let authorization = format!("Bearer {}", mint_token(&key(KEY), &workload, 3600));
                    (system, app, authorization)
                });
                let call = || {
                    system.block_on(async {
                        let request = test::TestRequest::get()
                            .uri("/")
                            .insert_header(("Authorization", authorization.as_str()))
                            .to_request();
                        let response = test::call_service(&*app, request).await;
                        let status = response.status();
                        (status, test::read_body(response).await)
                    })
                };
                if first_sample {
                    // Never measure a 401 or an empty answer.
                    let (status, body) = call();
                    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
                    let json: serde_json::Value = serde_json::from_slice(&body).expect("the answer is JSON");
                    assert!(
                        json["secrets"].as_array().is_some_and(|s| !s.is_empty()),
                        "no secrets: {json}"
                    );
                }
                b.iter(call)
            });
        }
    }
    group.finish();
}

fn policy_load(c: &mut Criterion) {
    let mut sizes = vec![10, 10_000];
    if std::env::var_os("ENVOI_BENCH_LOAD_100K").is_some_and(|v| v == "1") {
        sizes.push(100_000);
    }
    let mut group = c.benchmark_group("policy/load");
    group.sample_size(10);
    for n in sizes {
        let mut text = None;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            let text = text.get_or_insert_with(|| policy::policy_toml(n));
            // One policy alive at a time, and its drop is not timed.
            b.iter_batched(
                || (),
                |()| {
                    envoi::policy::load_str("bench-policy.toml", black_box(text), None).expect("the bench policy loads")
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = token_verify, policy_answer, policy_spread, policy_serialise, handler, policy_load
}
criterion_main!(benches);
