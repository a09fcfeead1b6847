//! A write checks what it can affect, not the whole policy (SPEC §2, Stores): the grants
//! that use a secret through templates at any depth, the grants of equal specificity it
//! could conflict with, and a writer that waits for the one before it checks against
//! that one's change.

use std::time::{Duration, Instant};

use sqlx::Connection as _;

use super::db::{block_on, Db};
use super::env::Env;

fn migrated(test: &str) -> Option<(Db, Env)> {
    let db = Db::create(test)?;
    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    Some((db, env))
}

/// A value that is not UTF-8 may be a FILE's data, never an ENV value: a secret spliced
/// into an ENV item two templates away is refused such a value, and the refusal names
/// the grant; the value served stays the one before.
#[test]
fn a_secret_put_is_checked_against_the_grants_that_use_it_through_two_templates() {
    let Some((db, env)) = migrated("secret_put_through_two_templates") else {
        return;
    };
    env.write(
        "policy.toml",
        "[secrets.password]\nvalue = \"hunter2\"\n\
         [secrets.inner]\ntemplate = \"db:${secret.password}\"\n\
         [secrets.url]\ntemplate = \"postgres://${secret.inner}/${projectId}\"\n\
         [secrets.unrelated]\nvalue = \"x\"\n\
         [[grants]]\nname = \"files\"\nproject = \"p\"\n\
         [[grants.files]]\npath = \"/etc/password\"\nsecret = \"password\"\n\
         [[grants]]\nname = \"app\"\nproject = \"p\"\ntype = \"service\"\nenv = { DATABASE_URL = \"url\" }\n\
         [[grants]]\nname = \"other\"\nproject = \"q\"\nenv = { U = \"unrelated\" }\n",
    );
    env.envoi(&["db", "import", "policy.toml"], b"").success();
    let generation = db.int("SELECT generation FROM envoi_policy_state");

    let refused = env
        .envoi(&["secret", "put", "password", "--raw"], b"\xff\xfe not text")
        .failure();
    refused
        .stderr_names("grant `app`")
        .stderr_names("DATABASE_URL")
        .stderr_names("UTF-8");
    assert_eq!(
        db.int("SELECT generation FROM envoi_policy_state"),
        generation,
        "nothing committed"
    );

    // Text is fine, and reaches the workload through both templates.
    env.put("password", "s3cret");
    let explained = env
        .envoi(
            &[
                "explain",
                "--project",
                "p",
                "--type",
                "service",
                "--id",
                "api",
                "--show-values",
            ],
            b"",
        )
        .success();
    explained.stdout_names("postgres://db:s3cret/p");
}

/// Two grants of equal specificity may give one key from two secrets while both hold the
/// same value; a `secret put` that makes them differ is a conflict, refused naming both.
#[test]
fn a_secret_put_that_would_make_two_grants_conflict_is_refused() {
    let Some((db, env)) = migrated("secret_put_conflict") else {
        return;
    };
    env.write(
        "policy.toml",
        "[secrets.one]\nvalue = \"same\"\n[secrets.two]\nvalue = \"same\"\n\
         [[grants]]\nname = \"a\"\nproject = \"p\"\nenv = { K = \"one\" }\n\
         [[grants]]\nname = \"b\"\nproject = \"p\"\nenv = { K = \"two\" }\n",
    );
    env.envoi(&["db", "import", "policy.toml"], b"").success();
    let refused = env.envoi(&["secret", "put", "two"], b"different").failure();
    refused
        .stderr_names("grant `a`")
        .stderr_names("grant `b`")
        .stderr_names("equal specificity");
    assert_eq!(
        db.int("SELECT version::bigint FROM envoi_secrets WHERE name = 'two'"),
        1
    );
}

/// A writer that starts while another's change is not yet committed waits for it, then
/// checks against it: two changes each valid alone cannot commit a conflict together.
#[test]
fn a_write_waits_for_the_change_before_it_and_is_checked_against_it() {
    let Some((db, env)) = migrated("write_waits_for_the_one_before") else {
        return;
    };
    env.put("s1", "value-one");
    env.put("s2", "value-two");
    let url = db.url.clone();
    // Another writer, straight in SQL: grant `a` written, not yet committed, for 1.5 s.
    let other = std::thread::spawn(move || {
        block_on(move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            sqlx::raw_sql(
                "BEGIN;
                 INSERT INTO envoi_grants (name, project, updated_by) VALUES ('a', 'p', 'test');
                 INSERT INTO envoi_grant_items (grant_name, kind, target, secret) VALUES ('a', 'ENV', 'K', 's1');
                 SELECT pg_sleep(1.5);
                 COMMIT;",
            )
            .execute(&mut conn)
            .await
            .expect("the other writer commits");
        })
    });
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    let refused = env
        .envoi(&["grant", "add", "b", "--project", "p", "--env", "K=s2"], b"")
        .failure();
    let waited = started.elapsed();
    other.join().expect("the other writer");
    refused.stderr_names("grant `a`").stderr_names("equal specificity");
    assert!(
        waited >= Duration::from_millis(800),
        "did not wait for the other writer: {waited:?}"
    );
    assert_eq!(db.strings("SELECT name FROM envoi_grants"), ["a"]);
}

/// `grant put` creates a grant, then replaces it in one change (one generation), checked
/// like `grant add`.
#[test]
fn grant_put_creates_then_replaces_in_one_change() {
    let Some((db, env)) = migrated("grant_put") else {
        return;
    };
    env.put("s1", "value-one");
    env.put("s2", "value-two");
    env.envoi(&["grant", "put", "a", "--project", "p", "--env", "K=s1"], b"")
        .success();
    let generation = db.int("SELECT generation FROM envoi_policy_state");
    env.envoi(&["grant", "put", "a", "--project", "p", "--env", "K=s2"], b"")
        .success()
        .stdout_names("replaced");
    assert_eq!(db.int("SELECT generation FROM envoi_policy_state"), generation + 1);
    assert_eq!(
        db.strings("SELECT secret FROM envoi_grant_items WHERE grant_name = 'a'"),
        ["s2"]
    );
    env.envoi(&["grant", "add", "a", "--project", "p", "--env", "K=s1"], b"")
        .failure()
        .stderr_names("grant put");
    env.envoi(&["grant", "put", "a", "--project", "p", "--env", "K=nope"], b"")
        .failure()
        .stderr_names("names secret `nope`, which is not defined");
    assert_eq!(
        db.strings("SELECT secret FROM envoi_grant_items WHERE grant_name = 'a'"),
        ["s2"]
    );
}

/// Twenty writers at once, each valid: every change lands, each in a generation of its
/// own, and the history records each one.
#[test]
fn concurrent_writers_lose_no_change() {
    let Some((db, env)) = migrated("concurrent_writers_lose_no_change") else {
        return;
    };
    env.put("shared", "value");
    let before = db.int("SELECT generation FROM envoi_policy_state");
    let env = std::sync::Arc::new(env);
    let writers: Vec<_> = (0..20)
        .map(|n| {
            let env = env.clone();
            std::thread::spawn(move || {
                if n % 2 == 0 {
                    let name = format!("g{n}");
                    let project = format!("p{n}");
                    env.envoi(
                        &["grant", "add", &name, "--project", &project, "--env", "K=shared"],
                        b"",
                    )
                } else {
                    env.envoi(&["secret", "put", &format!("s{n}")], format!("v{n}").as_bytes())
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("a writer").success();
    }
    assert_eq!(db.int("SELECT generation FROM envoi_policy_state"), before + 20);
    assert_eq!(db.int("SELECT count(*) FROM envoi_grants"), 10);
    assert_eq!(db.int("SELECT count(*) FROM envoi_secrets"), 11);
    assert_eq!(
        db.int(&format!(
            "SELECT count(*) FROM envoi_changes WHERE generation > {before}"
        )),
        20
    );
}
