//! How values and FILE attributes go on the wire: FILE attributes in every form, and
//! values from files, envoi's own environment and templates, escaped as JSON.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use envoi::policy::{load_path, load_str};

use super::{write, BLOB, BLOB_BASE64};
use crate::api::helpers::*;

// ---- FILE attributes ----

#[tokio::test]
async fn file_attributes_go_on_the_wire_only_when_set_in_every_form() {
    let policy = r#"
[[grants]]
name = "attributes"

[[grants.files]]
path = "/f/01-plain"
value = "x"

[[grants.files]]
path = "/f/02-mode"
value = "x"
mode = "0400"

[[grants.files]]
path = "/f/03-permissions-keep"
value = "x"
permissions = { policy = "KeepOrSet", mode = "0640" }

[[grants.files]]
path = "/f/04-permissions-always"
value = "x"
permissions = { policy = "AlwaysSet", mode = "0600" }

[[grants.files]]
path = "/f/05-short-owner-group"
value = "x"
owner = "1000"
group = "app"

[[grants.files]]
path = "/f/06-always-explicit"
value = "x"
owner = { policy = "AlwaysSetExplicit", value = "svc" }
group = { policy = "AlwaysSetExplicit", value = "2000" }

[[grants.files]]
path = "/f/07-keep-explicit"
value = "x"
owner = { policy = "KeepOrSetExplicit", value = "svc" }
group = { policy = "KeepOrSetExplicit", value = "staff" }

[[grants.files]]
path = "/f/08-always-inherited"
value = "x"
owner = { policy = "AlwaysSetInherited" }
group = { policy = "AlwaysSetInherited" }

[[grants.files]]
path = "/f/09-keep-inherited"
value = "x"
owner = { policy = "KeepOrSetInherited" }
group = { policy = "KeepOrSetInherited" }

[[grants.files]]
path = "/f/10-owner-only"
value = "x"
owner = "root"

[[grants.files]]
path = "/f/11-group-only"
value = "x"
group = { policy = "KeepOrSetInherited" }

[[grants.files]]
path = "/f/12-everything"
value = "x"
encoding = "utf-8"
mode = "0444"
owner = "root"
group = { policy = "KeepOrSetInherited" }

[[grants.files]]
path = "/f/13-base64-asked"
value = "hi"
encoding = "base64"
"#;
    let app = serve_app(policy).await;
    let body = app.answer_for(wl("any", "any", "any")).await;
    let items = [
        r#"{"type":"FILE","path":"/f/01-plain","data":"x"}"#,
        r#"{"type":"FILE","path":"/f/02-mode","data":"x","permissions":{"policy":"AlwaysSet","mode":"0400"}}"#,
        r#"{"type":"FILE","path":"/f/03-permissions-keep","data":"x","permissions":{"policy":"KeepOrSet","mode":"0640"}}"#,
        r#"{"type":"FILE","path":"/f/04-permissions-always","data":"x","permissions":{"policy":"AlwaysSet","mode":"0600"}}"#,
        r#"{"type":"FILE","path":"/f/05-short-owner-group","data":"x","owner":{"policy":"AlwaysSetExplicit","value":"1000"},"group":{"policy":"AlwaysSetExplicit","value":"app"}}"#,
        r#"{"type":"FILE","path":"/f/06-always-explicit","data":"x","owner":{"policy":"AlwaysSetExplicit","value":"svc"},"group":{"policy":"AlwaysSetExplicit","value":"2000"}}"#,
        r#"{"type":"FILE","path":"/f/07-keep-explicit","data":"x","owner":{"policy":"KeepOrSetExplicit","value":"svc"},"group":{"policy":"KeepOrSetExplicit","value":"staff"}}"#,
        r#"{"type":"FILE","path":"/f/08-always-inherited","data":"x","owner":{"policy":"AlwaysSetInherited"},"group":{"policy":"AlwaysSetInherited"}}"#,
        r#"{"type":"FILE","path":"/f/09-keep-inherited","data":"x","owner":{"policy":"KeepOrSetInherited"},"group":{"policy":"KeepOrSetInherited"}}"#,
        r#"{"type":"FILE","path":"/f/10-owner-only","data":"x","owner":{"policy":"AlwaysSetExplicit","value":"root"}}"#,
        r#"{"type":"FILE","path":"/f/11-group-only","data":"x","group":{"policy":"KeepOrSetInherited"}}"#,
        r#"{"type":"FILE","path":"/f/12-everything","data":"x","encoding":"utf-8","owner":{"policy":"AlwaysSetExplicit","value":"root"},"group":{"policy":"KeepOrSetInherited"},"permissions":{"policy":"AlwaysSet","mode":"0444"}}"#,
        r#"{"type":"FILE","path":"/f/13-base64-asked","data":"aGk=","encoding":"base64"}"#,
    ];
    assert!(!body.contains("null"), "an attribute is null: {body}");
    let got: Vec<String> = split_items(&body);
    assert_eq!(got.len(), items.len(), "{body}");
    for (got, want) in got.iter().zip(items) {
        assert_eq!(got, want);
    }
    assert_eq!(body, secrets_body(&items.map(String::from)));
}

#[tokio::test]
async fn values_come_from_files_relative_to_the_policy_and_binary_files_are_base64() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    write(&dir.path().join("secrets/blob.bin"), BLOB);
    write(&dir.path().join("secrets/db.txt"), b"fake-db-password-from-file\n");
    let absolute = dir.path().join("secrets/blob.bin");
    let policy = format!(
        r#"
[secrets.blob]
file = "secrets/blob.bin"

[secrets.db_password]
file = "secrets/db.txt"

[[grants]]
name = "files"
env = {{ DB_PASSWORD = "db_password", INLINE = {{ file = "secrets/db.txt" }} }}

[[grants.files]]
path = "/run/blob"
secret = "blob"

[[grants.files]]
path = "/run/blob-absolute"
file = "{}"

[[grants.files]]
path = "/run/db"
secret = "db_password"
"#,
        absolute.display()
    );
    let want = secrets_body(&[
        env_item("DB_PASSWORD", "fake-db-password-from-file\n"),
        env_item("INLINE", "fake-db-password-from-file\n"),
        format!(r#"{{"type":"FILE","path":"/run/blob","data":"{BLOB_BASE64}","encoding":"base64"}}"#),
        format!(r#"{{"type":"FILE","path":"/run/blob-absolute","data":"{BLOB_BASE64}","encoding":"base64"}}"#),
        r#"{"type":"FILE","path":"/run/db","data":"fake-db-password-from-file\n"}"#.to_owned(),
    ]);
    // From a policy file: relative paths are resolved against its folder, not the
    // working directory.
    let policy_file = dir.path().join("policy.toml");
    write(&policy_file, policy.as_bytes());
    let loaded = load_path(&policy_file).unwrap_or_else(|e| panic!("{e}"));
    let app = spawn_app(loaded).await;
    assert_eq!(app.answer_for(wl("p", "t", "i")).await, want, "load_path");

    // From a folder of policies.
    let loaded = load_path(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let app = spawn_app(loaded).await;
    assert_eq!(app.answer_for(wl("p", "t", "i")).await, want, "load_path of the folder");

    // From text, with the folder given.
    let loaded = load_str("inline.toml", &policy, Some(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let app = spawn_app(loaded).await;
    assert_eq!(app.answer_for(wl("p", "t", "i")).await, want, "load_str with a base");
}

#[tokio::test]
async fn values_come_from_envois_own_environment() {
    test_env();
    let [(dsn_var, dsn), (inline_var, inline)] = TEST_ENV;
    let policy = format!(
        r#"
[secrets.sentry_dsn]
env = "{dsn_var}"

[[grants]]
env = {{ SENTRY_DSN = "sentry_dsn", INLINE = {{ env = "{inline_var}" }} }}

[[grants.files]]
path = "/etc/sentry"
env = "{dsn_var}"
"#
    );
    let app = serve_app(&policy).await;
    let want = secrets_body(&[
        env_item("INLINE", inline),
        env_item("SENTRY_DSN", dsn),
        format!(r#"{{"type":"FILE","path":"/etc/sentry","data":"{dsn}"}}"#),
    ]);
    assert_eq!(app.answer_for(wl("p", "t", "i")).await, want);
}

#[tokio::test]
async fn templates_splice_claims_and_named_secrets() {
    let policy = r#"
[secrets.db_password]
value = "fake-db-password-tpl"

[secrets.database_url]
template = "postgres://app:${secret.db_password}@db:5432/${projectId}"

[[grants]]
env = { DATABASE_URL = "database_url", WHO = { template = "${projectId}/${nfObjectType}/${nfObjectId}" }, LITERAL = { template = "$${projectId} costs $5" } }

[[grants.files]]
path = "/etc/who"
template = "id=${nfObjectId}"

[[grants.files]]
path = "/etc/who-base64"
template = "id=${nfObjectId}"
encoding = "base64"
mode = "0440"
"#;
    let app = serve_app(policy).await;
    let file = |data: &str| {
        format!(
            r#"{{"type":"FILE","path":"/etc/who","data":{}}}"#,
            serde_json::Value::from(data)
        )
    };
    let cases = [
        (
            "plain names",
            wl("billing", "service", "api"),
            "billing",
            "billing/service/api",
            "api",
        ),
        (
            // Claims are any non-empty strings: what a template splices is escaped as
            // JSON like any value.
            "names with JSON's special characters",
            wl(r#"we"ird\proj"#, "<svc>", "id/ü"),
            r#"we"ird\proj"#,
            r#"we"ird\proj/<svc>/id/ü"#,
            "id/ü",
        ),
        (
            // A claim is spliced as text: a workload named like a template does not
            // receive the secret it names.
            "names that look like templates",
            wl("${secret.db_password}", "$${nfObjectId}", "${projectId}"),
            "${secret.db_password}",
            "${secret.db_password}/$${nfObjectId}/${projectId}",
            "${projectId}",
        ),
    ];
    for (case, w, project, who, id) in cases {
        let want = secrets_body(&[
            env_item(
                "DATABASE_URL",
                &format!("postgres://app:fake-db-password-tpl@db:5432/{project}"),
            ),
            env_item("LITERAL", "${projectId} costs $5"),
            env_item("WHO", who),
            file(&format!("id={id}")),
            format!(
                r#"{{"type":"FILE","path":"/etc/who-base64","data":"{}","encoding":"base64","permissions":{{"policy":"AlwaysSet","mode":"0440"}}}}"#,
                STANDARD.encode(format!("id={id}"))
            ),
        ]);
        assert_eq!(app.answer_for(w).await, want, "{case}");
    }
}

#[tokio::test]
async fn values_are_escaped_as_json_strings() {
    let policy = r#"
[[grants]]
env = { QUOTES = { value = "a \"quoted\" \\ back\\slash" }, LINES = { value = "one\ntwo\ttab" }, UNICODE = { value = "clé ключ 🔑" }, CONTROL = { value = "\u0001\u001f" } }
"#;
    let app = serve_app(policy).await;
    let got = app.env_for(wl("p", "t", "i")).await;
    let want: Vec<(String, String)> = [
        ("CONTROL", "\u{1}\u{1f}"),
        ("LINES", "one\ntwo\ttab"),
        ("QUOTES", r#"a "quoted" \ back\slash"#),
        ("UNICODE", "clé ключ 🔑"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    assert_eq!(got, want);
}
