//! `db migrate`, `secret` and `grant` on a database of their own: round trips, the
//! refusals the TOML store gives, and the constraints the schema itself enforces.

use std::time::Duration;

use serde_json::json;

use super::db::Db;
use super::env::Env;

/// The tables `db migrate` creates.
const TABLES: [&str; 6] = [
    "envoi_change_items",
    "envoi_changes",
    "envoi_grant_items",
    "envoi_grants",
    "envoi_policy_state",
    "envoi_secrets",
];

fn envoi_tables(db: &Db) -> Vec<String> {
    db.strings(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name LIKE 'envoi\\_%' ORDER BY table_name",
    )
}

/// A migrated database with its config folder, or `None` when there is no database.
fn migrated(test: &str) -> Option<(Db, Env)> {
    let db = Db::create(test)?;
    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    Some((db, env))
}

/// The id of the newest master key of `env`, read from a value `envoi seal` makes.
fn key_id(env: &Env) -> String {
    let sealed = env.envoi(&["seal", "--name", "probe"], b"probe").success();
    let sealed = sealed.last_line().to_owned();
    let parts: Vec<&str> = sealed.split(':').collect();
    assert!(
        parts.len() == 4 && parts[..2] == ["envoi", "v1"],
        "not a sealed value: {sealed}"
    );
    parts[2].to_owned()
}

/// The row of `secret ls` for `name`, split on whitespace.
#[track_caller]
fn ls_row(listing: &str, name: &str) -> Vec<String> {
    listing
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|fields| fields.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("`secret ls` does not list `{name}`:\n{listing}"))
}

/// The value lines of `explain --show-values` (`TARGET = "value"`).
fn explained(env: &Env, config: &str, project: &str, kind: &str, id: &str) -> Vec<String> {
    let ran = env
        .run(
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
        )
        .success();
    ran.stdout
        .lines()
        .take_while(|line| !line.starts_with("near misses:"))
        .filter(|line| !line.starts_with(char::is_whitespace))
        .map(str::to_owned)
        .collect()
}

#[test]
fn migrate_creates_the_tables_and_can_run_twice() {
    let Some(db) = Db::create("migrate_creates_the_tables_and_can_run_twice") else {
        return;
    };
    let env = Env::new(&db.url);
    assert!(envoi_tables(&db).is_empty(), "a fresh database has no envoi tables");

    env.envoi(&["db", "migrate"], b"").success();
    assert_eq!(envoi_tables(&db), TABLES);
    assert_eq!(
        db.int("SELECT count(*) FROM _sqlx_migrations"),
        7,
        "the seven migrations"
    );
    let generation = db.int("SELECT generation FROM envoi_policy_state");

    env.envoi(&["db", "migrate"], b"").success();
    assert_eq!(envoi_tables(&db), TABLES);
    assert_eq!(db.int("SELECT count(*) FROM _sqlx_migrations"), 7, "applied once");
    assert_eq!(db.int("SELECT generation FROM envoi_policy_state"), generation);

    // An empty policy is a valid one.
    env.envoi(&["check"], b"")
        .success()
        .stdout_names("0 grants and 0 secrets");
}

#[test]
fn secrets_put_from_stdin_and_file_list_without_values_and_remove() {
    let Some((db, env)) = migrated("secrets_put_from_stdin_and_file_list_without_values_and_remove") else {
        return;
    };
    let kid = key_id(&env);

    let first = "stdin-value-7Qx9";
    env.envoi(&["secret", "put", "db_password"], format!("{first}\n").as_bytes())
        .success()
        .stdout_names("version 1")
        .never_shows(first);
    let from_file = "file-value-9Zr4";
    env.write("token.txt", from_file);
    env.envoi(&["secret", "put", "api_token", "--file", "token.txt"], b"")
        .success()
        .stdout_names("version 1")
        .never_shows(from_file);

    let ls = env.envoi(&["secret", "ls"], b"").success();
    ls.never_shows(first).never_shows(from_file);
    for name in ["db_password", "api_token"] {
        let row = ls_row(&ls.stdout, name);
        assert_eq!(row[2], kid, "key id of `{name}`\n{}", ls.stdout);
        assert_eq!(row[3], "1", "version of `{name}`\n{}", ls.stdout);
    }
    // Not even the sealed form is listed.
    for sealed in db.strings("SELECT sealed FROM envoi_secrets") {
        assert!(
            !ls.stdout.contains(&sealed),
            "`secret ls` shows a sealed value\n{}",
            ls.stdout
        );
        assert!(
            sealed.starts_with(&format!("envoi:v1:{kid}:")),
            "sealed at rest: {sealed}"
        );
        assert!(!sealed.contains(first) && !sealed.contains(from_file));
    }

    // A second put: a new version, the new value.
    let second = "stdin-value-2Kp1";
    env.envoi(&["secret", "put", "db_password"], second.as_bytes())
        .success()
        .stdout_names("version 2")
        .never_shows(second);
    let ls = env.envoi(&["secret", "ls"], b"").success();
    ls.never_shows(first).never_shows(second).never_shows(from_file);
    assert_eq!(ls_row(&ls.stdout, "db_password")[3], "2", "{}", ls.stdout);
    assert_eq!(ls_row(&ls.stdout, "api_token")[3], "1", "{}", ls.stdout);
    assert_eq!(
        db.strings("SELECT version::text FROM envoi_secrets WHERE name = 'db_password'"),
        ["2"]
    );

    // What the values open to (stdin drops the newline `echo` adds; a file is taken whole).
    env.envoi(
        &[
            "grant",
            "add",
            "reader",
            "--project",
            "p",
            "--env",
            "API_TOKEN=api_token",
            "--env",
            "DB_PASSWORD=db_password",
        ],
        b"",
    )
    .success();
    assert_eq!(
        explained(&env, "envoi.toml", "p", "service", "x"),
        [
            "p/service/x receives 2 item(s)".to_owned(),
            format!("ENV API_TOKEN = \"{from_file}\""),
            format!("ENV DB_PASSWORD = \"{second}\""),
        ]
    );

    // Removing: once no grant names it, the secret goes; a second removal is refused.
    env.envoi(&["grant", "rm", "reader"], b"").success();
    env.envoi(&["secret", "rm", "api_token"], b"").success();
    let ls = env.envoi(&["secret", "ls"], b"").success();
    assert!(
        !ls.stdout.lines().any(|l| l.starts_with("api_token ")),
        "removed secret still listed\n{}",
        ls.stdout
    );
    ls_row(&ls.stdout, "db_password");
    env.envoi(&["secret", "rm", "api_token"], b"")
        .failure()
        .stderr_names("api_token");
}

#[test]
fn grants_add_list_serve_and_remove() {
    let Some((db, env)) = migrated("grants_add_list_serve_and_remove") else {
        return;
    };
    env.put("db_password", "pw-value-1");
    env.put("tls", "cert-data-1");
    env.envoi(
        &[
            "grant",
            "add",
            "billing-api",
            "--project",
            "p",
            "--type",
            "t",
            "--id",
            "i",
            "--env",
            "DB_PASSWORD=db_password",
            "--file",
            "/etc/x=tls,mode=0400,owner=1000",
        ],
        b"",
    )
    .success()
    .stdout_names("billing-api");

    let ls = env.envoi(&["grant", "ls"], b"").success();
    ls.stdout_names("billing-api")
        .stdout_names("project=p type=t id=i")
        .stdout_names("ENV DB_PASSWORD = secret `db_password`")
        .stdout_names("FILE /etc/x = secret `tls`")
        .never_shows("pw-value-1")
        .never_shows("cert-data-1");

    let server = env.serve("envoi.toml");
    let want = json!({"secrets": [
        {"type": "ENV", "key": "DB_PASSWORD", "value": "pw-value-1"},
        {"type": "FILE", "path": "/etc/x", "data": "cert-data-1",
         "owner": {"policy": "AlwaysSetExplicit", "value": "1000"},
         "permissions": {"policy": "AlwaysSet", "mode": "0400"}},
    ]});
    server.blocking_wait_for(("p", "t", "i"), &want, Duration::from_secs(10));
    let other = server.blocking_secrets("p", "t", "other");
    assert_eq!((other.status, other.json()), (200, json!({"secrets": []})));

    // Another grant stays: a policy left with none is never served (SPEC §2).
    env.envoi(
        &[
            "grant",
            "add",
            "other",
            "--project",
            "p",
            "--type",
            "t",
            "--id",
            "other",
            "--env",
            "DB_PASSWORD=db_password",
        ],
        b"",
    )
    .success();
    env.envoi(&["grant", "rm", "billing-api"], b"").success();
    assert_eq!(
        db.int("SELECT count(*) FROM envoi_grant_items WHERE grant_name = 'billing-api'"),
        0,
        "items go with their grant"
    );
    server.blocking_wait_for(("p", "t", "i"), &json!({"secrets": []}), Duration::from_secs(2));
    let ls = env.envoi(&["grant", "ls"], b"").success();
    assert!(
        !ls.stdout.contains("billing-api"),
        "removed grant still listed\n{}",
        ls.stdout
    );
    env.envoi(&["grant", "rm", "billing-api"], b"")
        .failure()
        .stderr_names("billing-api");
    let log = server.stderr();
    assert!(
        !log.contains("pw-value-1") && !log.contains("cert-data-1"),
        "a value in the log\n{log}"
    );
}

#[test]
fn refusals_give_the_toml_store_messages() {
    let Some((db, env)) = migrated("refusals_give_the_toml_store_messages") else {
        return;
    };
    env.put("s1", "value-one");
    env.put("s2", "value-two");

    // A grant that names an undefined secret.
    let refused = env
        .envoi(&["grant", "add", "bad", "--project", "p", "--env", "K=x"], b"")
        .failure();
    refused
        .stderr_names("names secret `x`, which is not defined")
        .stderr_names("bad");
    assert_eq!(db.int("SELECT count(*) FROM envoi_grants"), 0, "nothing written");

    // The same mistake in a TOML policy gives the same sentence.
    env.write(
        "bad.toml",
        "[[grants]]\nname = \"bad\"\nproject = \"p\"\nenv = { K = \"x\" }\n",
    );
    env.toml_config("toml.toml", "bad.toml");
    env.run(&["--config", "toml.toml", "check"], b"")
        .failure()
        .stderr_names("names secret `x`, which is not defined");

    // A secret a grant still uses cannot go.
    env.envoi(&["grant", "add", "a", "--project", "p", "--env", "K=s1"], b"")
        .success();
    let generation = db.int("SELECT generation FROM envoi_policy_state");
    env.envoi(&["secret", "rm", "s1"], b"").failure().stderr_names("`s1`");
    assert_eq!(db.strings("SELECT name FROM envoi_secrets ORDER BY name"), ["s1", "s2"]);
    assert_eq!(
        db.int("SELECT generation FROM envoi_policy_state"),
        generation,
        "rolled back"
    );
    assert_eq!(
        explained(&env, "envoi.toml", "p", "t", "i"),
        ["p/t/i receives 1 item(s)", "ENV K = \"value-one\""]
    );

    // Two grants of equal specificity that overlap and give K different secrets.
    let refused = env
        .envoi(&["grant", "add", "b", "--project", "p", "--env", "K=s2"], b"")
        .failure();
    refused
        .stderr_names("grant `a`")
        .stderr_names("grant `b`")
        .stderr_names("equal specificity");
    assert_eq!(db.strings("SELECT name FROM envoi_grants"), ["a"]);
    env.write(
        "conflict.toml",
        "[secrets.s1]\nvalue = \"1\"\n[secrets.s2]\nvalue = \"2\"\n\
         [[grants]]\nname = \"a\"\nproject = \"p\"\nenv = { K = \"s1\" }\n\
         [[grants]]\nname = \"b\"\nproject = \"p\"\nenv = { K = \"s2\" }\n",
    );
    env.toml_config("toml.toml", "conflict.toml");
    env.run(&["--config", "toml.toml", "check"], b"")
        .failure()
        .stderr_names("equal specificity");

    // A more specific grant for the same key is no conflict: it wins where it matches.
    env.envoi(
        &["grant", "add", "c", "--project", "p", "--type", "t", "--env", "K=s2"],
        b"",
    )
    .success();
    assert_eq!(
        explained(&env, "envoi.toml", "p", "t", "i"),
        ["p/t/i receives 1 item(s)", "ENV K = \"value-two\""]
    );
    assert_eq!(
        explained(&env, "envoi.toml", "p", "job", "i"),
        ["p/job/i receives 1 item(s)", "ENV K = \"value-one\""]
    );

    // Attributes the command line checks itself.
    env.envoi(
        &["grant", "add", "d", "--project", "q", "--file", "/etc/y=s1,mode=999"],
        b"",
    )
    .failure()
    .stderr_names("999");
    assert_eq!(db.int("SELECT count(*) FROM envoi_grants WHERE name = 'd'"), 0);
}

/// A mode a TOML policy may not give, `grant add` may not give either, in the same words:
/// one parser reads both (the Postgres path once took `+400` for `0400`).
#[test]
fn grant_add_refuses_every_mode_a_toml_policy_refuses() {
    let Some((db, env)) = migrated("grant_add_refuses_every_mode_a_toml_policy_refuses") else {
        return;
    };
    env.put("s1", "value-one");
    env.toml_config("toml.toml", "modes.toml");
    for mode in ["+400", "0o+400", "0999", "12345", "rw-r--r--", ""] {
        let refusal = format!("mode \"{mode}\" is not an octal file mode");
        env.write(
            "modes.toml",
            format!(
                "[secrets.s1]\nvalue = \"v\"\n[[grants]]\nname = \"d\"\nproject = \"q\"\n\
                 [[grants.files]]\npath = \"/etc/y\"\nsecret = \"s1\"\nmode = \"{mode}\"\n"
            ),
        );
        let toml = env.run(&["--config", "toml.toml", "check"], b"");
        assert!(
            toml.code != Some(0) && toml.stderr.contains(&refusal),
            "mode {mode:?}: the TOML store should refuse it\n{toml}"
        );
        let file = format!("/etc/y=s1,mode={mode}");
        let postgres = env.envoi(&["grant", "add", "d", "--project", "q", "--file", &file], b"");
        assert!(
            postgres.code != Some(0) && postgres.stderr.contains(&refusal),
            "mode {mode:?}: `grant add` should refuse it as the TOML store does\n{postgres}"
        );
        assert_eq!(
            db.int("SELECT count(*) FROM envoi_grants"),
            0,
            "mode {mode:?}: nothing written"
        );
    }
}

/// Asserts that `sql` is refused by a CHECK (23514) or foreign key (23503) constraint.
#[track_caller]
fn refused(db: &Db, sql: &str) {
    match db.try_exec(sql) {
        Ok(rows) => panic!("the database accepted ({rows} row(s)): {sql}"),
        Err(e) => {
            let code = e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
            assert!(
                matches!(code.as_deref(), Some("23514" | "23503")),
                "refused for another reason ({code:?}): {e}\n{sql}"
            );
        }
    }
}

#[test]
fn database_constraints_reject_invalid_rows() {
    let Some((db, _env)) = migrated("database_constraints_reject_invalid_rows") else {
        return;
    };
    let item = |target: &str, kind: &str, extra_columns: &str, extra_values: &str| {
        format!(
            "INSERT INTO envoi_grant_items (grant_name, kind, target, template{extra_columns}) \
             VALUES ('raw', '{kind}', '{target}', 'literal'{extra_values})"
        )
    };
    db.exec("INSERT INTO envoi_grants (name, project, updated_by) VALUES ('raw', 'p', 'test')");

    // ENV keys.
    assert_eq!(db.exec(&item("GOOD_KEY", "ENV", "", "")), 1);
    refused(&db, &item("1BAD", "ENV", "", ""));
    refused(&db, &item("BAD-KEY", "ENV", "", ""));
    // FILE paths and attributes.
    let mode = ", permissions_policy, mode";
    assert_eq!(db.exec(&item("/etc/ok", "FILE", mode, ", 'AlwaysSet', '0400'")), 1);
    refused(&db, &item("/etc/m1", "FILE", mode, ", 'AlwaysSet', '999'"));
    refused(&db, &item("/etc/m2", "FILE", mode, ", 'AlwaysSet', '0800'"));
    refused(&db, &item("/etc/m3", "FILE", mode, ", 'Sometimes', '0400'"));
    refused(&db, &item("relative/path", "FILE", "", ""));
    refused(
        &db,
        &item("/etc/owner", "FILE", ", owner_policy", ", 'AlwaysSetExplicit'"),
    );
    refused(
        &db,
        &item(
            "/etc/owner",
            "FILE",
            ", owner_policy, owner_value",
            ", 'AlwaysSetInherited', 'root'",
        ),
    );
    refused(&db, &item("ENV_WITH_MODE", "ENV", mode, ", 'AlwaysSet', '0400'"));
    // Exactly one source.
    refused(
        &db,
        "INSERT INTO envoi_grant_items (grant_name, kind, target) VALUES ('raw', 'ENV', 'NO_SOURCE')",
    );
    // A named secret that does not exist (the key is checked at commit).
    refused(
        &db,
        "INSERT INTO envoi_grant_items (grant_name, kind, target, secret) VALUES ('raw', 'ENV', 'DANGLING', 'nope')",
    );

    // Sealed values: the format, and a key id that matches the one inside.
    let secret = |name: &str, sealed: &str, key_id: &str| {
        format!(
            "INSERT INTO envoi_secrets (name, sealed, key_id, updated_by) VALUES ('{name}', '{sealed}', '{key_id}', 'test')"
        )
    };
    assert_eq!(db.exec(&secret("ok", "envoi:v1:kaaaa:AbC-_d", "kaaaa")), 1);
    refused(&db, &secret("mismatch", "envoi:v1:kaaaa:AbC-_d", "kbbbb"));
    refused(&db, &secret("garbled", "not-sealed-at-all", "kaaaa"));
    refused(&db, &secret("bad name!", "envoi:v1:kaaaa:AbC-_d", "kaaaa"));
    refused(
        &db,
        "INSERT INTO envoi_grant_items (grant_name, kind, target, sealed, key_id) \
         VALUES ('raw', 'ENV', 'INLINE', 'envoi:v1:kaaaa:AbC', 'kbbbb')",
    );
    refused(
        &db,
        "INSERT INTO envoi_secrets (name, sealed, key_id, template, updated_by) \
         VALUES ('both', 'envoi:v1:kaaaa:AbC', 'kaaaa', 'x', 'test')",
    );
    // Selectors.
    refused(
        &db,
        "INSERT INTO envoi_grants (name, project, updated_by) VALUES ('empty', '', 'test')",
    );

    assert_eq!(
        db.strings("SELECT target FROM envoi_grant_items ORDER BY target"),
        ["/etc/ok", "GOOD_KEY"],
        "only the valid rows are in"
    );
}

/// `serve` on a database without the tables answers 503 until they appear; with
/// `migrate_on_start` it makes them itself.
#[test]
fn serve_waits_for_the_tables_or_makes_them() {
    let Some(db) = Db::create("serve_waits_for_the_tables_or_makes_them") else {
        return;
    };
    let env = Env::new(&db.url);
    let server = env.serve("envoi.toml");
    let token = crate::support::jwt::token("p", "t", "i");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.blocking_get("/readyz", None).status, 503);
    assert_eq!(server.blocking_get("/", Some(&token)).status, 503);
    assert!(envoi_tables(&db).is_empty(), "serve migrated without being asked to");

    env.envoi(&["db", "migrate"], b"").success();
    server.blocking_wait_for_status("/readyz", None, 200, Duration::from_secs(8));
    let answer = server.blocking_get("/", Some(&token));
    assert_eq!((answer.status, answer.json()), (200, json!({"secrets": []})));
    drop(server);

    let Some(fresh) = Db::create("serve_waits_for_the_tables_or_makes_them") else {
        return;
    };
    env.config("auto.toml", &fresh.url, "migrate_on_start = true");
    let server = env.serve("auto.toml");
    server.blocking_wait_for_status("/readyz", None, 200, Duration::from_secs(8));
    assert_eq!(envoi_tables(&fresh), TABLES);
}

/// Issue 10, item 10: `printf '' | envoi secret put x` (and `echo | …`, whose one newline
/// is dropped) would blank the secret for every workload it is granted to: refused, as is
/// an empty `--file`, unless `--allow-empty` says it is meant.
#[test]
fn an_empty_value_is_refused_unless_allow_empty_says_so() {
    let Some((db, env)) = migrated("an_empty_value_is_refused_unless_allow_empty_says_so") else {
        return;
    };
    env.put("db_password", "value-1");
    env.envoi(
        &[
            "grant",
            "add",
            "app",
            "--project",
            "p",
            "--env",
            "DB_PASSWORD=db_password",
        ],
        b"",
    )
    .success();
    env.write("empty.txt", "");
    let empty: [(&str, &[&str], &[u8]); 4] = [
        ("printf ''", &[], b""),
        ("echo", &[], b"\n"),
        ("a CRLF line", &[], b"\r\n"),
        ("an empty --file", &["--file", "empty.txt"], b""),
    ];
    for (case, extra, input) in empty {
        let mut args = vec!["secret", "put", "db_password"];
        args.extend_from_slice(extra);
        let ran = env.envoi(&args, input);
        assert_ne!(ran.code, Some(0), "{case}: stored\n{ran}");
        ran.stderr_names("empty").stderr_names("--allow-empty");
        assert!(!ran.stdout.contains("stored"), "{case}\n{ran}");
    }
    assert_eq!(
        db.strings("SELECT version::text FROM envoi_secrets WHERE name = 'db_password'"),
        ["1"],
        "nothing written"
    );
    assert_eq!(
        explained(&env, "envoi.toml", "p", "t", "i"),
        ["p/t/i receives 1 item(s)", "ENV DB_PASSWORD = \"value-1\""]
    );

    // Asked for, an empty value is stored.
    env.envoi(&["secret", "put", "db_password", "--allow-empty"], b"\n")
        .success()
        .stdout_names("version 2");
    assert_eq!(
        explained(&env, "envoi.toml", "p", "t", "i"),
        ["p/t/i receives 1 item(s)", "ENV DB_PASSWORD = \"\""]
    );
}

/// Issue 10, item 10: removing a secret still in use names what uses it (grants, directly
/// or through an inline template, and templates of other secrets), rather than saying it
/// "is not defined".
#[test]
fn removing_a_secret_in_use_names_what_uses_it() {
    let Some((db, env)) = migrated("removing_a_secret_in_use_names_what_uses_it") else {
        return;
    };
    env.put("s1", "value-one");
    env.put("other", "value-other");
    env.envoi(&["grant", "add", "a", "--project", "p", "--env", "K=s1"], b"")
        .success();
    env.envoi(
        &["grant", "add", "b", "--project", "q", "--file", "/etc/s1=s1,mode=0400"],
        b"",
    )
    .success();
    // A template secret and an inline template, written as `db import` would.
    db.exec(
        "INSERT INTO envoi_secrets (name, template, updated_by) VALUES ('url', 'db://app:${secret.s1}@db', 'test');
         INSERT INTO envoi_grants (name, project, updated_by) VALUES ('c', 'r', 'test');
         INSERT INTO envoi_grant_items (grant_name, kind, target, template) VALUES ('c', 'ENV', 'URL', 'x://${secret.s1}@h');
         INSERT INTO envoi_grant_items (grant_name, kind, target, template) VALUES ('c', 'ENV', 'LITERAL', '$${secret.s1}');",
    );
    let generation = db.int("SELECT generation FROM envoi_policy_state");

    let refused = env.envoi(&["secret", "rm", "s1"], b"").failure();
    refused
        .stderr_names("secret `s1` is in use")
        .stderr_names("grant `a`: ENV K")
        .stderr_names("grant `b`: FILE /etc/s1")
        .stderr_names("grant `c`: ENV URL, through its template")
        .stderr_names("secret `url`: its template")
        .never_shows("value-one");
    assert!(!refused.stderr.contains("not defined"), "{refused}");
    assert!(
        !refused.stderr.contains("LITERAL"),
        "`$${{` is a literal, not a use\n{refused}"
    );
    assert_eq!(
        db.strings("SELECT name FROM envoi_secrets ORDER BY name"),
        ["other", "s1", "url"]
    );
    assert_eq!(
        db.int("SELECT generation FROM envoi_policy_state"),
        generation,
        "rolled back"
    );

    // A secret nothing uses goes.
    env.envoi(&["secret", "rm", "other"], b"").success();
}
