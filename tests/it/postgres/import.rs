//! `db import` and `db export`: a TOML policy with every kind of source, FILE attributes
//! in their long forms and glob selectors goes in, a second import changes nothing, and
//! what comes out is a TOML policy that serves the same answers.

use std::time::Duration;

use serde_json::json;

use super::db::Db;
use super::env::Env;

/// Variables of envoi's own environment that the policy reads (`env` sources).
const VARS: [(&str, &str); 2] = [
    ("PG_TEST_SENTRY_DSN", "https://sentry.example/42"),
    ("PG_TEST_INLINE", "inline-from-env"),
];

const DB_PASSWORD: &str = "pg-db-password-Xy7";
const STRIPE_KEY: &str = "sk_live_pg_9Qw2";
const INLINE_SEALED: &str = "inline-sealed-3Rt";
const BLOB: &[u8] = &[0xff, 0x00, 0xfe, b'e', b'n', b'v'];

/// The workloads whose answers are compared.
const WORKLOADS: [(&str, &str, &str); 5] = [
    ("billing", "service", "api"),
    ("billing-eu", "job", "report-1"),
    ("billing", "job", "nightly"),
    ("web", "job", "report-x"),
    ("other", "thing", "x"),
];

fn policy(stripe_sealed: &str, inline_sealed: &str) -> String {
    format!(
        r#"
[secrets.log_level]
value = "info"

[secrets.db_password]
file = "db_password.txt"

[secrets.sentry_dsn]
env = "PG_TEST_SENTRY_DSN"

[secrets.stripe_key]
sealed = "{stripe_sealed}"

[secrets.database_url]
template = "postgres://app:${{secret.db_password}}@db:5432/${{projectId}}"

[[grants]]
name = "everyone"
project = "*"
env = {{ LOG_LEVEL = "log_level", REGION = {{ value = "eu-west" }} }}

[[grants]]
name = "billing-api"
project = "billing"
type = "service"
id = "api"
env = {{ STRIPE_KEY = "stripe_key", DATABASE_URL = "database_url", SENTRY_DSN = "sentry_dsn", INLINE_SEALED = {{ sealed = "{inline_sealed}" }}, GREETING = {{ template = "hello ${{nfObjectId}} of ${{projectId}}" }}, FROM_ENV = {{ env = "PG_TEST_INLINE" }} }}

[[grants.files]]
path = "/etc/billing/db_password"
secret = "db_password"
mode = "0400"
owner = "1000"

[[grants.files]]
path = "/etc/billing/app.conf"
value = "level=debug"
permissions = {{ policy = "KeepOrSet", mode = "0640" }}
owner = {{ policy = "KeepOrSetExplicit", value = "app" }}
group = {{ policy = "AlwaysSetInherited" }}

[[grants.files]]
path = "/etc/billing/blob.bin"
file = "blob.bin"

[[grants.files]]
path = "/etc/billing/dsn.b64"
secret = "sentry_dsn"
encoding = "base64"
group = {{ policy = "AlwaysSetExplicit", value = "staff" }}

# Unnamed, with globs.
[[grants]]
project = "billing-*"
type = "job"
env = {{ LOG_LEVEL = {{ value = "warn" }} }}

[[grants]]
name = "report-jobs"
type = "job"
id = "report-*"
env = {{ REPORT_BUCKET = {{ value = "s3://reports" }} }}

[[grants.files]]
path = "/etc/report/url"
template = "${{secret.database_url}}?job=${{nfObjectId}}"
encoding = "utf-8"
owner = {{ policy = "KeepOrSetInherited" }}
permissions = {{ policy = "AlwaysSet", mode = "600" }}
"#
    )
}

/// Every row's identity, version and timestamps, and the generation.
fn fingerprint(db: &Db) -> Vec<String> {
    let mut rows = db.strings(
        "SELECT concat_ws('|', 'secret', name, version, created_at, updated_at, updated_by, sealed, template) \
         FROM envoi_secrets ORDER BY name",
    );
    rows.extend(db.strings(
        "SELECT concat_ws('|', 'grant', name, project, type, object_id, version, created_at, updated_at, updated_by) \
         FROM envoi_grants ORDER BY name",
    ));
    rows.extend(db.strings(
        "SELECT concat_ws('|', 'item', grant_name, kind, target, secret, sealed, key_id, template, encoding, \
                permissions_policy, mode, owner_policy, owner_value, group_policy, group_value) \
         FROM envoi_grant_items ORDER BY grant_name, kind, target",
    ));
    rows.push(format!(
        "generation {}",
        db.int("SELECT generation FROM envoi_policy_state")
    ));
    rows
}

/// The value lines of `explain --show-values` with `config`.
fn explained(env: &Env, config: &str, (project, kind, id): (&str, &str, &str)) -> Vec<String> {
    let ran = env
        .run_with(
            &[
                "--config",
                config,
                "explain",
                "--project",
                project,
                "--type",
                kind,
                "--id",
                id,
                "--show-values",
            ],
            b"",
            &VARS,
        )
        .success();
    ran.stdout
        .lines()
        // Near misses name where each grant is written, which differs between stores.
        .take_while(|line| !line.starts_with("near misses:"))
        .filter(|line| !line.starts_with(char::is_whitespace))
        .map(str::to_owned)
        .collect()
}

/// Sets up the folder: master key, config, the policy and the files it reads.
fn setup(env: &Env) {
    let stripe = env
        .envoi(&["seal", "--name", "stripe_key"], STRIPE_KEY.as_bytes())
        .success();
    let inline = env
        .envoi(&["seal", "--name", "INLINE_SEALED"], INLINE_SEALED.as_bytes())
        .success();
    env.write("policy/db_password.txt", DB_PASSWORD);
    env.write("policy/blob.bin", BLOB);
    env.write("policy/policy.toml", policy(stripe.last_line(), inline.last_line()));
    env.toml_config("original.toml", "policy/policy.toml");
    env.envoi(&["db", "migrate"], b"").success();
}

#[test]
fn import_twice_changes_nothing() {
    let Some(db) = Db::create("import_twice_changes_nothing") else {
        return;
    };
    let env = Env::new(&db.url);
    setup(&env);

    let first = env
        .run_with(
            &["--config", "envoi.toml", "db", "import", "policy/policy.toml"],
            b"",
            &VARS,
        )
        .success();
    first.stdout_names("5 secret(s) written, 0 removed; 4 grant(s) written, 0 removed; 0 unchanged");
    first.never_shows(DB_PASSWORD).never_shows(STRIPE_KEY);
    assert_eq!(
        db.strings("SELECT name FROM envoi_grants ORDER BY name"),
        ["billing-*/job/*", "billing-api", "everyone", "report-jobs"]
    );
    let before = fingerprint(&db);
    // Let the clock move, so that a rewrite would show in updated_at.
    std::thread::sleep(Duration::from_millis(20));

    let second = env
        .run_with(
            &["--config", "envoi.toml", "db", "import", "policy/policy.toml"],
            b"",
            &VARS,
        )
        .success();
    second.stdout_names("0 secret(s) written, 0 removed; 0 grant(s) written, 0 removed; 9 unchanged");
    assert_eq!(fingerprint(&db), before, "a second import must not touch a row");

    // The same policy split over a folder of files is the same policy.
    let text = std::fs::read_to_string(env.join("policy/policy.toml")).expect("read the policy");
    let grants_at = text.find("[[grants]]").expect("grants");
    env.write("split/a-secrets.toml", &text[..grants_at]);
    env.write("split/b-grants.toml", &text[grants_at..]);
    env.write("split/db_password.txt", DB_PASSWORD);
    env.write("split/blob.bin", BLOB);
    env.run_with(&["--config", "envoi.toml", "db", "import", "split"], b"", &VARS)
        .success()
        .stdout_names("0 secret(s) written, 0 removed; 0 grant(s) written, 0 removed; 9 unchanged");
    assert_eq!(fingerprint(&db), before, "the split policy must not touch a row");

    // A change: one secret rewritten (version 2), one grant removed, the rest untouched.
    let text = std::fs::read_to_string(env.join("policy/policy.toml")).expect("read the policy");
    let report_at = text
        .find("[[grants]]\nname = \"report-jobs\"")
        .expect("the report grant");
    let changed = text[..report_at].replace("value = \"info\"", "value = \"debug\"");
    env.write("policy/policy.toml", changed);
    env.run_with(
        &["--config", "envoi.toml", "db", "import", "policy/policy.toml"],
        b"",
        &VARS,
    )
    .success()
    .stdout_names("1 secret(s) written, 0 removed; 0 grant(s) written, 1 removed; 7 unchanged");
    assert_eq!(
        db.strings("SELECT name || '=' || version FROM envoi_secrets ORDER BY name"),
        [
            "database_url=1",
            "db_password=1",
            "log_level=2",
            "sentry_dsn=1",
            "stripe_key=1"
        ]
    );
    assert_eq!(
        db.strings("SELECT name || '=' || version FROM envoi_grants ORDER BY name"),
        ["billing-*/job/*=1", "billing-api=1", "everyone=1"]
    );

    // A policy that does not load is refused whole, with the TOML store's message.
    let generation = db.int("SELECT generation FROM envoi_policy_state");
    env.write(
        "broken.toml",
        "[[grants]]\nname = \"broken\"\nproject = \"p\"\nenv = { K = \"missing\" }\n",
    );
    env.envoi(&["db", "import", "broken.toml"], b"")
        .failure()
        .stderr_names("names secret `missing`, which is not defined");
    assert_eq!(db.int("SELECT generation FROM envoi_policy_state"), generation);
    assert_eq!(db.int("SELECT count(*) FROM envoi_grants"), 3);
}

#[test]
fn export_is_a_toml_policy_that_serves_the_same() {
    let Some(db) = Db::create("export_is_a_toml_policy_that_serves_the_same") else {
        return;
    };
    let env = Env::new(&db.url);
    setup(&env);
    env.run_with(
        &["--config", "envoi.toml", "db", "import", "policy/policy.toml"],
        b"",
        &VARS,
    )
    .success();

    let export = env.envoi(&["db", "export"], b"").success();
    // Secrets stay sealed: a file's, a variable's, a sealed value's.
    for plain in [DB_PASSWORD, STRIPE_KEY, INLINE_SEALED, VARS[0].1, VARS[1].1] {
        export.never_shows(plain);
    }
    // Literals come back as literals, named and inline, so an export reads in review as
    // the policy that was imported.
    for literal in [
        "[secrets.log_level]\nvalue = \"info\"",
        "value = \"eu-west\"",
        "value = \"level=debug\"",
    ] {
        export.stdout_names(literal);
    }
    env.write("export/policy.toml", &export.stdout);
    env.toml_config("exported.toml", "export/policy.toml");
    env.run(&["--config", "exported.toml", "check"], b"")
        .success()
        .stdout_names("4 grants");
    env.envoi(&["check"], b"").success().stdout_names("4 grants");
    // Imported back, the export changes nothing.
    let generation = db.int("SELECT generation FROM envoi_policy_state");
    env.envoi(&["db", "import", "export/policy.toml"], b"")
        .success()
        .stdout_names("0 secret(s) written, 0 removed; 0 grant(s) written, 0 removed; 9 unchanged");
    assert_eq!(db.int("SELECT generation FROM envoi_policy_state"), generation);

    // `explain` gives the same values from the database, the export and the original.
    for workload in WORKLOADS {
        let from_db = explained(&env, "envoi.toml", workload);
        assert!(from_db.len() > 1 || workload.0 == "other", "{workload:?}: {from_db:?}");
        assert_eq!(explained(&env, "exported.toml", workload), from_db, "{workload:?}");
        assert_eq!(explained(&env, "original.toml", workload), from_db, "{workload:?}");
    }
    let api = explained(&env, "envoi.toml", WORKLOADS[0]);
    for line in [
        format!("ENV DATABASE_URL = \"postgres://app:{DB_PASSWORD}@db:5432/billing\""),
        format!("ENV STRIPE_KEY = \"{STRIPE_KEY}\""),
        format!("ENV INLINE_SEALED = \"{INLINE_SEALED}\""),
        "ENV GREETING = \"hello api of billing\"".to_owned(),
        "ENV FROM_ENV = \"inline-from-env\"".to_owned(),
    ] {
        assert!(api.contains(&line), "missing `{line}` in {api:#?}");
    }

    // A server on the database and one on the export answer alike, byte for byte.
    let on_db = env.serve("envoi.toml");
    let on_export = env.serve("exported.toml");
    let api = ("billing", "service", "api");
    let want = json!({"secrets": [
        {"type": "ENV", "key": "DATABASE_URL", "value": format!("postgres://app:{DB_PASSWORD}@db:5432/billing")},
        {"type": "ENV", "key": "FROM_ENV", "value": "inline-from-env"},
        {"type": "ENV", "key": "GREETING", "value": "hello api of billing"},
        {"type": "ENV", "key": "INLINE_SEALED", "value": INLINE_SEALED},
        {"type": "ENV", "key": "LOG_LEVEL", "value": "info"},
        {"type": "ENV", "key": "REGION", "value": "eu-west"},
        {"type": "ENV", "key": "SENTRY_DSN", "value": VARS[0].1},
        {"type": "ENV", "key": "STRIPE_KEY", "value": STRIPE_KEY},
        {"type": "FILE", "path": "/etc/billing/app.conf", "data": "level=debug",
         "owner": {"policy": "KeepOrSetExplicit", "value": "app"},
         "group": {"policy": "AlwaysSetInherited"},
         "permissions": {"policy": "KeepOrSet", "mode": "0640"}},
        {"type": "FILE", "path": "/etc/billing/blob.bin", "data": "/wD+ZW52", "encoding": "base64"},
        {"type": "FILE", "path": "/etc/billing/db_password", "data": DB_PASSWORD,
         "owner": {"policy": "AlwaysSetExplicit", "value": "1000"},
         "permissions": {"policy": "AlwaysSet", "mode": "0400"}},
        {"type": "FILE", "path": "/etc/billing/dsn.b64", "data": "aHR0cHM6Ly9zZW50cnkuZXhhbXBsZS80Mg==",
         "encoding": "base64", "group": {"policy": "AlwaysSetExplicit", "value": "staff"}},
    ]});
    on_db.blocking_wait_for(api, &want, Duration::from_secs(10));
    let report = ("billing-eu", "job", "report-1");
    let want_report = json!({"secrets": [
        {"type": "ENV", "key": "LOG_LEVEL", "value": "warn"},
        {"type": "ENV", "key": "REGION", "value": "eu-west"},
        {"type": "ENV", "key": "REPORT_BUCKET", "value": "s3://reports"},
        {"type": "FILE", "path": "/etc/report/url",
         "data": format!("postgres://app:{DB_PASSWORD}@db:5432/billing-eu?job=report-1"),
         "encoding": "utf-8", "owner": {"policy": "KeepOrSetInherited"},
         "permissions": {"policy": "AlwaysSet", "mode": "0600"}},
    ]});
    on_db.blocking_wait_for(report, &want_report, Duration::from_secs(5));
    for (project, kind, id) in WORKLOADS {
        let a = on_db.blocking_secrets(project, kind, id);
        let b = on_export.blocking_secrets(project, kind, id);
        assert_eq!((a.status, a.body_text()), (200, b.body_text()), "{project}/{kind}/{id}");
    }
}

/// A fleet policy of `n` workloads in the shape of `bench/gen_policy.py`: per project a
/// named secret, per workload an unnamed exact grant with an inline value and that
/// secret, and every third one a FILE with an inline value and an owner.
fn fleet(n: usize, shard_of_the_first: usize) -> String {
    let projects = (n / 20).max(1);
    let mut text = String::new();
    for p in 0..projects {
        text += &format!("[secrets.p{p}_api_key]\nvalue = \"key-{p}\"\n\n");
    }
    for i in 0..n {
        let p = i % projects;
        text += &format!(
            "[[grants]]\nproject = \"proj-{p}\"\ntype = \"service\"\nid = \"svc-{i}\"\n\
             env = {{ SERVICE_NAME = {{ value = \"svc-{i}\" }}, API_KEY = \"p{p}_api_key\" }}\n\n"
        );
        if i % 3 == 0 {
            let shard = if i == 0 { shard_of_the_first } else { i % 64 };
            text += &format!(
                "[[grants.files]]\npath = \"/etc/app/config.json\"\nvalue = '{{\"shard\":{shard}}}'\nowner = \"1000\"\n\n"
            );
        }
    }
    text
}

/// Thousands of workloads go in with a few statements per table (the generation moves
/// once for the whole import, not once per row), a second import writes nothing and is
/// quick, and a change to one workload writes that one grant.
#[test]
fn a_fleet_imports_at_once_and_imports_again_writing_nothing() {
    const WORKLOADS: usize = 3000;
    let Some(db) = Db::create("a_fleet_imports_at_once_and_imports_again_writing_nothing") else {
        return;
    };
    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    let generation = || db.int("SELECT generation FROM envoi_policy_state");
    let empty = generation();
    env.write("fleet/policy.toml", fleet(WORKLOADS, 0));

    env.envoi(&["db", "import", "fleet/policy.toml"], b"")
        .success()
        .stdout_names("150 secret(s) written, 0 removed; 3000 grant(s) written, 0 removed; 0 unchanged");
    assert_eq!(generation(), empty + 1, "one import, one generation");
    assert_eq!(db.int("SELECT count(*) FROM envoi_grant_items"), 7000);
    let before = fingerprint(&db);

    let started = std::time::Instant::now();
    env.envoi(&["db", "import", "fleet/policy.toml"], b"")
        .success()
        .stdout_names("0 secret(s) written, 0 removed; 0 grant(s) written, 0 removed; 3150 unchanged");
    let again = started.elapsed();
    assert_eq!(fingerprint(&db), before, "a second import must not touch a row");
    // Generous for a debug build on a busy machine; row by row it took far longer.
    assert!(again < Duration::from_secs(15), "the second import took {again:?}");

    env.write("fleet/policy.toml", fleet(WORKLOADS, 99));
    env.envoi(&["db", "import", "fleet/policy.toml"], b"")
        .success()
        .stdout_names("0 secret(s) written, 0 removed; 1 grant(s) written, 0 removed; 3149 unchanged");
    assert_eq!(generation(), empty + 2);
    assert_eq!(
        db.strings("SELECT name FROM envoi_grants WHERE version > 1"),
        ["proj-0/service/svc-0"]
    );
}

/// A database made by the first schema, written as the old code wrote (a statement a
/// row, each moving the generation), migrates forward with `db migrate` and keeps every
/// row; afterwards a transaction moves the generation once, however many statements.
#[test]
fn db_migrate_moves_a_database_of_the_first_schema_forward_keeping_its_rows() {
    use sqlx::Connection as _;
    let Some(db) = Db::create("db_migrate_moves_a_database_of_the_first_schema_forward") else {
        return;
    };
    let first = tempfile::tempdir().expect("a temporary folder");
    let name = "20261124000001_policy.sql";
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(name),
        first.path().join(name),
    )
    .expect("copy the first migration");
    let (url, dir) = (db.url.clone(), first.path().to_owned());
    crate::postgres::db::block_on(move || async move {
        let migrator = sqlx::migrate::Migrator::new(dir.as_path())
            .await
            .expect("the first migration");
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        migrator.run(&mut conn).await.expect("apply the first migration");
    });
    let generation = || db.int("SELECT generation FROM envoi_policy_state");
    for statement in [
        "INSERT INTO envoi_secrets (name, template, updated_by) VALUES ('greeting', 'hello ${projectId}', 'cli:old')",
        "INSERT INTO envoi_grants (name, project, updated_by) VALUES ('billing', 'billing', 'cli:old')",
        "INSERT INTO envoi_grant_items (grant_name, kind, target, secret) VALUES ('billing', 'ENV', 'GREETING', 'greeting')",
    ] {
        db.exec(statement);
    }
    assert_eq!(generation(), 4, "the first schema moves the generation per statement");
    let before = fingerprint(&db);

    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    assert_eq!(
        fingerprint(&db),
        before,
        "the migration must keep every row and the generation"
    );
    assert_eq!(db.int("SELECT count(*) FROM _sqlx_migrations"), 7);
    // The history starts with what the database held, at its generation.
    assert_eq!(
        db.strings("SELECT concat_ws(' ', generation, actor, kind) FROM envoi_changes ORDER BY generation"),
        ["4 migration baseline"]
    );
    assert_eq!(
        db.strings("SELECT concat_ws(' ', object, name, action) FROM envoi_change_items ORDER BY object, name"),
        ["grant billing added", "secret greeting put"]
    );

    db.exec(
        "BEGIN;
         INSERT INTO envoi_grants (name, project, updated_by) VALUES ('web', 'web', 'cli:new');
         INSERT INTO envoi_grant_items (grant_name, kind, target, secret) VALUES ('web', 'ENV', 'GREETING', 'greeting');
         UPDATE envoi_secrets SET template = 'hi ${projectId}', version = 2;
         COMMIT;",
    );
    assert_eq!(generation(), 5, "three statements in one transaction, one generation");
    assert_eq!(
        db.strings("SELECT concat_ws(' ', object, name, action) FROM envoi_change_items WHERE generation = 5 ORDER BY object, name"),
        ["grant web added", "secret greeting put"],
        "a write that is not envoi's is recorded too"
    );
    env.envoi(&["db", "export"], b"")
        .success()
        .stdout_names("hi ${projectId}")
        .stdout_names("billing");
}

/// An import that cannot finish within `store.import_timeout_seconds` (here another
/// writer holds the tables) gives up, writes nothing, and its error names the setting.
#[test]
fn an_import_past_its_time_bound_writes_nothing_and_names_the_setting() {
    use sqlx::Connection as _;
    let Some(db) = Db::create("an_import_past_its_time_bound_writes_nothing_and_names_the_setting") else {
        return;
    };
    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    env.write("fleet/policy.toml", fleet(20, 0));

    let (locked, on_lock) = std::sync::mpsc::channel();
    let (release, on_release) = std::sync::mpsc::channel::<()>();
    let url = db.url.clone();
    let holder = std::thread::spawn(move || {
        crate::postgres::db::block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            let mut tx = conn.begin().await.expect("begin");
            sqlx::query("LOCK TABLE envoi_secrets IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .expect("lock");
            locked.send(()).expect("the test waits");
            // Nothing else runs on this runtime: blocking it is harmless.
            let _ = on_release.recv_timeout(Duration::from_secs(60));
            tx.rollback().await.expect("rollback");
        })
    });
    on_lock.recv().expect("the lock is taken");
    let ran = env
        .run_with(
            &["--config", "envoi.toml", "db", "import", "fleet/policy.toml"],
            b"",
            &[("ENVOI__STORE__IMPORT_TIMEOUT_SECONDS", "1")],
        )
        .failure();
    release.send(()).expect("the holder waits");
    holder.join().expect("the holder ends");
    ran.stderr_names("the import did not finish within 1 s")
        .stderr_names("store.import_timeout_seconds")
        .stderr_names("ENVOI__STORE__IMPORT_TIMEOUT_SECONDS");
    assert_eq!(db.int("SELECT count(*) FROM envoi_grants"), 0);
}

#[test]
fn a_literal_replaced_by_secret_put_is_exported_sealed() {
    let Some(db) = Db::create("a_literal_replaced_by_secret_put_is_exported_sealed") else {
        return;
    };
    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    env.write(
        "p.toml",
        "[secrets.region]\nvalue = \"eu\"\n\n[[grants]]\nname = \"all\"\nenv = { REGION = \"region\", ZONE = { value = \"a\" } }\n",
    );
    env.envoi(&["db", "import", "p.toml"], b"").success();
    let export = env.envoi(&["db", "export"], b"").success();
    export
        .stdout_names("[secrets.region]\nvalue = \"eu\"")
        .stdout_names("value = \"a\"");
    // The database holds the literals sealed all the same.
    assert_eq!(
        db.int("SELECT count(*) FROM envoi_secrets WHERE sealed IS NOT NULL AND literal"),
        1
    );

    // A value put by hand may be a secret: it is exported sealed.
    env.put("region", "now-a-secret-eu");
    let export = env.envoi(&["db", "export"], b"").success();
    export.never_shows("now-a-secret-eu");
    assert!(!export.stdout.contains("value = \"eu\""), "{export}");
    export.stdout_names("[secrets.region]\nsealed = \"envoi:v1:");
}
