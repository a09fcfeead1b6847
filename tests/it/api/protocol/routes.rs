//! Beyond the token: a workload granted nothing, other methods and paths, health and
//! readiness.

use reqwest::Method;

use super::*;

#[tokio::test]
async fn a_workload_granted_nothing_gets_an_empty_list() {
    let app = app().await;
    for (case, w) in [
        ("another project", wl("other-project", "service", "checkout-api")),
        ("another type", wl("billing", "job", "checkout-api")),
        ("another id", wl("billing", "service", "checkout-apis")),
    ] {
        let reply = app.get_secrets(&token_for(w)).await;
        assert_served(case, &reply, r#"{"secrets":[]}"#);
    }
}

#[tokio::test]
async fn other_methods_on_root_get_405_without_secrets() {
    let app = app().await;
    let token = format!("Bearer {}", token_for(WORKLOAD));
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let reply = app.request(method.clone(), "/", &[&token]).await;
        let body = reply.text();
        assert_eq!(reply.status, 405, "{method}: status (body {body})");
        let allow = reply.header("allow").unwrap_or_default();
        assert!(allow.contains("GET"), "{method}: Allow is {allow:?}");
        assert_no_leak(method.as_str(), &body, &leaks(std::slice::from_ref(&token)));
    }
}

#[tokio::test]
async fn an_unknown_path_is_404_without_secrets() {
    let app = app().await;
    let token = format!("Bearer {}", token_for(WORKLOAD));
    for path in ["/secrets", "/v1/", "/healthz/x"] {
        let reply = app.request(Method::GET, path, &[&token]).await;
        let body = reply.text();
        assert_eq!(reply.status, 404, "{path}: status (body {body})");
        assert_no_leak(path, &body, &leaks(std::slice::from_ref(&token)));
    }
}

#[tokio::test]
async fn health_and_readiness_with_a_policy() {
    let app = app().await;
    let health = app.request(Method::GET, "/healthz", &[]).await;
    assert_eq!(health.status, 200, "/healthz: {}", health.text());
    let ready = app.request(Method::GET, "/readyz", &[]).await;
    assert_eq!(ready.status, 200, "/readyz: {}", ready.text());
    assert_no_leak("/readyz", &ready.text(), &SECRET_VALUES);
}

#[tokio::test]
async fn without_a_policy_envoi_is_alive_but_not_ready_and_answers_503() {
    let app = spawn_app_with(None, &[KEY]).await;
    let health = app.request(Method::GET, "/healthz", &[]).await;
    assert_eq!(health.status, 200, "/healthz: {}", health.text());

    let ready = app.request(Method::GET, "/readyz", &[]).await;
    assert_eq!(ready.status, 503, "/readyz: {}", ready.text());
    assert_retry_after("/readyz", &ready);

    let token = token_for(WORKLOAD);
    let reply = app.get_secrets(&token).await;
    assert_eq!(reply.status, 503, "GET /: {}", reply.text());
    assert_retry_after("GET /", &reply);
    assert_eq!(reply.header("cache-control"), Some("no-store"), "GET /: Cache-Control");
    let body = reply.text();
    assert!(
        !body.contains("secrets"),
        "GET / without a policy answers secrets: {body}"
    );
    assert_no_leak("GET / without a policy", &body, &token_parts(&token));
}

fn assert_retry_after(case: &str, reply: &Reply) {
    let retry = reply.header("retry-after");
    assert!(
        retry.is_some_and(|r| r.trim().parse::<u64>().is_ok_and(|s| s > 0) || r.ends_with("GMT")),
        "{case}: Retry-After is {retry:?}"
    );
}
