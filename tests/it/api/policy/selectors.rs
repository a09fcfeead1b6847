//! Who receives what: exact and glob selectors, which grant wins by specificity, and
//! how the items of several matching grants are combined and ordered.

use std::collections::BTreeSet;

use crate::api::helpers::*;

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
    let cases = [
        (
            "three grants",
            wl("billing", "service", "api"),
            secrets_body(&[
                env_item("DB_URL", "fake-db-url"),
                env_item("LOG_LEVEL", "debug"),
                env_item("REGION", "eu-west"),
                env_item("STRIPE_KEY", "fake-stripe-key-5d2b"),
                file_item("/etc/billing/stripe", "fake-stripe-key-5d2b"),
                file_item("/etc/motd", "billing api"),
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
                file_item("/etc/motd", "welcome"),
            ]),
        ),
        (
            "one grant",
            wl("shop", "service", "api"),
            secrets_body(&[
                env_item("LOG_LEVEL", "info"),
                env_item("REGION", "eu-west"),
                file_item("/etc/motd", "welcome"),
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
    let want = secrets_body(&[
        env_item("A", "7"),
        env_item("B", "13"),
        env_item("Z", "12"),
        env_item("Z1", "6"),
        env_item("_Z", "10"),
        env_item("a", "11"),
        env_item("b", "5"),
        file_item("/B", "4"),
        file_item("/a-b", "9"),
        file_item("/a/a", "8"),
        file_item("/a/b", "3"),
        file_item("/z", "1"),
        file_item("/é", "2"),
    ]);
    assert_eq!(body, want);
}

#[tokio::test]
async fn names_sharing_their_first_eight_bytes_are_ordered_and_overridden_by_all_their_bytes() {
    // The answer sorts by kind and the names' first eight bytes before the whole names:
    // these all share `DATABASE` or `/etc/app`, and the exact grant overrides two of
    // the project's.
    let policy = r#"
[[grants]]
name = "project"
project = "p"
env = { DATABASE_URL = { value = "project-url" }, DATABASE_USER = { value = "project-user" }, DATABASE = { value = "project-db" } }
[[grants.files]]
path = "/etc/app/config.yaml"
value = "project-yaml"
[[grants.files]]
path = "/etc/app/config.json"
value = "project-json"

[[grants]]
name = "exact"
project = "p"
type = "t"
id = "i"
env = { DATABASE_URL_RO = { value = "exact-ro" }, DATABASE_URL = { value = "exact-url" }, DATABASEX = { value = "exact-x" } }
[[grants.files]]
path = "/etc/app/config.json"
value = "exact-json"
[[grants.files]]
path = "/etc/app"
value = "exact-dir"
"#;
    let app = serve_app(policy).await;
    let want = secrets_body(&[
        env_item("DATABASE", "project-db"),
        env_item("DATABASEX", "exact-x"),
        env_item("DATABASE_URL", "exact-url"),
        env_item("DATABASE_URL_RO", "exact-ro"),
        env_item("DATABASE_USER", "project-user"),
        file_item("/etc/app", "exact-dir"),
        file_item("/etc/app/config.json", "exact-json"),
        file_item("/etc/app/config.yaml", "project-yaml"),
    ]);
    assert_eq!(app.answer_for(wl("p", "t", "i")).await, want);
}
