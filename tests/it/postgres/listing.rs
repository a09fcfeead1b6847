//! `secret ls --format json` and `grant ls --format json`, and the review commands
//! (`explain --secret`, `diff` against the store) on the Postgres store.

use super::db::Db;
use super::env::Env;

fn migrated(test: &str) -> Option<(Db, Env)> {
    let db = Db::create(test)?;
    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    Some((db, env))
}

#[test]
fn secret_and_grant_ls_print_their_documented_json_without_values() {
    let Some((_db, env)) = migrated("secret_and_grant_ls_print_their_documented_json") else {
        return;
    };
    env.put("db_password", "pw-listing-value-1");
    env.envoi(
        &[
            "grant",
            "add",
            "billing-api",
            "--project",
            "billing",
            "--env",
            "DB_PASSWORD=db_password",
            "--file",
            "/etc/billing/db=db_password,mode=0400",
        ],
        b"",
    )
    .success();

    let ran = env.envoi(&["secret", "ls", "--format", "json"], b"").success();
    ran.never_shows("pw-listing-value-1");
    let secrets: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    let secret = &secrets[0];
    assert_eq!(secret["name"], "db_password", "\n{ran}");
    assert_eq!(secret["kind"], "sealed");
    assert_eq!(secret["version"], 1);
    assert!(secret["key_id"].is_string() && secret["updated_at"].is_string() && secret["updated_by"].is_string());

    let ran = env.envoi(&["grant", "ls", "--format", "json"], b"").success();
    ran.never_shows("pw-listing-value-1");
    let grants: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(
        grants,
        serde_json::json!([{
            "name": "billing-api",
            "selector": {"project": "billing", "type": "*", "id": "*"},
            "items": [
                {"type": "ENV", "key": "DB_PASSWORD", "secret": "db_password"},
                {"type": "FILE", "path": "/etc/billing/db", "secret": "db_password"}
            ]
        }]),
        "\n{ran}"
    );

    let ran = env.envoi(&["explain", "--secret", "db_password"], b"").success();
    ran.never_shows("pw-listing-value-1");
    ran.stdout_names("secret `db_password` is given by 2 item(s)")
        .stdout_names("ENV DB_PASSWORD from grant `billing-api` (postgres)");
}
