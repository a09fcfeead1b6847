//! SPEC §2, the policy, seen through HTTP: who receives what, which grant wins, how
//! values and FILE attributes go on the wire; and the policies that must not load.

use std::collections::BTreeSet;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use envoi::policy::{load_path, load_str, PolicyError};

use super::helpers::*;

// ---- Selectors ----

const SELECTORS: &str = r#"
[[grants]]
project = "billing"
env = { P_EXACT = { value = "1" } }

[[grants]]
project = "bill*"
env = { P_GLOB = { value = "1" } }

[[grants]]
project = "?illing"
env = { P_QMARK = { value = "1" } }

[[grants]]
type = "job"
env = { T_EXACT = { value = "1" } }

[[grants]]
type = "work*"
env = { T_GLOB = { value = "1" } }

[[grants]]
type = "jo?"
env = { T_QMARK = { value = "1" } }

[[grants]]
id = "api"
env = { I_EXACT = { value = "1" } }

[[grants]]
id = "api-*"
env = { I_GLOB = { value = "1" } }

[[grants]]
id = "api-?"
env = { I_QMARK = { value = "1" } }

[[grants]]
project = "*"
type = "*"
id = "*"
env = { ALL_STARS = { value = "1" } }

[[grants]]
name = "no selector at all"
env = { NO_FIELDS = { value = "1" } }

[[grants]]
project = "*-eu"
type = "*"
id = "*-1"
env = { GLOBS_AROUND = { value = "1" } }
"#;

#[tokio::test]
async fn exact_and_glob_selectors_on_each_field_and_missing_fields_mean_any() {
    let app = serve_app(SELECTORS).await;
    let everyone = ["ALL_STARS", "NO_FIELDS"];
    let cases: [(&str, Wl<'_>, &[&str]); 8] = [
        (
            "exact project, type and id",
            wl("billing", "job", "api"),
            &["P_EXACT", "P_GLOB", "P_QMARK", "T_EXACT", "T_QMARK", "I_EXACT"],
        ),
        (
            "globs with `*` and `?`",
            wl("billing-eu", "worker", "api-1"),
            &["P_GLOB", "T_GLOB", "I_GLOB", "I_QMARK", "GLOBS_AROUND"],
        ),
        (
            "`?` is exactly one character",
            wl("killing", "jobs", "api-12"),
            &["P_QMARK", "I_GLOB"],
        ),
        (
            "`*` may match nothing",
            wl("bill", "work", "api-"),
            &["P_GLOB", "T_GLOB", "I_GLOB"],
        ),
        ("names are case-sensitive", wl("Billing", "JOB", "API"), &["P_QMARK"]),
        (
            "`?` is one character, not one byte",
            wl("éilling", "x", "y"),
            &["P_QMARK"],
        ),
        ("no field matches", wl("shop", "addon", "web"), &[]),
        (
            "a glob is anchored at both ends",
            wl("xbilling", "coworker", "my-api-1"),
            &[],
        ),
    ];
    for (case, w, specific) in cases {
        let got: BTreeSet<String> = app.env_for(w).await.into_iter().map(|(k, _)| k).collect();
        let want: BTreeSet<String> = specific.iter().chain(&everyone).map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{case}: {w:?}");
    }
}

// ---- Specificity ----

/// `(case, the more specific selector, the less specific one)`, both matching
/// `billing/service/api-eu`. Each rule of SPEC §2's comparison has a case where the
/// later rules alone would pick the other grant.
const SPECIFICITY: &[(&str, &str, &str)] = &[
    ("one exact field beats none", r#"project = "billing""#, ""),
    (
        "three exact fields beat two",
        r#"project = "billing"
type = "service"
id = "api-eu""#,
        r#"project = "billing"
type = "service"
id = "api-*""#,
    ),
    (
        "more exact fields beat more literal globs and an exact project",
        r#"type = "service"
id = "api-eu""#,
        r#"project = "billing"
type = "serv*"
id = "api-*""#,
    ),
    (
        "with as many exact fields, more globs with literal text win over an exact project",
        r#"type = "service"
id = "api-*""#,
        r#"project = "billing""#,
    ),
    (
        "a glob of only `?` has no literal text, however many fields use one",
        r#"id = "a*""#,
        r#"project = "???????"
type = "???????""#,
    ),
    (
        "field by field, the project first: exact beats glob",
        r#"project = "billing"
type = "s*""#,
        r#"project = "b*"
type = "service""#,
    ),
    (
        "field by field, the type before the id: exact beats glob",
        r#"project = "b*"
type = "service"
id = "a*""#,
        r#"project = "b*"
type = "s*"
id = "api-eu""#,
    ),
    (
        "field by field, an exact type beats an exact id",
        r#"type = "service""#,
        r#"id = "api-eu""#,
    ),
    (
        "field by field, a glob beats `*`",
        r#"project = "???????""#,
        r#"type = "???????""#,
    ),
    (
        "a longer literal part beats a shorter one",
        r#"project = "bill*""#,
        r#"project = "b*""#,
    ),
    (
        "the project's literal length decides before the type's",
        r#"project = "bil*"
type = "s*""#,
        r#"project = "b*"
type = "servic*""#,
    ),
    (
        "a longer literal in the type, with equal projects",
        r#"project = "billing"
type = "serv*""#,
        r#"project = "billing"
type = "s*""#,
    ),
    (
        "a longer literal in the id, with equal project and type",
        r#"project = "billing"
type = "service"
id = "api-*""#,
        r#"project = "billing"
type = "service"
id = "a*""#,
    ),
    (
        "`?` and `*` are not literal text",
        r#"project = "billin?""#,
        r#"project = "bill*""#,
    ),
];

#[tokio::test]
async fn the_more_specific_grant_wins_whatever_the_order_of_grants() {
    let workload = wl("billing", "service", "api-eu");
    for (case, winner, loser) in SPECIFICITY {
        let grant = |name: &str, selector: &str| {
            format!("[[grants]]\nname = \"{name}\"\n{selector}\nenv = {{ WHO = {{ value = \"{name}\" }}, {name} = {{ value = \"yes\" }} }}\n")
        };
        for (order, policy) in [
            ("winner first", grant("winner", winner) + &grant("loser", loser)),
            ("loser first", grant("loser", loser) + &grant("winner", winner)),
        ] {
            let policy = envoi::policy::load_str("specificity.toml", &policy, None)
                .unwrap_or_else(|e| panic!("{case} ({order}): {e}\n{policy}"));
            let app = spawn_app(policy).await;
            let got = app.env_for(workload).await;
            let want: Vec<(String, String)> = [("WHO", "winner"), ("loser", "yes"), ("winner", "yes")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
            assert_eq!(got, want, "{case} ({order})");
        }
    }
}

// ---- Several grants ----

const LAYERS: &str = r#"
[secrets.stripe_key]
value = "fake-stripe-key-5d2b"

[[grants]]
name = "everyone"
env = { LOG_LEVEL = { value = "info" }, REGION = { value = "eu-west" } }

[[grants.files]]
path = "/etc/motd"
value = "welcome"

[[grants]]
name = "billing"
project = "billing"
env = { LOG_LEVEL = { value = "warn" }, DB_URL = { value = "fake-db-url" } }

[[grants]]
name = "billing-api"
project = "billing"
type = "service"
id = "api"
env = { LOG_LEVEL = { value = "debug" }, STRIPE_KEY = "stripe_key" }

[[grants.files]]
path = "/etc/motd"
value = "billing api"

[[grants.files]]
path = "/etc/billing/stripe"
secret = "stripe_key"

[[grants]]
name = "jobs"
type = "job"
env = { JOBS = { value = "1" } }
"#;

#[tokio::test]
async fn every_matching_grant_applies_and_the_most_specific_gives_each_item() {
    let app = serve_app(LAYERS).await;
    let file = |path: &str, data: &str| format!(r#"{{"type":"FILE","path":"{path}","data":"{data}"}}"#);
    let cases = [
        (
            "three grants",
            wl("billing", "service", "api"),
            secrets_body(&[
                env_item("DB_URL", "fake-db-url"),
                env_item("LOG_LEVEL", "debug"),
                env_item("REGION", "eu-west"),
                env_item("STRIPE_KEY", "fake-stripe-key-5d2b"),
                file("/etc/billing/stripe", "fake-stripe-key-5d2b"),
                file("/etc/motd", "billing api"),
            ]),
        ),
        (
            "three other grants",
            wl("billing", "job", "nightly"),
            secrets_body(&[
                env_item("DB_URL", "fake-db-url"),
                env_item("JOBS", "1"),
                env_item("LOG_LEVEL", "warn"),
                env_item("REGION", "eu-west"),
                file("/etc/motd", "welcome"),
            ]),
        ),
        (
            "one grant",
            wl("shop", "service", "api"),
            secrets_body(&[
                env_item("LOG_LEVEL", "info"),
                env_item("REGION", "eu-west"),
                file("/etc/motd", "welcome"),
            ]),
        ),
    ];
    for (case, w, want) in cases {
        assert_eq!(app.answer_for(w).await, want, "{case}");
    }
}

#[tokio::test]
async fn env_items_come_first_by_key_then_file_items_by_path_in_byte_order() {
    let policy = r#"
[[grants]]
name = "files first, in no order"
[[grants.files]]
path = "/z"
value = "1"
[[grants.files]]
path = "/é"
value = "2"
[[grants.files]]
path = "/a/b"
value = "3"
[[grants.files]]
path = "/B"
value = "4"

[[grants]]
name = "more of both"
project = "p"
env = { b = { value = "5" }, Z1 = { value = "6" }, A = { value = "7" } }
[[grants.files]]
path = "/a/a"
value = "8"
[[grants.files]]
path = "/a-b"
value = "9"

[[grants]]
name = "env, in no order"
env = { _Z = { value = "10" }, a = { value = "11" }, Z = { value = "12" }, B = { value = "13" } }
"#;
    let app = serve_app(policy).await;
    let body = app.answer_for(wl("p", "t", "i")).await;
    let file = |path: &str, data: &str| format!(r#"{{"type":"FILE","path":"{path}","data":"{data}"}}"#);
    let want = secrets_body(&[
        env_item("A", "7"),
        env_item("B", "13"),
        env_item("Z", "12"),
        env_item("Z1", "6"),
        env_item("_Z", "10"),
        env_item("a", "11"),
        env_item("b", "5"),
        file("/B", "4"),
        file("/a-b", "9"),
        file("/a/a", "8"),
        file("/a/b", "3"),
        file("/z", "1"),
        file("/é", "2"),
    ]);
    assert_eq!(body, want);
}

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

// ---- Where values come from ----

/// Bytes that are not UTF-8, whose standard base64 uses both `+` and `/`.
const BLOB: &[u8] = &[0x00, 0xff, 0xfe, 0x80, b'k', 0xc3];
const BLOB_BASE64: &str = "AP/+gGvD";

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("create the folder");
    std::fs::write(path, bytes).expect("write a test file");
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

// ---- Conflicts ----

#[tokio::test]
async fn equal_specificity_is_no_conflict_when_the_values_agree_or_the_selectors_cannot_overlap() {
    let cases = [
        (
            "the same literal twice",
            r#"
[[grants]]
name = "one"
project = "billing"
env = { K = { value = "same" } }
[[grants]]
name = "two"
project = "billing"
env = { K = { value = "same" } }
"#,
        ),
        (
            "two secrets of the same value",
            r#"
[secrets.a]
value = "same"
[secrets.b]
value = "same"
[[grants]]
name = "one"
project = "billing"
env = { K = "a" }
[[grants]]
name = "two"
project = "billing"
env = { K = "b" }
"#,
        ),
        (
            "globs that cannot match one name",
            r#"
[[grants]]
name = "one"
project = "a-*"
env = { K = { value = "first" } }
[[grants]]
name = "two"
project = "b-*"
env = { K = { value = "second" } }
"#,
        ),
        (
            "`?` globs that cannot match one name",
            r#"
[[grants]]
name = "one"
project = "a?"
env = { K = { value = "first" } }
[[grants]]
name = "two"
project = "b?"
env = { K = { value = "second" } }
"#,
        ),
        (
            "globs on two fields, one of which cannot overlap",
            r#"
[[grants]]
name = "one"
type = "service"
id = "x-*"
env = { K = { value = "first" } }
[[grants]]
name = "two"
type = "job"
id = "*-y"
env = { K = { value = "second" } }
"#,
        ),
        (
            "different exact projects",
            r#"
[[grants]]
name = "one"
project = "billing"
env = { K = { value = "first" } }
[[grants]]
name = "two"
project = "shop"
env = { K = { value = "second" } }
"#,
        ),
        (
            "an ENV key and a FILE path of the same name",
            r#"
[[grants]]
name = "one"
env = { K = { value = "first" } }
[[grants]]
name = "two"
[[grants.files]]
path = "/K"
value = "second"
"#,
        ),
    ];
    for (case, text) in cases {
        if let Err(e) = load_str("no-conflict.toml", text, None) {
            panic!("{case}: the policy does not load: {e}");
        }
    }
    // And they serve.
    let app = serve_app(cases[0].1).await;
    assert_eq!(
        app.answer_for(wl("billing", "t", "i")).await,
        secrets_body(&[env_item("K", "same")])
    );
    let app = serve_app(cases[2].1).await;
    assert_eq!(
        app.answer_for(wl("a-x", "t", "i")).await,
        secrets_body(&[env_item("K", "first")])
    );
    assert_eq!(
        app.answer_for(wl("b-x", "t", "i")).await,
        secrets_body(&[env_item("K", "second")])
    );
}

// ---- Policies that must not load ----

/// `(case, policy, texts that one same problem must contain)`.
fn broken_policies() -> Vec<(&'static str, String, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (
            "two grants of equal specificity give one key different values",
            r#"
[[grants]]
name = "alpha-grant"
project = "billing"
env = { SHARED_KEY = { value = "fake-one" } }
[[grants]]
name = "beta-grant"
project = "billing"
env = { SHARED_KEY = { value = "fake-two" } }
"#
            .into(),
            s(&["alpha-grant", "beta-grant", "SHARED_KEY"]),
        ),
        (
            "two overlapping globs of equal specificity give one FILE different values",
            r#"
[[grants]]
name = "alpha-grant"
project = "a-*"
[[grants.files]]
path = "/etc/shared"
value = "fake-one"
[[grants]]
name = "beta-grant"
project = "*-b"
[[grants.files]]
path = "/etc/shared"
value = "fake-two"
"#
            .into(),
            s(&["alpha-grant", "beta-grant", "/etc/shared"]),
        ),
        (
            "two overlapping `?` globs of equal specificity give one key different values",
            r#"
[[grants]]
name = "alpha-grant"
project = "a?"
env = { SHARED_KEY = { value = "fake-one" } }
[[grants]]
name = "beta-grant"
project = "?b"
env = { SHARED_KEY = { value = "fake-two" } }
"#
            .into(),
            s(&["alpha-grant", "beta-grant", "SHARED_KEY"]),
        ),
        (
            "two unnamed grants in conflict are named by where they stand",
            r#"
[[grants]]
env = { SHARED_KEY = { value = "fake-one" } }

[[grants]]
project = "*"
env = { SHARED_KEY = { value = "fake-two" } }
"#
            .into(),
            s(&["test-policy.toml:2", "test-policy.toml:5", "SHARED_KEY"]),
        ),
        (
            "a grant names an undefined secret for an ENV key",
            r#"
[[grants]]
name = "needs-missing"
env = { KEY = "no_such_secret" }
"#
            .into(),
            s(&["needs-missing", "no_such_secret"]),
        ),
        (
            "a grant names an undefined secret for a FILE",
            r#"
[[grants]]
name = "needs-missing"
[[grants.files]]
path = "/etc/x"
secret = "no_such_secret"
"#
            .into(),
            s(&["needs-missing", "no_such_secret"]),
        ),
        (
            "a template names an undefined secret",
            r#"
[[grants]]
name = "tpl-missing"
env = { URL = { template = "postgres://app:${secret.no_such_secret}@db" } }
"#
            .into(),
            s(&["tpl-missing", "no_such_secret"]),
        ),
        (
            "a named template names an undefined secret",
            r#"
[secrets.database_url]
template = "postgres://app:${secret.no_such_secret}@db"
[[grants]]
env = { URL = "database_url" }
"#
            .into(),
            s(&["database_url", "no_such_secret"]),
        ),
        (
            "a template names something that is not a claim nor a secret",
            r#"
[[grants]]
name = "tpl-unknown"
env = { URL = { template = "${teamId}" } }
"#
            .into(),
            s(&["tpl-unknown", "teamId"]),
        ),
        (
            "a secret reads an unset environment variable",
            format!(
                r#"
[secrets.sentry_dsn]
env = "{UNSET_ENV}"
[[grants]]
name = "sentry"
env = {{ SENTRY_DSN = "sentry_dsn" }}
"#
            ),
            s(&["sentry_dsn", UNSET_ENV]),
        ),
        (
            "a grant reads an unset environment variable inline",
            format!(
                r#"
[[grants]]
name = "inline-env"
env = {{ SENTRY_DSN = {{ env = "{UNSET_ENV}" }} }}
"#
            ),
            s(&["inline-env", UNSET_ENV]),
        ),
        (
            "a secret reads a missing file",
            r#"
[secrets.cert]
file = "/nonexistent/envoi-api-test/cert.pem"
[[grants]]
env = { CERT = "cert" }
"#
            .into(),
            s(&["cert", "/nonexistent/envoi-api-test/cert.pem"]),
        ),
        (
            "a grant's FILE reads a missing file inline",
            r#"
[[grants]]
name = "inline-file"
[[grants.files]]
path = "/etc/cert.pem"
file = "/nonexistent/envoi-api-test/cert.pem"
"#
            .into(),
            s(&["inline-file", "/nonexistent/envoi-api-test/cert.pem"]),
        ),
        ("an unknown top-level key", "extra_section = 1\n".into(), s(&["extra_section"])),
        (
            "an unknown key in a secret",
            "[secrets.x]\nvalue = \"v\"\nvalu = \"v\"\n".into(),
            s(&["valu"]),
        ),
        (
            "an unknown key in a grant",
            "[[grants]]\nprojet = \"billing\"\n".into(),
            s(&["projet"]),
        ),
        (
            "an unknown key in a FILE",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nmodee = \"0400\"\n".into(),
            s(&["modee"]),
        ),
        (
            "an unknown key in permissions",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\npermissions = { policy = \"AlwaysSet\", mode = \"0400\", sticky = true }\n"
                .into(),
            s(&["sticky"]),
        ),
        (
            "an unknown key in an owner",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nowner = { policy = \"AlwaysSetInherited\", uid = 1 }\n"
                .into(),
            s(&["uid"]),
        ),
        (
            "an unknown key in an inline ENV value",
            "[[grants]]\nenv = { K = { value = \"v\", comment = \"c\" } }\n".into(),
            s(&["comment"]),
        ),
        (
            "a secret with two sources",
            format!("[secrets.two_sources]\nvalue = \"v\"\nenv = \"{UNSET_ENV}\"\n"),
            s(&["two_sources"]),
        ),
        (
            "a secret with no source",
            "[secrets.no_source]\n".into(),
            s(&["no_source"]),
        ),
        (
            "an inline ENV value with two sources",
            "[[grants]]\nname = \"two-inline\"\nenv = { K = { value = \"v\", file = \"/etc/hostname\" } }\n".into(),
            s(&["two-inline", "K"]),
        ),
        (
            "a FILE with a secret and an inline value",
            "[secrets.s]\nvalue = \"v\"\n[[grants]]\nname = \"both\"\n[[grants.files]]\npath = \"/x\"\nsecret = \"s\"\nvalue = \"v\"\n"
                .into(),
            s(&["both", "/x"]),
        ),
        (
            "a mode that is not octal",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nmode = \"0999\"\n".into(),
            s(&["mode", "0999"]),
        ),
        (
            "a mode in letters",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nmode = \"rw-r--r--\"\n".into(),
            s(&["mode", "rw-r--r--"]),
        ),
        (
            "an empty mode",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nmode = \"\"\n".into(),
            s(&["mode"]),
        ),
        (
            "a bad mode in the long form",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\npermissions = { policy = \"KeepOrSet\", mode = \"12345\" }\n"
                .into(),
            s(&["mode", "12345"]),
        ),
        (
            "a permissions policy that does not exist",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\npermissions = { policy = \"SometimesSet\", mode = \"0400\" }\n"
                .into(),
            s(&["policy"]),
        ),
        (
            "an owner policy that does not exist",
            "[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nowner = { policy = \"AlwaysSetMaybe\", value = \"app\" }\n"
                .into(),
            s(&["AlwaysSetMaybe"]),
        ),
        (
            "an ENV key starting with a digit",
            "[[grants]]\nenv = { 1ABC = { value = \"v\" } }\n".into(),
            s(&["1ABC"]),
        ),
        (
            "an ENV key with a dash",
            "[[grants]]\nenv = { \"A-B\" = { value = \"v\" } }\n".into(),
            s(&["A-B"]),
        ),
        (
            "an ENV key with a blank",
            "[[grants]]\nenv = { \"A B\" = { value = \"v\" } }\n".into(),
            s(&["A B"]),
        ),
        (
            "a relative FILE path",
            "[[grants]]\nname = \"relative\"\n[[grants.files]]\npath = \"etc/app.conf\"\nvalue = \"v\"\n".into(),
            s(&["relative", "etc/app.conf"]),
        ),
    ]
}

#[test]
fn broken_policies_do_not_load_and_the_problem_names_what_is_wrong() {
    test_env();
    for (case, text, names) in broken_policies() {
        let error = load_error(&text);
        assert!(!error.problems.is_empty(), "{case}: an error without problems");
        let found = error
            .problems
            .iter()
            .any(|problem| names.iter().all(|name| problem.contains(name.as_str())));
        assert!(
            found,
            "{case}: no problem names all of {names:?}; problems: {:#?}",
            error.problems
        );
        let shown = error.to_string();
        for name in &names {
            assert!(
                shown.contains(name.as_str()),
                "{case}: the message does not name {name:?}: {shown}"
            );
        }
    }
}

#[test]
fn a_load_error_never_shows_a_value() {
    const LEAK: &str = "sk_test_fake_LEAK_4242";
    let cases: Vec<(&str, String)> = vec![
        (
            "two sources",
            format!("[secrets.x]\nvalue = \"{LEAK}\"\nenv = \"{UNSET_ENV}\"\n"),
        ),
        (
            "an unknown key beside the value",
            format!("[secrets.x]\nvalue = \"{LEAK}\"\nvalu = \"{LEAK}\"\n"),
        ),
        (
            "a conflict",
            format!(
                "[[grants]]\nname = \"a\"\nenv = {{ K = {{ value = \"{LEAK}\" }} }}\n[[grants]]\nname = \"b\"\nenv = {{ K = {{ value = \"{LEAK}-other\" }} }}\n"
            ),
        ),
        (
            "a value of the wrong type",
            format!("[secrets.x]\nvalue = [\"{LEAK}\"]\n"),
        ),
        ("an unterminated string", format!("[secrets.x]\nvalue = \"{LEAK}\n")),
        ("an unterminated literal string", format!("[secrets.x]\nvalue = '{LEAK}\n")),
        ("an unterminated multi-line string", format!("[secrets.x]\nvalue = \"\"\"{LEAK}\n")),
        (
            "an unclosed inline table",
            format!("[[grants]]\nenv = {{ K = {{ value = \"{LEAK}\" }}\n"),
        ),
        (
            "an ENV key given twice",
            format!("[[grants]]\nenv = {{ K = {{ value = \"{LEAK}\" }}, K = {{ value = \"x\" }} }}\n"),
        ),
        (
            "the same secret defined twice",
            format!("[secrets.x]\nvalue = \"{LEAK}\"\n[secrets.x]\nvalue = \"{LEAK}\"\n"),
        ),
        ("text after the value", format!("[secrets.x]\nvalue = \"{LEAK}\" trailing\n")),
        ("a bad escape in the value", format!("[secrets.x]\nvalue = \"{LEAK}\\q\"\n")),
        ("the value given twice", format!("[secrets.x]\nvalue = \"{LEAK}\"\nvalue = \"{LEAK}\"\n")),
        (
            "a bad secret name",
            format!("[secrets.\"bad name\"]\nvalue = \"{LEAK}\"\n"),
        ),
        (
            "a bad ENV key with an inline value",
            format!("[[grants]]\nenv = {{ \"1BAD\" = {{ value = \"{LEAK}\" }} }}\n"),
        ),
        (
            "a relative FILE path with an inline value",
            format!("[[grants]]\n[[grants.files]]\npath = \"rel\"\nvalue = \"{LEAK}\"\n"),
        ),
        (
            "an ENV value that is a number",
            "[[grants]]\nenv = { K = 98765432123 }\n".to_owned(),
        ),
        (
            "a literal value that is a number",
            "[secrets.x]\nvalue = 98765432123\n".to_owned(),
        ),
        (
            "an ENV value that is an array",
            format!("[[grants]]\nenv = {{ K = [\"{LEAK}\"] }}\n"),
        ),
        (
            "an inline value of the wrong type in a FILE",
            format!("[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = {{ v = \"{LEAK}\" }}\n"),
        ),
    ];
    for (case, text) in cases {
        let error: PolicyError = load_error(&text);
        let shown = format!("{error}\n{error:?}");
        for leak in [LEAK, "98765432123"] {
            assert!(!shown.contains(leak), "{case}: the error shows the value: {shown}");
        }
    }
}

/// SPEC §7: never a secret value in an error. A secret written in a shape the format
/// does not have (`[secrets]` then `name = "value"`, a common slip) must not be echoed
/// by the message that says so.
#[test]
fn a_load_error_never_shows_a_value_written_in_the_wrong_shape() {
    const LEAK: &str = "sk_test_fake_LEAK_4242";
    let cases: Vec<(&str, String)> = vec![
        (
            "a secret as a bare string",
            format!("[secrets]\ndb_password = \"{LEAK}\"\n"),
        ),
        (
            "a dotted secret as a bare string",
            format!("secrets.db_password = \"{LEAK}\"\n"),
        ),
        ("`secrets` as a string", format!("secrets = \"{LEAK}\"\n")),
        ("`grants` as a string", format!("grants = \"{LEAK}\"\n")),
        (
            "a FILE's value in the encoding",
            format!("[[grants]]\n[[grants.files]]\npath = \"/x\"\nvalue = \"v\"\nencoding = \"{LEAK}\"\n"),
        ),
    ];
    let mut failures = Vec::new();
    for (case, text) in cases {
        let error: PolicyError = load_error(&text);
        let shown = format!("{error}\n{error:?}");
        if shown.contains(LEAK) {
            failures.push(format!("{case}: {shown}"));
        }
    }
    assert_all_pass("values in the wrong shape", &failures);
}

#[test]
fn a_policy_file_that_does_not_load_names_the_missing_file_resolved_against_its_folder() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let policy_file = dir.path().join("policy.toml");
    write(
        &policy_file,
        b"[secrets.db]\nfile = \"secrets/missing.txt\"\n[[grants]]\nname = \"db\"\nenv = { DB = \"db\" }\n",
    );
    let error = match load_path(&policy_file) {
        Ok(_) => panic!("a policy naming a missing file loaded"),
        Err(e) => e,
    };
    let resolved = dir.path().join("secrets/missing.txt");
    let resolved = resolved.to_string_lossy();
    assert!(
        error.problems.iter().any(|p| p.contains(resolved.as_ref())),
        "no problem names {resolved}: {:#?}",
        error.problems
    );
}

#[test]
fn a_non_utf8_file_cannot_be_an_env_value_nor_a_utf8_file() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    write(&dir.path().join("blob.bin"), BLOB);
    for (case, text) in [
        (
            "ENV",
            "[secrets.blob]\nfile = \"blob.bin\"\n[[grants]]\nname = \"env-blob\"\nenv = { BLOB = \"blob\" }\n",
        ),
        (
            "FILE with encoding utf-8",
            "[secrets.blob]\nfile = \"blob.bin\"\n[[grants]]\nname = \"env-blob\"\n[[grants.files]]\npath = \"/b\"\nsecret = \"blob\"\nencoding = \"utf-8\"\n",
        ),
    ] {
        let error = match load_str("blob.toml", text, Some(dir.path())) {
            Ok(_) => panic!("{case}: a non-UTF-8 value loaded"),
            Err(e) => e,
        };
        let shown = error.to_string();
        assert!(shown.contains("env-blob"), "{case}: {shown}");
        assert!(!shown.contains(BLOB_BASE64), "{case}: {shown}");
    }
}
