//! `envoi diff OLD NEW`: grants added, removed and changed, per ENV key or FILE path
//! whether the value changed, never a value; exit 0, 1 or 2 (SPEC §4).

use crate::support::{Ran, Workspace};

const OLD: &str = r#"[secrets.stripe_key]
value = "old-stripe-value-a1"

[secrets.db_password]
value = "same-db-value-b2"

[secrets.db_url]
template = "postgres://app:${secret.db_password}@db/${projectId}"

[[grants]]
name = "kept"
project = "billing"
env = { LOG_LEVEL = { value = "kept-level-c3" } }

[[grants]]
name = "billing-api"
project = "billing"
type = "service"
id = "api"
env = { STRIPE_KEY = "stripe_key", DATABASE_URL = "db_url", GONE = { value = "gone-value-d4" } }

[[grants.files]]
path = "/etc/billing/db_password"
secret = "db_password"
mode = "0400"

[[grants]]
name = "retired"
project = "legacy"
env = { OLD_ONLY = { value = "retired-value-e5" } }

[[grants]]
name = "moves"
project = "web"
env = { REGION = { value = "eu-value-f6" } }
"#;

const NEW: &str = r#"[secrets.stripe_key]
value = "new-stripe-value-a7"

[secrets.database_password]
value = "same-db-value-b2"

[[grants]]
name = "moves"
project = "web-*"
env = { REGION = { value = "eu-value-f6" } }

[[grants]]
name = "kept"
project = "billing"
env = { LOG_LEVEL = { value = "kept-level-c3" } }

[[grants]]
name = "billing-api"
project = "billing"
type = "service"
id = "api"

[grants.env]
STRIPE_KEY = "stripe_key"
ADDED = { value = "added-value-g8" }
DATABASE_URL = { template = "postgres://app:${secret.database_password}@db/${projectId}" }

[[grants.files]]
path = "/etc/billing/db_password"
secret = "database_password"
mode = "0440"

[[grants]]
name = "fresh"
project = "shop"
env = { SHOP = { value = "fresh-value-h9" } }
"#;

const VALUES: &[&str] = &[
    "old-stripe-value-a1",
    "same-db-value-b2",
    "kept-level-c3",
    "gone-value-d4",
    "retired-value-e5",
    "eu-value-f6",
    "new-stripe-value-a7",
    "added-value-g8",
    "fresh-value-h9",
];

const GOLDEN: &str = "\
1 grant(s) added, 1 removed, 2 changed
+ grant `fresh` (new.toml:33) project=shop type=* id=*
    + ENV SHOP
- grant `retired` (old.toml:27) project=legacy type=* id=*
    - ENV OLD_ONLY
~ grant `moves` (new.toml:7)
    selector: project=web type=* id=* -> project=web-* type=* id=*
~ grant `billing-api` (new.toml:17)
    + ENV ADDED from inline value
    ~ ENV DATABASE_URL: same value, now from inline template (was secret `db_url`)
    - ENV GONE (was from inline value)
    ~ ENV STRIPE_KEY: value changed (from secret `stripe_key`, was secret `stripe_key`)
    ~ FILE /etc/billing/db_password: value changed (from secret `database_password`, was secret `db_password`)
";

fn diff(ws: &Workspace, args: &[&str]) -> Ran {
    let mut ran = Ran::of(ws.envoi(["diff"]).args(args));
    // Locations name the policies by their full paths; the goldens by their names.
    ran.stdout = ran.stdout.replace(&format!("{}/", ws.path().display()), "");
    for value in VALUES {
        ran.never_shows(value);
    }
    ran
}

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("old.toml", OLD);
    ws.write("new.toml", NEW);
    ws
}

#[test]
fn diff_names_every_kind_of_change_and_no_value() {
    let ws = workspace();
    let ran = diff(&ws, &["old.toml", "new.toml"]);
    assert_eq!(ran.code, Some(1), "changes exit 1\n{ran}");
    assert_eq!(ran.stdout, GOLDEN, "\n{ran}");
}

#[test]
fn diff_json_has_its_documented_shape_and_no_value() {
    let ws = workspace();
    let ran = diff(&ws, &["old.toml", "new.toml", "--format", "json"]);
    assert_eq!(ran.code, Some(1), "\n{ran}");
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(json["changed"], true);
    assert_eq!(json["old"], serde_json::json!({"grants": 4, "secrets": 3}));
    assert_eq!(json["new"], serde_json::json!({"grants": 4, "secrets": 2}));
    assert_eq!(json["added"][0]["grant"]["name"], "fresh");
    assert_eq!(
        json["added"][0]["items"],
        serde_json::json!([{"type": "ENV", "key": "SHOP"}])
    );
    assert_eq!(json["removed"][0]["grant"]["name"], "retired");
    let modified = json["modified"].as_array().expect("an array");
    assert_eq!(modified[0]["new"]["name"], "moves");
    assert_eq!(modified[0]["selector_changed"], true);
    assert_eq!(modified[0]["items"], serde_json::json!([]));
    let changes: Vec<(String, &str)> = modified[1]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let name = i["key"].as_str().or(i["path"].as_str()).unwrap().to_owned();
            (name, i["change"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("ADDED".to_owned(), "added"),
            ("DATABASE_URL".to_owned(), "source"),
            ("GONE".to_owned(), "removed"),
            ("STRIPE_KEY".to_owned(), "value"),
            ("/etc/billing/db_password".to_owned(), "value"),
        ]
    );
    assert_eq!(modified[1]["items"][3]["old_origin"], "secret `stripe_key`");
}

#[test]
fn diff_of_a_policy_with_itself_exits_0() {
    let ws = workspace();
    ws.write("copy/policy.toml", OLD);
    let ran = diff(&ws, &["old.toml", "copy"]);
    assert_eq!(ran.code, Some(0), "\n{ran}");
    assert_eq!(ran.stdout, "no change: 4 grant(s) in both\n");
}

#[test]
fn diff_compares_the_configured_store_with_a_path() {
    let ws = workspace();
    ws.config("old.toml", &[]);
    let ran = diff(&ws, &["--config", "envoi.toml", "new.toml"]);
    assert_eq!(ran.code, Some(1), "\n{ran}");
    assert!(
        ran.stdout.starts_with("1 grant(s) added, 1 removed, 2 changed\n"),
        "\n{ran}"
    );
}

#[test]
fn diff_exits_2_naming_the_conflict_a_new_policy_would_introduce() {
    let ws = workspace();
    let conflicting = format!(
        "{NEW}\n[[grants]]\nname = \"rival\"\nproject = \"shop\"\nenv = {{ SHOP = {{ value = \"rival-value-i0\" }} }}\n"
    );
    ws.write("new.toml", conflicting);
    let ran = diff(&ws, &["old.toml", "new.toml"]);
    ran.never_shows("rival-value-i0");
    assert_eq!(ran.code, Some(2), "an error exits 2\n{ran}");
    ran.stderr_names("NEW").stderr_names("`rival`").stderr_names("`fresh`");

    let ran = diff(&ws, &["old.toml", "new.toml", "--format", "json"]);
    ran.never_shows("rival-value-i0");
    assert_eq!(ran.code, Some(2), "\n{ran}");
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(json["error"]["policy"], "NEW", "\n{ran}");
    let problems = json["error"]["problems"].as_array().expect("an array");
    assert!(
        problems.iter().any(|p| p.as_str().unwrap().contains("`rival`")),
        "\n{ran}"
    );
}

#[test]
fn diff_exits_2_when_a_path_does_not_exist() {
    let ws = workspace();
    let ran = diff(&ws, &["old.toml", "missing.toml"]);
    assert_eq!(ran.code, Some(2), "\n{ran}");
    ran.stderr_names("missing.toml");
}
