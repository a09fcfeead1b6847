//! `db history` (SPEC §2, Stores; issue 12, item 4): every writing transaction recorded
//! with its generation, time and actor, what it changed, and never a value.

use serde_json::Value;

use super::db::Db;
use super::env::Env;

fn migrated(test: &str) -> Option<(Db, Env)> {
    let db = Db::create(test)?;
    let env = Env::new(&db.url);
    env.envoi(&["db", "migrate"], b"").success();
    Some((db, env))
}

/// `db history --format json`, parsed: its entries as (generation, actor, change,
/// object, name, action).
#[track_caller]
fn history(env: &Env, extra: &[&str]) -> Vec<(i64, String, String, String, String, String)> {
    let mut args = vec!["db", "history", "--format", "json"];
    args.extend_from_slice(extra);
    let ran = env.envoi(&args, b"").success();
    let parsed: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout));
    parsed
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {parsed}"))
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_else(|| panic!("no `{k}` in {e}")).to_owned();
            assert!(
                text("at").ends_with('Z') && text("at").contains('T'),
                "`at` is RFC 3339 UTC: {e}"
            );
            let keys: Vec<&str> = e.as_object().expect("an object").keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                ["action", "actor", "at", "change", "generation", "name", "object"],
                "the documented fields, and only those: {e}"
            );
            (
                e["generation"].as_i64().expect("a generation"),
                text("actor"),
                text("change"),
                text("object"),
                text("name"),
                text("action"),
            )
        })
        .collect()
}

#[test]
fn history_lists_every_change_in_order_with_actor_and_generation_and_never_a_value() {
    let Some((db, env)) = migrated("history_lists_every_change_in_order") else {
        return;
    };
    let start = db.int("SELECT generation FROM envoi_policy_state");
    env.put("s1", "first-plaintext");
    env.put("s2", "second-plaintext");
    env.envoi(&["grant", "add", "a", "--project", "p", "--env", "K=s1"], b"")
        .success();
    env.put("s1", "third-plaintext");
    env.envoi(&["grant", "rm", "a"], b"").success();
    env.envoi(&["secret", "rm", "s2"], b"").success();
    // A refused change writes nothing, in the history either.
    env.envoi(&["grant", "add", "bad", "--project", "p", "--env", "K=nope"], b"")
        .failure();

    let entries = history(&env, &[]);
    let seen: Vec<(i64, &str, &str, &str)> = entries
        .iter()
        .map(|(g, _, _, o, n, a)| (*g, o.as_str(), n.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (start + 1, "secret", "s1", "put"),
            (start + 2, "secret", "s2", "put"),
            (start + 3, "grant", "a", "added"),
            (start + 4, "secret", "s1", "put"),
            (start + 5, "grant", "a", "removed"),
            (start + 6, "secret", "s2", "removed"),
        ]
    );
    assert_eq!(db.int("SELECT generation FROM envoi_policy_state"), start + 6);
    for (_, actor, change, ..) in &entries {
        assert!(actor.starts_with("cli:"), "the actor: {actor}");
        assert_eq!(change, "change");
    }

    let s1: Vec<(i64, String)> = history(&env, &["--name", "s1"])
        .into_iter()
        .map(|(g, _, _, _, n, _)| (g, n))
        .collect();
    assert_eq!(s1, [(start + 1, "s1".to_owned()), (start + 4, "s1".to_owned())]);
    assert!(history(&env, &["--name", "nothing-by-this-name"]).is_empty());

    // Text and JSON alike: no value, sealed or not.
    for format in ["text", "json"] {
        let ran = env.envoi(&["db", "history", "--format", format], b"").success();
        ran.stdout_names("s1").stdout_names("removed");
        for value in ["plaintext", "envoi:v1:"] {
            assert!(!ran.stdout.contains(value), "{format} shows `{value}`:\n{}", ran.stdout);
        }
    }
    // The log itself keeps the value as it was sealed after each change.
    let sealed =
        db.strings("SELECT sealed FROM envoi_change_items WHERE name = 's1' AND object = 'secret' ORDER BY generation");
    assert_eq!(sealed.len(), 2);
    assert!(sealed.iter().all(|s| s.starts_with("envoi:v1:")), "{sealed:?}");
    assert_eq!(
        db.strings("SELECT sealed FROM envoi_secrets WHERE name = 's1'"),
        sealed[1..],
        "the last entry holds the stored value"
    );
}

#[test]
fn the_history_is_append_only() {
    let Some((db, env)) = migrated("the_history_is_append_only") else {
        return;
    };
    env.put("s", "v");
    for statement in [
        "DELETE FROM envoi_change_items",
        "UPDATE envoi_change_items SET name = 'other'",
        "DELETE FROM envoi_changes",
        "TRUNCATE envoi_change_items",
    ] {
        let refused = db.try_exec(statement).expect_err(statement).to_string();
        assert!(refused.contains("append-only"), "{statement}: {refused}");
    }
    assert_eq!(history(&env, &[]).len(), 1);
}

/// A `db import` is one change: every secret and grant it wrote, at one generation, by
/// the importer; an import that changes nothing records nothing.
#[test]
fn an_import_is_recorded_as_one_change() {
    let Some((db, env)) = migrated("an_import_is_recorded_as_one_change") else {
        return;
    };
    let mut policy = String::from("[secrets.k]\nvalue = \"key\"\n\n");
    for i in 0..30 {
        policy += &format!(
            "[[grants]]\nproject = \"p\"\nid = \"w{i}\"\nenv = {{ K = \"k\", N = {{ value = \"n{i}\" }} }}\n\n"
        );
    }
    env.write("policy.toml", &policy);
    env.envoi(&["db", "import", "policy.toml"], b"").success();
    let generation = db.int("SELECT generation FROM envoi_policy_state");
    let entries = history(&env, &[]);
    assert_eq!(entries.len(), 31);
    assert!(entries.iter().all(|e| e.0 == generation && e.1.starts_with("import:")));
    assert_eq!(entries.iter().filter(|e| e.3 == "grant" && e.5 == "added").count(), 30);
    let definition =
        db.strings("SELECT definition::text FROM envoi_change_items WHERE object = 'grant' AND name = 'p/*/w7'");
    let definition: Value = serde_json::from_str(&definition[0]).expect("JSON");
    assert_eq!(definition["items"].as_array().map(Vec::len), Some(2), "{definition}");
    assert_eq!(definition["project"], "p");

    env.envoi(&["db", "import", "policy.toml"], b"").success();
    assert_eq!(history(&env, &[]).len(), 31, "nothing changed, nothing recorded");

    // One workload changed and one gone: one change, two grants.
    let changed = policy
        .replace("\"n3\"", "\"m3\"")
        .replace("id = \"w9\"", "id = \"w9\"\ntype = \"t\"");
    env.write("policy.toml", changed);
    env.envoi(&["db", "import", "policy.toml"], b"").success();
    let last: Vec<(String, String)> = history(&env, &[])
        .into_iter()
        .filter(|e| e.0 == generation + 1)
        .map(|e| (e.4, e.5))
        .collect();
    assert_eq!(
        last,
        [
            ("p/*/w3".to_owned(), "replaced".to_owned()),
            ("p/*/w9".to_owned(), "removed".to_owned()),
            ("p/t/w9".to_owned(), "added".to_owned()),
        ]
    );
}

/// The value lines of `explain --show-values` for a workload.
fn answers(env: &Env, workloads: &[(&str, &str, &str)]) -> Vec<String> {
    let mut all = Vec::new();
    for (project, kind, id) in workloads {
        let ran = env
            .envoi(
                &[
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
        all.push(format!("{project}/{kind}/{id}"));
        all.extend(
            ran.stdout
                .lines()
                .filter(|line| !line.starts_with(char::is_whitespace))
                .map(str::to_owned),
        );
    }
    all
}

const WORKLOADS: [(&str, &str, &str); 3] = [("p", "t", "i"), ("q", "t", "i"), ("r", "t", "i")];

/// `db rollback --to GEN` restores exactly what GEN held (the same answers, the same
/// sealed values) in one change recorded as a rollback; it refuses, writing nothing, a
/// generation whose policy would not load.
#[test]
fn a_rollback_restores_an_earlier_generation_exactly_and_refuses_one_that_would_not_load() {
    let Some((db, env)) = migrated("a_rollback_restores_an_earlier_generation") else {
        return;
    };
    env.put("s1", "one");
    env.put("t1", "kept");
    env.envoi(
        &["grant", "add", "a", "--project", "p", "--env", "K=s1", "--env", "T=t1"],
        b"",
    )
    .success();
    let at = db.int("SELECT generation FROM envoi_policy_state");
    let before = answers(&env, &WORKLOADS);
    let sealed_before = db.strings("SELECT name || ' ' || sealed FROM envoi_secrets ORDER BY name");
    assert!(before.iter().any(|l| l.contains("one")), "{before:?}");

    env.put("s1", "two");
    env.put("s2", "new");
    env.envoi(&["grant", "add", "b", "--project", "q", "--env", "L=s2"], b"")
        .success();
    env.envoi(&["grant", "rm", "a"], b"").success();
    env.envoi(&["grant", "add", "a", "--project", "r", "--env", "K=s1"], b"")
        .success();
    assert_ne!(answers(&env, &WORKLOADS), before);

    let ran = env.envoi(&["db", "rollback", "--to", &at.to_string()], b"").success();
    ran.stdout_names(&format!("rolled back to generation {at}"));
    assert_eq!(answers(&env, &WORKLOADS), before, "the answers of generation {at}");
    assert_eq!(
        db.strings("SELECT name || ' ' || sealed FROM envoi_secrets ORDER BY name"),
        sealed_before,
        "the values as they were sealed"
    );
    let now = db.int("SELECT generation FROM envoi_policy_state");
    let last: Vec<(String, String, String, String)> = history(&env, &[])
        .into_iter()
        .filter(|e| e.0 == now)
        .map(|e| (e.1, e.2, e.4, e.5))
        .collect();
    assert!(!last.is_empty());
    assert!(
        last.iter()
            .all(|(actor, change, ..)| actor.starts_with("rollback:") && change == "rollback"),
        "{last:?}"
    );
    let changed: Vec<(&str, &str)> = last.iter().map(|(_, _, n, a)| (n.as_str(), a.as_str())).collect();
    assert_eq!(
        changed,
        [("s1", "put"), ("s2", "removed"), ("a", "replaced"), ("b", "removed")],
        "t1 was the same: not written"
    );
    // Rolling back to where it is writes nothing.
    env.envoi(&["db", "rollback", "--to", &now.to_string()], b"").success();
    assert_eq!(db.int("SELECT generation FROM envoi_policy_state"), now);

    // A generation that did not load (written by hand, unchecked) is refused.
    db.exec(
        "BEGIN;
         INSERT INTO envoi_grants (name, project, updated_by) VALUES ('c', 'p', 'sql');
         INSERT INTO envoi_grant_items (grant_name, kind, target, template) VALUES ('c', 'ENV', 'K', 'other');
         COMMIT;",
    );
    let broken = db.int("SELECT generation FROM envoi_policy_state");
    env.envoi(&["grant", "rm", "c"], b"").success();
    let entries = history(&env, &[]).len();
    let generation = db.int("SELECT generation FROM envoi_policy_state");
    env.envoi(&["db", "rollback", "--to", &broken.to_string()], b"")
        .failure()
        .stderr_names("does not load")
        .stderr_names("K");
    assert_eq!(
        db.int("SELECT generation FROM envoi_policy_state"),
        generation,
        "nothing written"
    );
    assert_eq!(history(&env, &[]).len(), entries);
    assert_eq!(answers(&env, &WORKLOADS), before);

    env.envoi(&["db", "rollback", "--to", "1000000"], b"")
        .failure()
        .stderr_names("not in the history");
}

/// `db prune` compacts what is older than both retention settings: every generation
/// from the cut-off on still rolls back exactly (its sealed values kept), an older one is
/// refused, and what only older generations needed is gone.
#[test]
fn pruning_keeps_every_generation_from_the_cut_off_restorable_and_refuses_older_ones() {
    let Some((db, env)) = migrated("pruning_keeps_what_the_retention_says") else {
        return;
    };
    let keep = [
        ("ENVOI__STORE__HISTORY_KEEP_CHANGES", "2"),
        ("ENVOI__STORE__HISTORY_KEEP_DAYS", "0"),
    ];
    env.put("s1", "one");
    let old = db.int("SELECT generation FROM envoi_policy_state");
    env.put("s1", "two");
    env.put("t1", "kept");
    env.envoi(
        &["grant", "add", "a", "--project", "p", "--env", "K=s1", "--env", "T=t1"],
        b"",
    )
    .success();
    let cut = db.int("SELECT generation FROM envoi_policy_state");
    let at_cut = answers(&env, &WORKLOADS);
    env.put("s1", "three");
    env.envoi(&["grant", "rm", "a"], b"").success();
    let entries_before = db.int("SELECT count(*) FROM envoi_change_items WHERE name = 's1'");

    let pruned = env
        .run_with(&["--config", "envoi.toml", "db", "prune"], b"", &keep)
        .success();
    pruned.stdout_names(&format!("from {cut} on"));
    // Nothing more is old enough: a second prune removes nothing.
    env.run_with(&["--config", "envoi.toml", "db", "prune"], b"", &keep)
        .success()
        .stdout_names("compacted 0 ");
    assert!(
        db.int("SELECT count(*) FROM envoi_change_items WHERE name = 's1'") < entries_before,
        "the value only older generations needed is gone"
    );
    assert!(
        history(&env, &[]).iter().all(|entry| entry.0 >= old),
        "db history still reads"
    );

    env.envoi(&["db", "rollback", "--to", &old.to_string()], b"")
        .failure()
        .stderr_names("not in the history");
    env.envoi(&["db", "rollback", "--to", &cut.to_string()], b"").success();
    assert_eq!(answers(&env, &WORKLOADS), at_cut, "the cut-off's policy, exactly");
}

/// `envoi --config envoi.toml ARGS`, which must exit with `status`.
#[track_caller]
fn exits(env: &Env, args: &[&str], status: i32) -> crate::support::Ran {
    let ran = env.envoi(args, b"");
    assert_eq!(ran.code, Some(status), "expected exit {status}\n{ran}");
    ran
}

/// `db diff GEN [GEN2]` shows what a range of generations changed as `envoi diff` shows
/// two policies, never a value; exit 0 for no change, 1 for a change, 2 for a generation
/// the history does not hold.
#[test]
fn db_diff_shows_what_a_range_of_generations_changed_without_a_value() {
    let Some((db, env)) = migrated("db_diff_shows_a_range") else {
        return;
    };
    env.put("s1", "first-plaintext-q1");
    env.envoi(&["grant", "add", "a", "--project", "p", "--env", "K=s1"], b"")
        .success();
    let from = db.int("SELECT generation FROM envoi_policy_state");
    env.put("s1", "second-plaintext-q2");
    env.put("s2", "third-plaintext-q3");
    env.envoi(&["grant", "add", "b", "--project", "q", "--env", "L=s2"], b"")
        .success();
    let to = db.int("SELECT generation FROM envoi_policy_state");

    let ran = exits(&env, &["db", "diff", &from.to_string()], 1);
    assert!(ran.stdout.contains("+ grant `b`"), "{}", ran.stdout);
    assert!(ran.stdout.contains("~ grant `a`"), "{}", ran.stdout);
    assert!(ran.stdout.contains("ENV K: value changed"), "{}", ran.stdout);
    let json = exits(
        &env,
        &["db", "diff", &from.to_string(), &to.to_string(), "--format", "json"],
        1,
    );
    let parsed: Value = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", json.stdout));
    assert_eq!(parsed["changed"], true, "{parsed}");
    for output in [&ran.stdout, &ran.stderr, &json.stdout] {
        for value in ["first-plaintext-q1", "second-plaintext-q2", "third-plaintext-q3"] {
            assert!(!output.contains(value), "a value in the output: {output}");
        }
    }
    exits(&env, &["db", "diff", &to.to_string(), &to.to_string()], 0);
    exits(&env, &["db", "diff", "999999"], 2).stderr_names("not in the history");
}

/// `db import --dry-run` prints what the import would change, as `envoi diff` shows it,
/// and writes nothing: the same policy again is no change (exit 0), an edited one is
/// (exit 1), never with a value.
#[test]
fn db_import_dry_run_shows_what_would_change_and_writes_nothing() {
    let Some((db, env)) = migrated("db_import_dry_run") else {
        return;
    };
    let policy = "[secrets.s1]\nvalue = \"dry-value-r1\"\n\
        [[grants]]\nproject = \"p\"\nenv = { K = \"s1\" }\n\
        [[grants]]\nname = \"named\"\nproject = \"q\"\nenv = { L = { value = \"dry-inline-r2\" } }\n";
    env.write("policy.toml", policy);
    env.envoi(&["db", "import", "policy.toml"], b"").success();
    let generation = db.int("SELECT generation FROM envoi_policy_state");

    let same = exits(&env, &["db", "import", "policy.toml", "--dry-run"], 0);
    assert!(same.stdout.contains("no change"), "{}", same.stdout);

    env.write(
        "policy.toml",
        policy.replace("dry-value-r1", "dry-value-r3")
            + "[[grants]]\nname = \"new\"\nproject = \"r\"\nenv = { M = \"s1\" }\n",
    );
    let changed = exits(&env, &["db", "import", "policy.toml", "--dry-run"], 1);
    assert!(changed.stdout.contains("+ grant `new`"), "{}", changed.stdout);
    assert!(changed.stdout.contains("ENV K: value changed"), "{}", changed.stdout);
    for value in ["dry-value-r1", "dry-inline-r2", "dry-value-r3"] {
        assert!(
            !changed.stdout.contains(value) && !changed.stderr.contains(value),
            "a value shown"
        );
    }
    exits(
        &env,
        &["db", "import", "policy.toml", "--dry-run", "--format", "json"],
        1,
    );
    assert_eq!(
        db.int("SELECT generation FROM envoi_policy_state"),
        generation,
        "nothing written"
    );
}
