//! Rotation: old values open while the newest key seals, and `reseal` rewrites the
//! sealed values only, all or nothing.

use std::path::PathBuf;

use serde_json::json;

use crate::support::{toml_string, Server, Workspace};

use super::*;

/// A workspace with an old and a new key, and configs naming `old` only, `[new, old]`
/// and `new` only.
struct Rotation {
    ws: Workspace,
    old_kid: String,
    new_kid: String,
    old: PathBuf,
    both: PathBuf,
    new: PathBuf,
}

fn rotation(policy: &str) -> Rotation {
    let ws = Workspace::new();
    let old_kid = keygen(&ws, "keys/old.key");
    let new_kid = keygen(&ws, "keys/new.key");
    let old = ws.config_named("old.toml", policy, &["keys/old.key"]);
    let both = ws.config_named("both.toml", policy, &["keys/new.key", "keys/old.key"]);
    let new = ws.config_named("new.toml", policy, &["keys/new.key"]);
    Rotation {
        ws,
        old_kid,
        new_kid,
        old,
        both,
        new,
    }
}

#[tokio::test]
async fn during_rotation_old_values_open_and_the_newest_key_seals() {
    let r = rotation("policy.toml");
    let old_sealed = seal(&r.ws, &r.old, "legacy", b"rotated-legacy-a9");
    assert_eq!(parse_sealed(&old_sealed).0, r.old_kid);
    let new_sealed = seal(&r.ws, &r.both, "fresh", b"rotated-fresh-b9");
    assert_eq!(parse_sealed(&new_sealed).0, r.new_kid, "the first key seals");
    r.ws.write(
        "policy.toml",
        format!(
            "[secrets.legacy]\nsealed = {}\n\n[secrets.fresh]\nsealed = {}\n\n\
             [[grants]]\nproject = \"p\"\nenv = {{ LEGACY = \"legacy\", FRESH = \"fresh\" }}\n",
            toml_string(&old_sealed),
            toml_string(&new_sealed)
        ),
    );
    envoi(&r.ws, &r.both, &["check"]).success();
    let server = Server::serve(r.ws.path(), &r.both);
    assert_eq!(
        served(&server, "p", "service", "api").await,
        json!({"secrets": [
            {"type": "ENV", "key": "FRESH", "value": "rotated-fresh-b9"},
            {"type": "ENV", "key": "LEGACY", "value": "rotated-legacy-a9"},
        ]})
    );
    // The old key alone does not open the new value, nor the new key the old one.
    envoi(&r.ws, &r.old, &["check"]).failure().stderr_names("fresh");
    envoi(&r.ws, &r.new, &["check"]).failure().stderr_names("legacy");
}

/// Replaces every `envoi:v1:<kid>:<data>` whose data follows `kid` with `<SEALED>`,
/// except `keep`; returns the text and how many were replaced.
fn mask_sealed(text: &str, kid: &str, keep: &[&str]) -> (String, usize) {
    let marker = format!("envoi:v1:{kid}:");
    let mut out = String::new();
    let mut rest = text;
    let mut count = 0;
    while let Some(at) = rest.find(&marker) {
        let after = &rest[at + marker.len()..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        let whole = &rest[at..at + marker.len() + len];
        out.push_str(&rest[..at]);
        if keep.contains(&whole) {
            out.push_str(whole);
        } else {
            out.push_str("<SEALED>");
            count += 1;
        }
        rest = &rest[at + marker.len() + len..];
    }
    out.push_str(rest);
    (out, count)
}

/// Replaces each of `strings` in `text` with `<SEALED>`.
fn mask_exact(text: &str, strings: &[String]) -> String {
    strings
        .iter()
        .fold(text.to_owned(), |text, s| text.replace(s.as_str(), "<SEALED>"))
}

#[tokio::test]
async fn reseal_rewrites_only_the_sealed_values() {
    let r = rotation("policy.toml");
    let ws = &r.ws;
    let zeta = seal(ws, &r.old, "zeta", b"reseal-zeta-01");
    let alpha = seal(ws, &r.old, "alpha", b"reseal-alpha-02");
    let inline = seal(ws, &r.old, "INLINE", b"reseal-inline-03");
    let file = seal(ws, &r.old, "/etc/app/key", b"reseal-file-04");
    let array_file = seal(ws, &r.old, "/etc/app/other", b"reseal-array-05");
    let current = seal(ws, &r.new, "current", b"reseal-current-06");
    let old_strings = [
        zeta.clone(),
        alpha.clone(),
        inline.clone(),
        file.clone(),
        array_file.clone(),
    ];
    // Looks sealed, is not a `sealed` value: left alone.
    let decoy = format!("envoi:v1:{}:bm90LWEtc2VhbGVkLXZhbHVl", r.old_kid);
    let original = format!(
        "# The policy, with comments that must survive a reseal.\n\
         # A comment that quotes a sealed-looking string: {decoy}\n\
         \n\
         [secrets.zeta]   # out of alphabetical order on purpose\n\
         sealed = \"{zeta}\"   # trailing comment\n\
         \n\
         \n\
         [secrets.alpha]\n\
         # a comment inside the table\n\
         \tsealed   =\t\"{alpha}\"\t\n\
         \n\
         [secrets.current]\n\
         sealed = \"{current}\"\n\
         \n\
         [secrets.decoy]\n\
         value = \"{decoy}\"\n\
         \n\
         [secrets.templated]\n\
         template = \"${{secret.alpha}}@${{projectId}}\"\n\
         \n\
         [[grants]]\n\
         name = \"app\"   # the grant\n\
         project = \"p\"\n\
         env = {{ ZETA = \"zeta\",   ALPHA = \"alpha\", INLINE = {{ sealed = \"{inline}\" }}, CURRENT = \"current\", DECOY = \"decoy\", TEMPLATED = \"templated\" }}\n\
         \n\
         [[grants.files]]\n\
         path = \"/etc/app/key\"\n\
         sealed = \"{file}\"\n\
         mode = \"0400\"\n\
         \n\
         [[grants]]\n\
         name = \"array\"\n\
         project = \"p\"\n\
         files = [ {{ path = \"/etc/app/other\", sealed = \"{array_file}\" }} ]\n\
         # the end, without a newline"
    );
    let policy = ws.write("policy.toml", &original);
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o640)).unwrap();
    envoi(ws, &r.both, &["check"]).success();
    let before = {
        let server = Server::serve(ws.path(), &r.both);
        served(&server, "p", "service", "api").await
    };
    assert_eq!(item(&before, "ZETA")["value"], "reseal-zeta-01");
    assert_eq!(item(&before, "TEMPLATED")["value"], "reseal-alpha-02@p");

    let ran = envoi(ws, &r.both, &["reseal"]).success();
    let plaintexts = [
        "reseal-zeta-01",
        "reseal-alpha-02",
        "reseal-inline-03",
        "reseal-file-04",
        "reseal-array-05",
        "reseal-current-06",
    ];
    shows_none(&ran, &plaintexts);
    let resealed = ws.read("policy.toml");

    // Every sealed value is under the new key; the one already there is untouched.
    for old in &old_strings {
        assert!(
            !resealed.contains(old.as_str()),
            "still sealed under the old key: {old}\n{resealed}"
        );
    }
    assert!(
        resealed.contains(&current),
        "a value under the newest key is left as it was"
    );
    let (masked_new, replaced) = mask_sealed(&resealed, &r.new_kid, &[&current]);
    assert_eq!(
        replaced,
        old_strings.len(),
        "values now under {}:\n{resealed}",
        r.new_kid
    );
    // Every other byte is as it was: comments, blank lines, order, spacing, the decoys.
    assert_eq!(
        masked_new,
        mask_exact(&original, &old_strings),
        "reseal changed more than the sealed values"
    );
    let mode = std::fs::metadata(&policy).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640, "the file's permissions are kept");

    // The new key alone opens everything now, and the answers are the same.
    envoi(ws, &r.new, &["check"]).success();
    let server = Server::serve(ws.path(), &r.new);
    assert_eq!(served(&server, "p", "service", "api").await, before);

    // A second reseal has nothing to do and leaves the file byte for byte.
    envoi(ws, &r.both, &["reseal"]).success();
    assert_eq!(ws.read("policy.toml"), resealed);
}

#[tokio::test]
async fn reseal_under_a_running_server_keeps_the_answers() {
    let r = rotation("policy.toml");
    let sealed = seal(&r.ws, &r.old, "live", b"reseal-live-13");
    r.ws.write(
        "policy.toml",
        format!("[secrets.live]\nsealed = \"{sealed}\"\n\n[[grants]]\nproject = \"p\"\nenv = {{ LIVE = \"live\" }}\n"),
    );
    let server = Server::serve(r.ws.path(), &r.both);
    let want = json!({"secrets": [{"type": "ENV", "key": "LIVE", "value": "reseal-live-13"}]});
    assert_eq!(served(&server, "p", "service", "api").await, want);

    envoi(&r.ws, &r.both, &["reseal"]).success();
    assert!(r.ws.read("policy.toml").contains(&format!("envoi:v1:{}:", r.new_kid)));
    // The rewrite is a change of the file: reloaded, and the answers stay the same.
    server
        .wait_for_log(std::time::Duration::from_secs(3), "`policy reloaded`", |l| {
            l["message"] == "policy reloaded" || l["fields"]["message"] == "policy reloaded"
        })
        .await;
    for _ in 0..10 {
        assert_eq!(served(&server, "p", "service", "api").await, want);
    }
    assert!(!server.stderr().contains("does not load"), "{}", server.diagnostics());
}

#[test]
fn reseal_keeps_the_quotes_a_sealed_value_was_written_with() {
    let r = rotation("policy.toml");
    let sealed = seal(&r.ws, &r.old, "literal", b"reseal-literal-07");
    let original = format!(
        "[secrets.literal]\nsealed = '{sealed}'  # a literal string\n\n[[grants]]\nproject = \"p\"\nenv = {{ L = \"literal\" }}\n"
    );
    r.ws.write("policy.toml", &original);
    envoi(&r.ws, &r.both, &["reseal"]).success();
    let resealed = r.ws.read("policy.toml");
    let (masked, replaced) = mask_sealed(&resealed, &r.new_kid, &[]);
    assert_eq!(replaced, 1, "{resealed}");
    assert_eq!(masked, mask_exact(&original, &[sealed]), "quotes or layout changed");
    envoi(&r.ws, &r.new, &["check"]).success();
}

#[test]
fn reseal_keeps_crlf_line_endings() {
    let r = rotation("policy.toml");
    let sealed = seal(&r.ws, &r.old, "crlf", b"reseal-crlf-14");
    let original = format!(
        "# written on Windows\r\n[secrets.crlf]\r\nsealed = \"{sealed}\"\r\n\r\n[[grants]]\r\nproject = \"p\"\r\nenv = {{ C = \"crlf\" }}\r\n"
    );
    r.ws.write("policy.toml", &original);
    envoi(&r.ws, &r.both, &["check"]).success();
    envoi(&r.ws, &r.both, &["reseal"]).success();
    let resealed = r.ws.read("policy.toml");
    let (masked, replaced) = mask_sealed(&resealed, &r.new_kid, &[]);
    assert_eq!(replaced, 1, "{resealed:?}");
    assert_eq!(masked, mask_exact(&original, &[sealed]), "line endings changed");
}

#[test]
fn reseal_with_a_value_that_does_not_open_changes_nothing() {
    let r = rotation("policy.toml");
    let good = seal(&r.ws, &r.old, "good", b"reseal-good-08");
    let bad = tamper(&seal(&r.ws, &r.old, "bad_one", b"reseal-bad-09"));
    let original = format!(
        "# untouched\n[secrets.good]\nsealed = \"{good}\"\n\n[secrets.bad_one]\nsealed = \"{bad}\"\n\n\
         [[grants]]\nproject = \"p\"\nenv = {{ G = \"good\", B = \"bad_one\" }}\n"
    );
    let policy = r.ws.write("policy.toml", &original);
    let modified = std::fs::metadata(&policy).unwrap().modified().unwrap();

    let ran = envoi(&r.ws, &r.both, &["reseal"]).failure();
    ran.stderr_names("bad_one");
    shows_none(&ran, &["reseal-good-08", "reseal-bad-09"]);
    assert_eq!(r.ws.read("policy.toml"), original, "nothing is rewritten");
    assert_eq!(std::fs::metadata(&policy).unwrap().modified().unwrap(), modified);

    // A value under a key that is not configured at all: the same.
    let stranger = Workspace::new();
    keygen(&stranger, "stranger.key");
    let stranger_config = stranger.config("policy.toml", &["stranger.key"]);
    let foreign = seal(&stranger, &stranger_config, "foreign", b"reseal-foreign-10");
    let foreign_kid = parse_sealed(&foreign).0;
    let original = format!("[secrets.good]\nsealed = \"{good}\"\n\n[secrets.foreign]\nsealed = \"{foreign}\"\n");
    r.ws.write("policy.toml", &original);
    let ran = envoi(&r.ws, &r.both, &["reseal"]).failure();
    ran.stderr_names("foreign");
    ran.stderr_names(&foreign_kid);
    assert_eq!(r.ws.read("policy.toml"), original, "nothing is rewritten");
}

#[test]
fn reseal_of_a_policy_folder_is_all_or_nothing() {
    let r = rotation("policy.d");
    let first = seal(&r.ws, &r.old, "first", b"reseal-first-11");
    let second = seal(&r.ws, &r.old, "second", b"reseal-second-12");
    // A grant, so that the policy grants something and `check` can pass at the end.
    let a = format!("# file a\n[secrets.first]\nsealed = \"{first}\"\n\n[[grants]]\nproject = \"p\"\nenv = {{ FIRST = \"first\" }}\n");
    let b_broken = format!("# file b\n[secrets.second]\nsealed = \"{}\"\n", tamper(&second));
    r.ws.write("policy.d/a.toml", &a);
    r.ws.write("policy.d/b.toml", &b_broken);
    let ran = envoi(&r.ws, &r.both, &["reseal"]).failure();
    ran.stderr_names("second");
    assert_eq!(
        r.ws.read("policy.d/a.toml"),
        a,
        "a.toml is not rewritten while b.toml fails"
    );
    assert_eq!(r.ws.read("policy.d/b.toml"), b_broken);

    let b = format!("# file b\n[secrets.second]\nsealed = \"{second}\"\n");
    r.ws.write("policy.d/b.toml", &b);
    envoi(&r.ws, &r.both, &["reseal"]).success();
    for (file, original, old) in [("policy.d/a.toml", &a, &first), ("policy.d/b.toml", &b, &second)] {
        let text = r.ws.read(file);
        let (masked, replaced) = mask_sealed(&text, &r.new_kid, &[]);
        assert_eq!(replaced, 1, "{file}: {text}");
        assert_eq!(masked, mask_exact(original, std::slice::from_ref(old)), "{file}");
    }
    envoi(&r.ws, &r.new, &["check"]).success();
}

// ---- templates ----
