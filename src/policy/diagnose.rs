//! Every shape problem of a policy file at once. serde stops at the first problem of a
//! document; when a file does not deserialize, it is walked here instead: each unknown
//! key anywhere is named, and each secret and grant is deserialized on its own, so one
//! run of `check` lists what three runs would otherwise find one by one. Only failed
//! files take this path: a good one is deserialized in one pass.

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::model::{GrantSpec, SourceSpec};

const TOP: &[&str] = &["secrets", "grants"];
const SOURCE: &[&str] = &["value", "env", "file", "sealed", "template"];
const GRANT: &[&str] = &["name", "project", "type", "id", "env", "files"];
const FILE: &[&str] = &[
    "path",
    "secret",
    "value",
    "env",
    "file",
    "sealed",
    "template",
    "encoding",
    "mode",
    "permissions",
    "owner",
    "group",
];
const PERMISSIONS: &[&str] = &["policy", "mode"];
const OWNER: &[&str] = &["policy", "value"];

/// The problems of `text`, each as `(byte offset, message)`; `None` when the text is
/// not even TOML (the parser's own error says where).
pub(super) fn shape_problems(text: &str, clean: impl Fn(&str) -> String) -> Option<Vec<(usize, String)>> {
    let root = DeTable::parse(text).ok()?;
    let mut walk = Walk {
        problems: Vec::new(),
        clean: &clean,
    };
    walk.keys(root.get_ref(), TOP, "the policy");
    for (key, value) in root.get_ref().iter() {
        match (key.get_ref().as_ref(), value.get_ref()) {
            ("secrets", DeValue::Table(secrets)) => {
                for (name, secret) in secrets.iter() {
                    let what = format!("secret `{}`", name.get_ref());
                    walk.entry::<SourceSpec>(secret, SOURCE, &what);
                }
            }
            ("grants", DeValue::Array(grants)) => {
                for (n, grant) in grants.iter().enumerate() {
                    walk.grant(grant, n + 1);
                }
            }
            ("secrets" | "grants", _) => {
                let expected = if key.get_ref() == "secrets" {
                    "a table of secrets"
                } else {
                    "an array of [[grants]] tables"
                };
                walk.problems
                    .push((value.span().start, format!("`{}` must be {expected}", key.get_ref())));
            }
            _ => {}
        }
    }
    walk.problems.sort();
    walk.problems.dedup();
    Some(walk.problems)
}

struct Walk<'c> {
    problems: Vec<(usize, String)>,
    clean: &'c dyn Fn(&str) -> String,
}

impl Walk<'_> {
    /// Names every key of `table` not in `known`.
    fn keys(&mut self, table: &DeTable<'_>, known: &[&str], what: &str) {
        for (key, _) in table.iter() {
            if !known.contains(&key.get_ref().as_ref()) {
                let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                self.problems.push((
                    key.span().start,
                    format!(
                        "{what}: unknown key `{}` (expected one of {})",
                        key.get_ref(),
                        expected.join(", ")
                    ),
                ));
            }
        }
    }

    /// Checks the keys of a table entry, then deserializes it alone for its other
    /// problems (an unknown key is already named).
    fn entry<T: for<'de> Deserialize<'de>>(&mut self, value: &Spanned<DeValue<'_>>, known: &[&str], what: &str) {
        if let DeValue::Table(table) = value.get_ref() {
            self.keys(table, known, what);
        }
        if let Err(e) = T::deserialize(ValueDeserializer::from(value.clone())) {
            if !e.message().contains("unknown field") {
                let at = e.span().map_or(value.span().start, |span| span.start);
                self.problems
                    .push((at, format!("{what}: {}", (self.clean)(e.message()))));
            }
        }
    }

    fn grant(&mut self, grant: &Spanned<DeValue<'_>>, n: usize) {
        let DeValue::Table(table) = grant.get_ref() else {
            self.problems
                .push((grant.span().start, format!("grant #{n} must be a table")));
            return;
        };
        let what = match table.get("name").map(|v| v.get_ref()) {
            Some(DeValue::String(name)) => format!("grant `{name}`"),
            _ => format!("grant #{n}"),
        };
        if let Some(DeValue::Table(env)) = table.get("env").map(|v| v.get_ref()) {
            for (key, value) in env.iter() {
                if let DeValue::Table(inline) = value.get_ref() {
                    self.keys(inline, SOURCE, &format!("{what}: ENV {}", key.get_ref()));
                }
            }
        }
        if let Some(DeValue::Array(files)) = table.get("files").map(|v| v.get_ref()) {
            for file in files.iter() {
                let DeValue::Table(file) = file.get_ref() else { continue };
                let path = match file.get("path").map(|v| v.get_ref()) {
                    Some(DeValue::String(path)) => format!("{what}: FILE {path}"),
                    _ => format!("{what}: a FILE"),
                };
                self.keys(file, FILE, &path);
                if let Some(DeValue::Table(permissions)) = file.get("permissions").map(|v| v.get_ref()) {
                    self.keys(permissions, PERMISSIONS, &format!("{path}: permissions"));
                }
                for field in ["owner", "group"] {
                    if let Some(DeValue::Table(owner)) = file.get(field).map(|v| v.get_ref()) {
                        self.keys(owner, OWNER, &format!("{path}: {field}"));
                    }
                }
            }
        }
        self.entry::<GrantSpec>(grant, GRANT, &what);
    }
}
