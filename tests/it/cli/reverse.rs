//! `envoi explain --secret NAME`: every grant that gives a secret, directly or through
//! templates at any depth, and the more specific grants that override it (SPEC §4).

use crate::support::{Ran, Workspace};

const POLICY: &str = r#"[secrets.db_password]
value = "pw-reverse-1111"

[secrets.db_url]
template = "postgres://app:${secret.db_password}@db/${projectId}"

[secrets.app_config]
template = "url=${secret.db_url};kind=${nfObjectType}"

[secrets.other]
value = "other-reverse-2222"

[[grants]]
name = "direct"
project = "billing"

[[grants.files]]
path = "/etc/billing/db_password"
secret = "db_password"

[[grants]]
name = "one-level"
env = { DATABASE_URL = "db_url" }

[[grants]]
name = "two-levels"
project = "shop"
env = { APP_CONFIG = "app_config" }

[[grants]]
project = "ops"
env = { DSN = { template = "${secret.db_url}?sslmode=require" } }

[[grants]]
name = "override"
project = "shop"
type = "service"
env = { DATABASE_URL = "other" }

[[grants]]
name = "unrelated"
env = { OTHER = "other" }
"#;

const GOLDEN: &str = "\
secret `db_password` is given by 4 item(s)
FILE /etc/billing/db_password from grant `direct` (policy.toml:13)
    to project=billing type=* id=*
ENV DATABASE_URL from grant `one-level` (policy.toml:21)
    to project=* type=* id=*
    through `db_url` -> `db_password`
    overridden with another value by grant `override` (policy.toml:34) for project=shop type=service id=*
ENV APP_CONFIG from grant `two-levels` (policy.toml:25)
    to project=shop type=* id=*
    through `app_config` -> `db_url` -> `db_password`
ENV DSN from grant at policy.toml:30
    to project=ops type=* id=*
    through `inline template` -> `db_url` -> `db_password`
";

fn reverse(name: &str, extra: &[&str]) -> Ran {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", POLICY);
    ws.config_with_key("reverse-key", &policy);
    let mut ran = Ran::of(
        ws.envoi(["explain", "--config", "envoi.toml", "--secret", name])
            .args(extra),
    )
    .success();
    // Locations name the policy by its full path; the goldens by its name.
    ran.stdout = ran.stdout.replace(&format!("{}/", ws.path().display()), "");
    ran.never_shows("pw-reverse-1111").never_shows("other-reverse-2222");
    ran
}

#[test]
fn explain_secret_finds_grants_directly_and_through_two_levels_of_templates() {
    let ran = reverse("db_password", &[]);
    assert_eq!(ran.stdout, GOLDEN, "\n{ran}");
}

#[test]
fn explain_secret_json_names_the_chain_and_the_overriding_grant() {
    let ran = reverse("db_password", &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(json["secret"], "db_password");
    let given = json["given_by"].as_array().expect("an array");
    assert_eq!(given.len(), 4, "\n{ran}");
    assert_eq!(
        given[1],
        serde_json::json!({
            "grant": {
                "name": "one-level",
                "location": "policy.toml:21",
                "selector": {"project": "*", "type": "*", "id": "*"}
            },
            "type": "ENV",
            "key": "DATABASE_URL",
            "via": ["db_url", "db_password"],
            "overridden_by": [{
                "grant": {
                    "name": "override",
                    "location": "policy.toml:34",
                    "selector": {"project": "shop", "type": "service", "id": "*"}
                },
                "other_value": true
            }]
        })
    );
    assert_eq!(given[0]["type"], "FILE");
    assert_eq!(given[0]["path"], "/etc/billing/db_password");
    assert_eq!(given[3]["grant"]["name"], serde_json::Value::Null);
    assert_eq!(
        given[3]["via"],
        serde_json::json!(["inline template", "db_url", "db_password"])
    );
}

#[test]
fn explain_secret_of_a_secret_no_grant_gives_lists_nothing() {
    let ran = reverse("nobody_has_this", &[]);
    assert_eq!(
        ran.stdout, "secret `nobody_has_this` is given by 0 item(s) (no secret of that name is defined)\n",
        "\n{ran}"
    );
    let ran = reverse("other", &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(json["defined"], true);
    let given: Vec<&str> = json["given_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["grant"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(given, ["override", "unrelated"], "\n{ran}");
}

/// Which grant gives each target to `workload`, by `explain --format json`.
fn served(ws: &Workspace, [project, kind, id]: [&str; 3]) -> Vec<(String, String)> {
    let args = [
        "explain",
        "--config",
        "envoi.toml",
        "--project",
        project,
        "--type",
        kind,
        "--id",
        id,
        "--format",
        "json",
    ];
    let ran = Ran::of(ws.envoi(args)).success();
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let target = item["key"].as_str().or(item["path"].as_str()).unwrap().to_owned();
            let grant = item["grant"]["name"].as_str().unwrap_or("(unnamed)").to_owned();
            (target, grant)
        })
        .collect()
}

#[test]
fn the_reverse_lookup_agrees_with_what_sample_workloads_are_served() {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", POLICY);
    ws.config_with_key("reverse-key", &policy);
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(t, g)| (t.to_string(), g.to_string())).collect()
    };
    // Billing gets the file from `direct` and DATABASE_URL from `one-level`.
    assert_eq!(
        served(&ws, ["billing", "service", "api"]),
        pairs(&[
            ("DATABASE_URL", "one-level"),
            ("OTHER", "unrelated"),
            ("/etc/billing/db_password", "direct")
        ])
    );
    // A shop service: `override` wins DATABASE_URL, as the lookup says; APP_CONFIG stays.
    assert_eq!(
        served(&ws, ["shop", "service", "web"]),
        pairs(&[
            ("APP_CONFIG", "two-levels"),
            ("DATABASE_URL", "override"),
            ("OTHER", "unrelated")
        ])
    );
    // A shop job is not overridden.
    assert_eq!(
        served(&ws, ["shop", "job", "nightly"]),
        pairs(&[
            ("APP_CONFIG", "two-levels"),
            ("DATABASE_URL", "one-level"),
            ("OTHER", "unrelated")
        ])
    );
    assert_eq!(
        served(&ws, ["ops", "job", "x"]),
        pairs(&[
            ("DATABASE_URL", "one-level"),
            ("DSN", "(unnamed)"),
            ("OTHER", "unrelated")
        ])
    );
}
