//! `/metrics` counts verifications per signing key by its position in the configured
//! list, so that an operator sees when an old key is no longer used (SPEC §6).

use crate::support::jwt::{claims, now, sign};
use crate::support::{toml_string, Server, Workspace};

const CURRENT: &str = "current-key-metrics-0123456789";
const PREVIOUS: &str = "previous-key-metrics-0123456789";

fn token(key: &str) -> String {
    let now = now();
    sign(key, &claims("p", "t", "i", now, now + 600))
}

#[test]
fn each_signing_key_counts_the_tokens_it_verified_by_position() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", "[[grants]]\nenv = { X = { value = \"y\" } }\n");
    ws.write(
        "envoi.toml",
        format!(
            "[auth]\nsecrets = [{}, {}]\n\n[store]\npath = {}\n",
            toml_string(CURRENT),
            toml_string(PREVIOUS),
            toml_string(&policy.display().to_string())
        ),
    );
    let server = Server::serve(ws.path(), &ws.join("envoi.toml"));
    let count = |key: &str| -> f64 {
        let body = server.blocking_get("/metrics", None).body_text();
        let sample = format!("envoi_token_verifications_total{{key=\"{key}\"}} ");
        body.lines()
            .find_map(|line| line.strip_prefix(&sample)?.parse().ok())
            .unwrap_or_else(|| panic!("no {sample}sample in /metrics:\n{body}"))
    };
    assert_eq!((count("0"), count("1")), (0.0, 0.0));

    for _ in 0..3 {
        assert_eq!(server.blocking_get("/", Some(&token(PREVIOUS))).status, 200);
    }
    assert_eq!((count("0"), count("1")), (0.0, 3.0), "the previous key verified three");

    assert_eq!(server.blocking_get("/", Some(&token(CURRENT))).status, 200);
    assert_eq!(
        server
            .blocking_get("/", Some(&token("some-other-key-0123456789")))
            .status,
        401
    );
    assert_eq!((count("0"), count("1")), (1.0, 3.0), "a refused signature moves no key");

    // A signature that holds counts even when the token's times are then refused: an
    // expired token still shows the old key in use.
    let now = now();
    let expired = sign(PREVIOUS, &claims("p", "t", "i", now - 600, now - 300));
    assert_eq!(server.blocking_get("/", Some(&expired)).status, 401);
    assert_eq!(
        (count("0"), count("1")),
        (1.0, 4.0),
        "the expired token's key is counted"
    );

    let metrics = server.blocking_get("/metrics", None).body_text();
    assert!(!metrics.contains(CURRENT) && !metrics.contains(PREVIOUS), "{metrics}");
}
