//! `envoi explain` names near misses: grants whose selector failed on exactly one field,
//! with that field, the selector's value and the workload's (SPEC §4).

use crate::support::{Ran, Workspace};

const POLICY: &str = r#"
[secrets.stripe_key]
value = "sk-near-miss-51c0"

[[grants]]
name = "everyone"
env = { LOG_LEVEL = { value = "info-near-miss-11" } }

[[grants]]
name = "shop-jobs"
project = "shop"
type = "job"
env = { STRIPE_KEY = "stripe_key" }

[[grants]]
name = "shopp-typo"
project = "shopp"
type = "service"
id = "web"
env = { TYPO = { value = "typo-near-miss-22" } }

[[grants]]
name = "shop-web-glob"
project = "shop"
type = "service"
id = "api-*"
env = { API = { value = "api-near-miss-33" } }

[[grants]]
name = "far-away"
project = "billing"
type = "job"
env = { FAR = { value = "far-near-miss-44" } }
"#;

fn explain(extra: &[&str]) -> Ran {
    let ws = Workspace::new();
    let policy = ws.write("policy.toml", POLICY);
    ws.config_with_key("near-miss-key", &policy);
    let args = [
        "explain",
        "--config",
        "envoi.toml",
        "--project",
        "shop",
        "--type",
        "service",
        "--id",
        "web",
    ];
    let mut ran = Ran::of(ws.envoi(args).args(extra)).success();
    // Locations name the policy by its full path; the goldens by its name.
    ran.stdout = ran.stdout.replace(&format!("{}/", ws.path().display()), "");
    ran
}

#[test]
fn explain_names_a_near_miss_on_each_field_with_both_values() {
    let ran = explain(&[]);
    let misses: Vec<&str> = ran.stdout.lines().filter(|l| l.starts_with("- ")).collect();
    assert_eq!(
        misses,
        [
            "- grant `shop-jobs` (policy.toml:9) [project=shop type=job id=*]: type is `job`, the workload's is `service`",
            "- grant `shopp-typo` (policy.toml:15) [project=shopp type=service id=web]: project is `shopp`, the workload's is `shop`",
            "- grant `shop-web-glob` (policy.toml:22) [project=shop type=service id=api-*]: id is `api-*`, the workload's is `web`",
        ],
        "\n{ran}"
    );
    ran.stdout_names("shop/service/web receives 1 item(s)");
    ran.stdout_names("near misses: 3 grant(s) failed on one field only");
    for value in [
        "sk-near-miss-51c0",
        "info-near-miss-11",
        "typo-near-miss-22",
        "api-near-miss-33",
    ] {
        ran.never_shows(value);
    }
    assert!(
        !ran.stdout.contains("far-away"),
        "two fields differ: not a near miss\n{ran}"
    );
}

#[test]
fn explain_json_has_items_and_near_misses_in_its_documented_shape() {
    let ran = explain(&["--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("explain prints JSON");
    assert_eq!(
        json["workload"],
        serde_json::json!({"project": "shop", "type": "service", "id": "web"})
    );
    assert_eq!(
        json["items"],
        serde_json::json!([{
            "type": "ENV",
            "key": "LOG_LEVEL",
            "origin": "inline value",
            "grant": {
                "name": "everyone",
                "location": "policy.toml:5",
                "selector": {"project": "*", "type": "*", "id": "*"}
            },
            "overrides": []
        }]),
        "\n{ran}"
    );
    let misses = json["near_misses"].as_array().expect("an array");
    let fields: Vec<(&str, &str, &str, &str)> = misses
        .iter()
        .map(|m| {
            (
                m["grant"]["name"].as_str().unwrap(),
                m["field"].as_str().unwrap(),
                m["selector"].as_str().unwrap(),
                m["workload"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("shop-jobs", "type", "job", "service"),
            ("shopp-typo", "project", "shopp", "shop"),
            ("shop-web-glob", "id", "api-*", "web"),
        ]
    );
    ran.never_shows("info-near-miss-11");
}

#[test]
fn explain_json_shows_values_only_when_asked() {
    let ran = explain(&["--format", "json", "--show-values"]);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(json["items"][0]["value"], "info-near-miss-11", "\n{ran}");
}

#[test]
fn explain_lists_twenty_near_misses_in_text_and_counts_the_rest() {
    let ws = Workspace::new();
    let mut policy = String::from("[[grants]]\nname = \"all\"\nenv = { A = { value = \"a\" } }\n");
    for n in 0..25 {
        policy.push_str(&format!(
            "\n[[grants]]\nname = \"sibling-{n}\"\nproject = \"shop\"\ntype = \"service\"\nid = \"svc-{n}\"\nenv = {{ B = {{ value = \"b\" }} }}\n"
        ));
    }
    let path = ws.write("policy.toml", policy);
    ws.config_with_key("near-miss-key", &path);
    let args = [
        "explain",
        "--config",
        "envoi.toml",
        "--project",
        "shop",
        "--type",
        "service",
        "--id",
        "web",
    ];
    let ran = Ran::of(ws.envoi(args)).success();
    assert_eq!(
        ran.stdout.lines().filter(|l| l.starts_with("- ")).count(),
        20,
        "\n{ran}"
    );
    ran.stdout_names("near misses: 25 grant(s) failed on one field only")
        .stdout_names("and 5 more near miss(es) (--format json lists them all)");
    let ran = Ran::of(ws.envoi(args).args(["--format", "json"])).success();
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(json["near_misses"].as_array().unwrap().len(), 25);
}
