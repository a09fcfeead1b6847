//! The layers of the configuration, merged here: the built-in defaults, the `--config`
//! file, then `ENVOI__…` variables.
//!
//! config-rs did this before. It forgot where a setting came from, stopped at the first
//! problem, quoted values in its messages and panicked on a variable that is not UTF-8,
//! even one envoi never reads. Here each setting given (a key of the file, a variable)
//! is checked alone over the defaults, so that a problem belongs to one setting: every
//! problem is found in one run, and each is named where it stands, `FILE:LINE` or the
//! variable, with the valid names when a name is wrong, and never with the value.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};
use toml::{Table, Value};

/// The prefix of the variables that set settings.
const PREFIX: &str = "ENVOI__";

/// Where a setting was given.
#[derive(Debug, Clone)]
enum Origin {
    File { path: PathBuf, line: usize },
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(var) => f.write_str(var),
        }
    }
}

/// One setting given by the file or a variable.
struct Given {
    /// `["server", "listen"]`
    path: Vec<String>,
    /// Or why the variable's text is not a value of the setting's kind.
    value: Result<Value, String>,
    origin: Origin,
    /// In the file, the line of each key of `path`: `[server]`'s, then `listen`'s.
    lines: Vec<usize>,
}

impl Given {
    /// Where the key of `path` at `depth` was given.
    fn origin_at(&self, depth: usize) -> Origin {
        match (&self.origin, self.lines.get(depth)) {
            (Origin::File { path, .. }, Some(&line)) => Origin::File {
                path: path.clone(),
                line,
            },
            (origin, _) => origin.clone(),
        }
    }
}

/// The merged settings, and the dotted keys that variables set.
pub(super) struct Loaded<T> {
    pub settings: T,
    pub from_env: Vec<String>,
}

/// Reads the layers into `T`, or names every problem found.
pub(super) fn load<T: DeserializeOwned>(
    defaults: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Loaded<T>, Vec<String>> {
    let defaults: Table =
        toml::from_str(defaults).map_err(|e| vec![format!("the built-in defaults: {}", e.message().trim())])?;
    let mut problems = Vec::new();
    let mut given = Vec::new();
    if let Some(file) = file {
        match read_file(file) {
            Ok(settings) => given.extend(settings),
            Err(found) => problems.extend(found),
        }
    }
    given.extend(read_env(env, &defaults, &mut problems));
    let mut merged = defaults.clone();
    let mut from_env = Vec::new();
    let mut unknown = BTreeSet::new();
    for setting in given {
        let key = setting.path.join(".");
        let mut alone = defaults.clone();
        let checked = setting.value.clone().map_err(Problem::Invalid).and_then(|value| {
            insert(&mut alone, &setting.path, value).map_err(Problem::Invalid)?;
            alone
                .try_into::<T>()
                .map(drop)
                .map_err(|e| Problem::of(&setting.path, e.message()))
        });
        match (checked, &setting.value) {
            (Ok(()), Ok(value)) => {
                // Checked alone over the defaults, it fits over them with the others too.
                let _ = insert(&mut merged, &setting.path, value.clone());
                if matches!(setting.origin, Origin::Env(_)) {
                    from_env.push(key);
                }
            }
            (Ok(()), Err(_)) => {}
            (
                Err(Problem::Unknown {
                    key,
                    section,
                    valid,
                    depth,
                }),
                _,
            ) => {
                // Each key of an unknown section would say so again.
                if unknown.insert(key.clone()) {
                    let valid = match (section.as_str(), valid.is_empty()) {
                        (_, true) => format!("`{section}` has no settings"),
                        ("", false) => format!("the sections are: {}", valid.join(", ")),
                        (_, false) => format!("the settings of [{section}] are: {}", valid.join(", ")),
                    };
                    problems.push(format!(
                        "unknown setting `{key}` ({}); {valid}",
                        setting.origin_at(depth)
                    ));
                }
            }
            (Err(Problem::Invalid(problem)), _) => {
                problems.push(format!("setting `{key}` ({}): {problem}", setting.origin));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let settings = merged.try_into::<T>().map_err(|e| {
        vec![format!(
            "the settings together: {}",
            crate::redact::redact_values(e.message())
        )]
    })?;
    Ok(Loaded { settings, from_env })
}

/// The settings of the `--config` file, in the order of their lines.
fn read_file(path: &Path) -> Result<Vec<Given>, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![match e.kind() {
            std::io::ErrorKind::NotFound => format!("config file {} does not exist", path.display()),
            std::io::ErrorKind::InvalidData => format!("config file {} is not UTF-8 text", path.display()),
            kind => format!("cannot read config file {}: {kind}", path.display()),
        }]
    })?;
    let line = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
    // The parser's message alone: its full text shows the line, which may hold a secret.
    let (spans, errors) = DeTable::parse_recoverable(&text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| match e.span() {
                Some(span) => format!("{}:{}: {}", path.display(), line(span.start), e.message().trim()),
                None => format!("{}: {}", path.display(), e.message().trim()),
            })
            .collect());
    }
    let table: Table =
        toml::from_str(&text).map_err(|e| vec![format!("{}: {}", path.display(), e.message().trim())])?;
    let mut given = Vec::new();
    leaves(&table, &mut Vec::new(), &mut |key, value| {
        let mut starts = Vec::new();
        key_starts(spans.get_ref(), key, &mut starts);
        let lines: Vec<usize> = starts.into_iter().map(line).collect();
        given.push(Given {
            path: key.to_vec(),
            value: Ok(value.clone()),
            origin: Origin::File {
                path: path.to_path_buf(),
                line: lines.last().copied().unwrap_or(0),
            },
            lines,
        });
    });
    given.sort_by_key(|g| match g.origin {
        Origin::File { line, .. } => line,
        Origin::Env(_) => 0,
    });
    Ok(given)
}

/// Calls `each` with every setting of `table`: a value that is not a table, or an empty
/// table (an empty `[section]` must still be a known one).
fn leaves(table: &Table, path: &mut Vec<String>, each: &mut impl FnMut(&[String], &Value)) {
    for (key, value) in table {
        path.push(key.clone());
        match value {
            Value::Table(inner) if !inner.is_empty() => leaves(inner, path, each),
            value => each(path, value),
        }
        path.pop();
    }
}

/// Where each key of `path` starts in the file, as far as they are found.
fn key_starts(table: &DeTable<'_>, path: &[String], starts: &mut Vec<usize>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref() == first) {
        starts.push(key.span().start);
        if let DeValue::Table(inner) = value.get_ref() {
            key_starts(inner, rest, starts);
        }
    }
}

/// The settings that `ENVOI__SECTION__KEY` variables give, by variable name. Other
/// variables are not looked at, whatever they hold; a variable of envoi's that is not
/// UTF-8 is named, never shown.
fn read_env(
    env: impl IntoIterator<Item = (OsString, OsString)>,
    defaults: &Table,
    problems: &mut Vec<String>,
) -> Vec<Given> {
    let mut vars: Vec<(OsString, OsString)> = env
        .into_iter()
        .filter(|(name, _)| name.as_encoded_bytes().starts_with(PREFIX.as_bytes()))
        .collect();
    vars.sort();
    let mut given = Vec::new();
    for (name, value) in vars {
        let Some(var) = name.to_str() else {
            problems.push(format!(
                "environment variable {}: its name is not UTF-8",
                name.to_string_lossy()
            ));
            continue;
        };
        let Some(text) = value.to_str() else {
            problems.push(format!("environment variable {var} is not valid UTF-8"));
            continue;
        };
        let path: Vec<String> = var[PREFIX.len()..].split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push(format!(
                "environment variable {var} names no setting: the form is ENVOI__SECTION__KEY, such as ENVOI__SERVER__LISTEN"
            ));
            continue;
        }
        given.push(Given {
            value: from_text(text, lookup(defaults, &path)),
            path,
            origin: Origin::Env(var.to_owned()),
            lines: Vec::new(),
        });
    }
    given
}

fn lookup<'t>(table: &'t Table, path: &[String]) -> Option<&'t Value> {
    let (first, rest) = path.split_first()?;
    match (table.get(first)?, rest.is_empty()) {
        (value, true) => Some(value),
        (Value::Table(inner), false) => lookup(inner, rest),
        _ => None,
    }
}

/// A variable's text as the kind of value its setting's default is: a number, a
/// boolean, a comma-separated list. Settings without a default (all optional text or
/// paths) and unknown ones are text; an unknown one is then named by the check.
fn from_text(text: &str, default: Option<&Value>) -> Result<Value, String> {
    let text_of = |t: &str| Value::String(t.to_owned());
    match default {
        Some(Value::Integer(_)) => text
            .trim()
            .parse()
            .map(Value::Integer)
            .map_err(|_| "expected a whole number".to_owned()),
        Some(Value::Float(_)) => text
            .trim()
            .parse()
            .map(Value::Float)
            .map_err(|_| "expected a number".to_owned()),
        Some(Value::Boolean(_)) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Boolean(true)),
            "false" => Ok(Value::Boolean(false)),
            _ => Err("expected true or false".to_owned()),
        },
        Some(Value::Array(_)) => Ok(Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(text_of)
                .collect(),
        )),
        Some(Value::Table(_)) => Err("this is a section: set its settings one by one, ENVOI__SECTION__KEY".to_owned()),
        _ => Ok(text_of(text)),
    }
}

/// Puts `value` at `path`, making the sections on the way. An empty table adds nothing
/// to a section already there.
fn insert(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut table = table;
    for (depth, key) in parents.iter().enumerate() {
        let entry = table.entry(key.clone()).or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(inner) => inner,
            _ => return Err(format!("`{}` is a setting, not a section", path[..=depth].join("."))),
        };
    }
    match (table.get(last), &value) {
        (Some(Value::Table(_)), Value::Table(new)) if new.is_empty() => {}
        _ => {
            table.insert(last.clone(), value);
        }
    }
    Ok(())
}

/// What serde found wrong with one setting.
enum Problem {
    /// `key`, the one at `depth` of the path given, is not a setting; `section` holds
    /// `valid`.
    Unknown {
        key: String,
        section: String,
        valid: Vec<String>,
        depth: usize,
    },
    /// Said without the value.
    Invalid(String),
}

impl Problem {
    fn of(path: &[String], message: &str) -> Self {
        if let Some(rest) = message.trim().strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or_default();
            let depth = path
                .iter()
                .position(|key| key == field)
                .unwrap_or(path.len().saturating_sub(1));
            return Problem::Unknown {
                key: path[..=depth.min(path.len().saturating_sub(1))].join("."),
                section: path[..depth.min(path.len())].join("."),
                valid: quoted_after(rest, "expected"),
                depth,
            };
        }
        Problem::Invalid(expected(message))
    }
}

/// What a setting should have been, from serde's message, without the value it quotes.
fn expected(message: &str) -> String {
    let message = message.trim();
    if message.starts_with("unknown variant") {
        let names = quoted_after(message, "expected");
        return match names.as_slice() {
            [] => "not one of the values allowed".to_owned(),
            [one] => format!("expected {one}"),
            names => format!("expected one of: {}", names.join(", ")),
        };
    }
    match message.rsplit_once(", expected ") {
        Some((_, wanted)) => {
            let wanted = match wanted.trim() {
                "u8" => "a whole number from 0 to 255",
                "u16" => "a whole number from 0 to 65535",
                "u32" => "a whole number from 0 to 4294967295",
                "u64" | "usize" => "a whole number, 0 or more",
                "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
                "a sequence" => "a list",
                "path string" => "a path",
                struct_name if struct_name.starts_with("struct ") => "a section",
                other => return format!("expected {}", crate::redact::redact_values(other)),
            };
            format!("expected {wanted}")
        }
        None => crate::redact::redact_values(message),
    }
}

/// The `` `names` `` quoted after `word` in `text`.
fn quoted_after(text: &str, word: &str) -> Vec<String> {
    let Some((_, rest)) = text.split_once(word) else {
        return Vec::new();
    };
    rest.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        server: Server,
        log: Log,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Server {
        listen: String,
        workers: u16,
        admin: Option<String>,
        exempt: Vec<String>,
        tls: Tls,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Tls {
        cert: Option<PathBuf>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Format {
        Pretty,
        Json,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Log {
        format: Format,
        quiet: bool,
    }

    const DEFAULTS: &str = "[server]\nlisten = \"127.0.0.1:1\"\nworkers = 0\nexempt = []\n[server.tls]\n[log]\nformat = \"pretty\"\nquiet = false\n";

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn problems(file: Option<&str>, vars: &[(&str, &str)]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("envoi.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        match load::<Shape>(DEFAULTS, file.map(|_| path.as_path()), env(vars)) {
            Ok(_) => Vec::new(),
            Err(found) => found
                .into_iter()
                .map(|p| p.replace(&path.display().to_string(), "envoi.toml"))
                .collect(),
        }
    }

    #[test]
    fn variables_are_typed_by_their_default_and_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("envoi.toml");
        std::fs::write(
            &path,
            "[server]\nworkers = 2\nlisten = \"file\"\n[server.tls]\ncert = \"c.pem\"\n",
        )
        .unwrap();
        let vars = env(&[
            ("ENVOI__SERVER__WORKERS", " 4 "),
            ("ENVOI__SERVER__EXEMPT", "a, b,,"),
            ("ENVOI__LOG__QUIET", "TRUE"),
            ("ENVOI__SERVER__ADMIN", "127.0.0.1:2"),
            ("OTHER", "ignored"),
        ]);
        let loaded = load::<Shape>(DEFAULTS, Some(&path), vars).unwrap_or_else(|p| panic!("{p:?}"));
        let server = &loaded.settings.server;
        assert_eq!((server.workers, server.listen.as_str()), (4, "file"));
        assert_eq!(server.exempt, ["a", "b"]);
        assert_eq!(server.admin.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(server.tls.cert.as_deref(), Some(Path::new("c.pem")));
        assert!(loaded.settings.log.quiet);
        assert_eq!(
            loaded.from_env,
            ["log.quiet", "server.admin", "server.exempt", "server.workers"]
        );
    }

    #[test]
    fn every_problem_is_named_where_it_stands_without_its_value() {
        let found = problems(
            Some("[server]\nlistn = \"s3cret-a\"\nworkers = \"s3cret-b\"\n\n[bogus]\nx = 1\ny = 2\n[log]\n"),
            &[
                ("ENVOI__LOG__FORMAT", "s3cret-c"),
                ("ENVOI__SERVER__WORKERS", "s3cret-d"),
                ("ENVOI__SERVER__TLS__KEY", "k"),
                ("ENVOI__SERVER____LISTEN", "x"),
            ],
        );
        assert_eq!(
            found,
            [
                "environment variable ENVOI__SERVER____LISTEN names no setting: the form is ENVOI__SECTION__KEY, such as ENVOI__SERVER__LISTEN",
                "unknown setting `server.listn` (envoi.toml:2); the settings of [server] are: listen, workers, admin, exempt, tls",
                "setting `server.workers` (envoi.toml:3): expected a whole number from 0 to 65535",
                "unknown setting `bogus` (envoi.toml:5); the sections are: server, log",
                "setting `log.format` (ENVOI__LOG__FORMAT): expected one of: pretty, json",
                "unknown setting `server.tls.key` (ENVOI__SERVER__TLS__KEY); the settings of [server.tls] are: cert",
                "setting `server.workers` (ENVOI__SERVER__WORKERS): expected a whole number",
            ]
        );
        assert!(!found.concat().contains("s3cret"), "{found:?}");
    }

    #[test]
    fn a_variable_that_is_not_utf8_is_named_and_others_are_not_read() {
        use std::os::unix::ffi::OsStringExt as _;
        let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
        let vars = vec![
            (OsString::from("SOME_TOKEN"), bytes(b"\xffs3cret")),
            (OsString::from("ENVOI__SERVER__LISTEN"), bytes(b"\xffs3cret")),
        ];
        let found = load::<Shape>(DEFAULTS, None, vars).err().unwrap_or_default();
        assert_eq!(found, ["environment variable ENVOI__SERVER__LISTEN is not valid UTF-8"]);
        let vars = vec![(OsString::from("SOME_TOKEN"), bytes(b"\xffs3cret"))];
        assert!(load::<Shape>(DEFAULTS, None, vars).is_ok());
    }

    #[test]
    fn a_syntax_error_names_its_line_and_not_its_text() {
        let found = problems(Some("[server]\nlisten = \"s3cret\nworkers = 1\n"), &[]);
        assert!(found.iter().all(|p| p.starts_with("envoi.toml:2: ")), "{found:?}");
        assert!(!found.concat().contains("s3cret"), "{found:?}");
    }

    #[test]
    fn an_empty_section_is_known_and_changes_nothing() {
        assert!(problems(Some("[server]\n[server.tls]\n[log]\n"), &[]).is_empty());
        assert_eq!(
            problems(Some("[nothing]\n"), &[]),
            ["unknown setting `nothing` (envoi.toml:1); the sections are: server, log"]
        );
    }
}
