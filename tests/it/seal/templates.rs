//! Templates splice claims and named secrets; binary values go out base64.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::jwt::token;
use crate::support::{toml_string, Server, Workspace};

use super::*;

/// Starts a server on `policy` (written to the workspace) without master keys.
fn serve_policy(policy: &str) -> (Workspace, Server) {
    let ws = Workspace::new();
    ws.write("policy.toml", policy);
    let config = ws.config("policy.toml", &[]);
    let server = Server::serve(ws.path(), &config);
    (ws, server)
}

#[tokio::test]
async fn templates_splice_claims_secrets_and_other_templates() {
    let (ws, _, config) = keyed_workspace();
    let password = seal(&ws, &config, "db_password", b"pw-sealed-13");
    ws.write(
        "policy.toml",
        format!(
            "[secrets.db_password]\nsealed = {}\n\n\
             [secrets.host]\nvalue = \"db.internal\"\n\n\
             [secrets.database_url]\ntemplate = \"postgres://app:${{secret.db_password}}@${{secret.host}}:5432/${{projectId}}\"\n\n\
             [secrets.wrapped]\ntemplate = \"[${{secret.database_url}}] for ${{nfObjectType}}/${{nfObjectId}}\"\n\n\
             [secrets.literal]\ntemplate = \"$${{projectId}} costs $5 and $${{secret.host}}\"\n\n\
             [[grants]]\nproject = \"*\"\n\
             env = {{ DATABASE_URL = \"database_url\", WRAPPED = \"wrapped\", LITERAL = \"literal\", \
             WHO = {{ template = \"${{projectId}}/${{nfObjectType}}/${{nfObjectId}}\" }} }}\n\n\
             [[grants.files]]\npath = \"/etc/app/who\"\ntemplate = \"id=${{nfObjectId}}\\n\"\n",
            toml_string(&password)
        ),
    );
    let server = Server::serve(ws.path(), &config);
    let answer = served(&server, "billing", "service", "api").await;
    assert_eq!(
        answer,
        json!({"secrets": [
            {"type": "ENV", "key": "DATABASE_URL", "value": "postgres://app:pw-sealed-13@db.internal:5432/billing"},
            {"type": "ENV", "key": "LITERAL", "value": "${projectId} costs $5 and ${secret.host}"},
            {"type": "ENV", "key": "WHO", "value": "billing/service/api"},
            {"type": "ENV", "key": "WRAPPED", "value": "[postgres://app:pw-sealed-13@db.internal:5432/billing] for service/api"},
            {"type": "FILE", "path": "/etc/app/who", "data": "id=api\n"},
        ]})
    );
    // Another workload, the same policy: claims are per request.
    let other = served(&server, "web", "job", "nightly").await;
    assert_eq!(item(&other, "WHO")["value"], "web/job/nightly");
    assert_eq!(
        item(&other, "DATABASE_URL")["value"],
        "postgres://app:pw-sealed-13@db.internal:5432/web"
    );
    assert!(!server.stderr().contains("pw-sealed-13"), "{}", server.diagnostics());
}

#[tokio::test]
async fn claims_are_json_escaped_when_spliced() {
    let (_ws, server) = serve_policy(
        "[[grants]]\nproject = \"*\"\nenv = { WHO = { template = \"<${projectId}|${nfObjectType}|${nfObjectId}>\" } }\n\n\
         [[grants.files]]\npath = \"/etc/who\"\ntemplate = \"${projectId}\"\n",
    );
    let project = r#"we"ird\proj"#;
    let kind = "tab\u{e9}\u{1F600}";
    let id = r#"a\"b</script>"#;
    let (status, raw) = server.get(&token(project, kind, id)).await;
    assert_eq!(status, 200, "{raw}");
    let answer: Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("invalid JSON ({e}): {raw}"));
    assert_eq!(
        answer,
        json!({"secrets": [
            {"type": "ENV", "key": "WHO", "value": format!("<{project}|{kind}|{id}>")},
            {"type": "FILE", "path": "/etc/who", "data": project},
        ]})
    );
}

#[test]
fn template_errors_fail_the_check_naming_the_name() {
    let (ws, _, config) = keyed_workspace();
    let sealed = seal(&ws, &config, "kept_secret", b"template-check-plaintext-14");
    let cases = [
        ("unknown claim", "[secrets.t]\ntemplate = \"x ${projectName} y\"\n", "projectName"),
        (
            "undefined secret",
            "[secrets.t]\ntemplate = \"x ${secret.never_defined} y\"\n",
            "never_defined",
        ),
        (
            "cycle",
            "[secrets.cycle_first]\ntemplate = \"1${secret.cycle_second}\"\n\n[secrets.cycle_second]\ntemplate = \"2${secret.cycle_first}\"\n",
            "cycle_second",
        ),
        ("self reference", "[secrets.selfish]\ntemplate = \"${secret.selfish}\"\n", "selfish"),
        ("unclosed", "[secrets.unclosed_one]\ntemplate = \"x ${projectId\"\n", "unclosed_one"),
        (
            "inline undefined",
            "[[grants]]\nproject = \"q\"\nenv = { INLINE_T = { template = \"${secret.inline_missing}\" } }\n",
            "inline_missing",
        ),
    ];
    for (what, extra, name) in cases {
        let policy = format!(
            "[secrets.kept_secret]\nsealed = {}\n\n[secrets.spliced]\ntemplate = \"k=${{secret.kept_secret}}\"\n\n{extra}\n\
             [[grants]]\nproject = \"p\"\nenv = {{ KEPT = \"spliced\" }}\n",
            toml_string(&sealed)
        );
        ws.write("policy.toml", &policy);
        let ran = envoi(&ws, &config, &["check"]);
        assert!(ran.code != Some(0), "{what}: the check should fail\n{ran}");
        assert!(ran.stderr.contains(name), "{what}: stderr should name `{name}`\n{ran}");
        shows_none(&ran, &["template-check-plaintext-14"]);
    }
    // The cycle names both of its secrets.
    ws.write(
        "policy.toml",
        "[secrets.cycle_first]\ntemplate = \"1${secret.cycle_second}\"\n\n[secrets.cycle_second]\ntemplate = \"2${secret.cycle_first}\"\n",
    );
    let ran = envoi(&ws, &config, &["check"]).failure();
    ran.stderr_names("cycle_first").stderr_names("cycle_second");
}

#[tokio::test]
async fn a_binary_file_value_is_served_base64() {
    let ws = Workspace::new();
    ws.write("blob.bin", [0xffu8, 0x00, 0xfe]);
    ws.write("text.txt", "plain text\n");
    ws.write(
        "policy.toml",
        "[secrets.blob]\nfile = \"blob.bin\"\n\n\
         [[grants]]\nproject = \"p\"\n\n\
         [[grants.files]]\npath = \"/etc/blob\"\nsecret = \"blob\"\n\n\
         [[grants.files]]\npath = \"/etc/text\"\nfile = \"text.txt\"\n\n\
         [[grants.files]]\npath = \"/etc/forced\"\nvalue = \"hi\"\nencoding = \"base64\"\n\n\
         [[grants.files]]\npath = \"/etc/prefixed\"\ntemplate = \"x${secret.blob}\"\n",
    );
    let config = ws.config("policy.toml", &[]);
    let server = Server::serve(ws.path(), &config);
    let answer = served(&server, "p", "service", "api").await;
    assert_eq!(
        answer,
        json!({"secrets": [
            {"type": "FILE", "path": "/etc/blob", "data": "/wD+", "encoding": "base64"},
            {"type": "FILE", "path": "/etc/forced", "data": "aGk=", "encoding": "base64"},
            {"type": "FILE", "path": "/etc/prefixed", "data": STANDARD.encode([b'x', 0xff, 0x00, 0xfe]), "encoding": "base64"},
            {"type": "FILE", "path": "/etc/text", "data": "plain text\n"},
        ]})
    );
    assert_eq!(STANDARD.decode("/wD+").unwrap(), [0xff, 0x00, 0xfe]);
}

#[test]
fn a_binary_value_on_an_env_fails_the_load_naming_the_key() {
    let ws = Workspace::new();
    ws.write("blob.bin", [0xffu8, 0x00, 0xfe]);
    let config = ws.config("policy.toml", &[]);
    for env in [
        "BINARY_ENV = { file = \"blob.bin\" }",
        "BINARY_ENV = \"blob\"",
        "BINARY_ENV = { template = \"x${secret.blob}\" }",
    ] {
        ws.write(
            "policy.toml",
            format!("[secrets.blob]\nfile = \"blob.bin\"\n\n[[grants]]\nproject = \"p\"\nenv = {{ {env} }}\n"),
        );
        let ran = envoi(&ws, &config, &["check"]).failure();
        ran.stderr_names("BINARY_ENV");
    }
    // A FILE that asks for utf-8 cannot take binary bytes either.
    ws.write(
        "policy.toml",
        "[[grants]]\nproject = \"p\"\n\n[[grants.files]]\npath = \"/etc/utf8_only\"\nfile = \"blob.bin\"\nencoding = \"utf-8\"\n",
    );
    envoi(&ws, &config, &["check"]).failure().stderr_names("/etc/utf8_only");
}

#[tokio::test]
async fn a_binary_sealed_value_is_served_base64() {
    let (ws, _, config) = keyed_workspace();
    let sealed = seal_with(&ws, &config, "/etc/sealed.bin", &[0xff, 0x00, 0xfe, b'\n'], true);
    ws.write(
        "policy.toml",
        format!(
            "[[grants]]\nproject = \"p\"\n\n[[grants.files]]\npath = \"/etc/sealed.bin\"\nsealed = {}\n",
            toml_string(&sealed)
        ),
    );
    let server = Server::serve(ws.path(), &config);
    assert_eq!(
        served(&server, "p", "service", "api").await,
        json!({"secrets": [{"type": "FILE", "path": "/etc/sealed.bin", "data": "/wD+Cg==", "encoding": "base64"}]})
    );
}
