//! Lint: what loads and serves but is likely a mistake (`envoi check` shows it, `check
//! --strict` refuses it). Computed from the compiled policy; messages name grants, keys
//! and paths, never a value.

use std::collections::BTreeMap;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::super::{Grant, Item, Policy, Target};
use crate::auth::Workload;

/// At most this many warnings of one kind, then a count of the rest.
const CAP: usize = 50;

impl Policy {
    /// Every lint warning, sorted.
    pub fn lint(&self) -> Vec<String> {
        let mut found = Kinds::default();
        let mut files: FilePaths<'_> = BTreeMap::new();
        for grant in self.grants() {
            for item in grant.items.iter() {
                match item.target() {
                    Target::Env(key) if !portable_env_key(key) => found.push(
                        "env",
                        format!(
                            "{}: ENV key `{key}` is not a portable name ([A-Za-z_][A-Za-z0-9_]*)",
                            grant.describe()
                        ),
                    ),
                    Target::Env(_) => {}
                    Target::File(path) => {
                        if let Some(why) = path_problem(path) {
                            found.push("path", format!("{}: FILE path `{path}` {why}", grant.describe()));
                        }
                        if let Some(why) = private_key_exposed(item) {
                            found.push(
                                "key",
                                format!("{}: FILE {path} holds a private key {why}", grant.describe()),
                            );
                        }
                        let spellings = files.entry(normalise(path)).or_default();
                        spellings.entry(path).or_default().push(grant);
                    }
                }
            }
        }
        same_and_nested_files(&files, &mut found);
        found.finish()
    }
}

/// Warnings by kind, each kind capped.
#[derive(Default)]
struct Kinds(BTreeMap<&'static str, (Vec<String>, usize)>);

impl Kinds {
    fn push(&mut self, kind: &'static str, warning: String) {
        self.push_with(kind, || warning);
    }

    /// Formats the warning only when it is kept.
    fn push_with(&mut self, kind: &'static str, warning: impl FnOnce() -> String) {
        let (kept, more) = self.0.entry(kind).or_default();
        if kept.len() < CAP {
            kept.push(warning());
        } else {
            *more += 1;
        }
    }

    fn finish(self) -> Vec<String> {
        let mut all = Vec::new();
        for (_, (mut kept, more)) in self.0 {
            kept.sort();
            all.extend(kept);
            if more > 0 {
                all.push(format!("… and {more} more like the one above"));
            }
        }
        all
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a name every shell and `env` accepts.
fn portable_env_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("is relative: where it lands depends on the workload's working folder");
    }
    if path.split('/').any(|part| part == "..") {
        return Some("contains `..`");
    }
    None
}

/// The path with repeated `/` and `.` parts folded: `/etc//app/./key` is `/etc/app/key`.
fn normalise(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}

/// Per normalised FILE path, per path as written, the grants that give it.
type FilePaths<'p> = BTreeMap<String, BTreeMap<&'p str, Vec<&'p Grant>>>;

/// Two FILE paths that name one file, or one the folder of the other, given to workloads
/// that both grants can select. Grants that give the very same path are not compared
/// with each other (the more specific wins; equal ones are a load error): at fleet size,
/// one path is often given by thousands of grants.
fn same_and_nested_files(files: &FilePaths<'_>, found: &mut Kinds) {
    for (path, spellings) in files {
        let spellings: Vec<(&&str, &Vec<&Grant>)> = spellings.iter().collect();
        for (n, (a_path, a_grants)) in spellings.iter().enumerate() {
            for (b_path, b_grants) in &spellings[n + 1..] {
                for (a, b) in overlapping(a_grants, b_grants) {
                    found.push_with("twice", || {
                        format!(
                            "FILE {a_path} ({}) and FILE {b_path} ({}) are one file, {path}, given twice to the workloads both select",
                            a.describe(),
                            b.describe()
                        )
                    });
                }
            }
        }
        let mut folder = path.as_str();
        while let Some(at) = folder.rfind('/').filter(|at| *at > 0) {
            folder = &folder[..at];
            let Some(parents) = files.get(folder) else { continue };
            for (a_path, a_grants) in parents {
                for (b_path, b_grants) in &spellings {
                    for (a, b) in overlapping(a_grants, b_grants) {
                        found.push_with("prefix", || {
                            format!(
                                "FILE {a_path} ({}) is a folder of FILE {b_path} ({}): a workload both select cannot have both",
                                a.describe(),
                                b.describe()
                            )
                        });
                    }
                }
            }
        }
    }
}

fn overlapping<'a, 'p>(a: &'a [&'p Grant], b: &'a [&'p Grant]) -> impl Iterator<Item = (&'p Grant, &'p Grant)> + 'a {
    a.iter()
        .flat_map(move |x| b.iter().map(move |y| (*x, *y)))
        .filter(|(x, y)| x.selector.overlaps(&y.selector))
}

/// The item as served, read back in memory to look at its data and mode.
#[derive(Deserialize)]
struct Served {
    #[serde(default, deserialize_with = "zeroized")]
    data: Option<Zeroizing<String>>,
    encoding: Option<String>,
    permissions: Option<Mode>,
}

/// The string moves into its wiper; it is never copied.
fn zeroized<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Zeroizing<String>>, D::Error> {
    Option::<String>::deserialize(d).map(|data| data.map(Zeroizing::new))
}

#[derive(Deserialize)]
struct Mode {
    mode: String,
}

/// Why a FILE that looks like a private key is served too widely, if it is.
fn private_key_exposed(item: &Item) -> Option<String> {
    let probe = Workload::new("lint", "lint", "lint").expect("a valid workload");
    let mut json = Zeroizing::new(Vec::new());
    item.write_json(&probe, &mut json);
    let served: Served = serde_json::from_slice(&json).ok()?;
    let data = served.data?;
    let bytes = match served.encoding.as_deref() {
        Some("base64") => {
            use base64::Engine as _;
            Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(data.as_bytes()).ok()?)
        }
        _ => Zeroizing::new(data.as_bytes().to_vec()),
    };
    if !looks_like_private_key(&bytes) {
        return None;
    }
    match served.permissions {
        None => Some("and is served without permissions: give `mode = \"0400\"` (or 0600)".to_owned()),
        Some(Mode { mode }) => match u32::from_str_radix(&mode, 8) {
            Ok(bits) if bits & !0o600 == 0 => None,
            _ => Some(format!("and is served with mode {mode}, wider than 0600")),
        },
    }
}

/// `-----BEGIN … PRIVATE KEY-----` on one line: PKCS#8, RSA, EC, OpenSSH, encrypted.
fn looks_like_private_key(bytes: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN ";
    bytes.windows(BEGIN.len()).enumerate().any(|(at, w)| {
        w == BEGIN && {
            let rest = &bytes[at + BEGIN.len()..];
            let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            line.len() <= 64 && line.ends_with(b"PRIVATE KEY-----")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_are_told_from_certificates() {
        assert!(looks_like_private_key(b"-----BEGIN PRIVATE KEY-----\nMII"));
        assert!(looks_like_private_key(b"x\n-----BEGIN RSA PRIVATE KEY-----\r\nMII"));
        assert!(looks_like_private_key(b"-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(!looks_like_private_key(b"-----BEGIN CERTIFICATE-----\nMII"));
        assert!(!looks_like_private_key(b"-----BEGIN PUBLIC KEY-----\n"));
    }

    #[test]
    fn paths_are_normalised_before_they_are_compared() {
        assert_eq!(normalise("/etc//app/./key"), "/etc/app/key");
        assert_eq!(normalise("/etc/app/"), "/etc/app");
        assert!(path_problem("etc/app").is_some());
        assert!(path_problem("/etc/../app").is_some());
        assert!(path_problem("/etc/app").is_none());
        assert!(!portable_env_key("9X") && !portable_env_key("A-B") && portable_env_key("_A9"));
    }
}
