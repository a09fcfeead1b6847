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
        let mut files: BTreeMap<String, Vec<(&Grant, &str)>> = BTreeMap::new();
        for grant in self.grants() {
            for item in grant.items.iter() {
                match &item.target {
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
                        files.entry(normalise(path)).or_default().push((grant, path));
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
        let (kept, more) = self.0.entry(kind).or_default();
        if kept.len() < CAP {
            kept.push(warning);
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

/// Two FILE paths that name one file, or one the folder of the other, given to workloads
/// that both grants can select.
fn same_and_nested_files(files: &BTreeMap<String, Vec<(&Grant, &str)>>, found: &mut Kinds) {
    for (path, givers) in files {
        for (n, (a, a_path)) in givers.iter().enumerate() {
            for (b, b_path) in &givers[n + 1..] {
                if a_path != b_path && a.selector.overlaps(&b.selector) {
                    found.push(
                        "twice",
                        format!(
                            "FILE {a_path} ({}) and FILE {b_path} ({}) are one file, {path}, given twice to the workloads both select",
                            a.describe(),
                            b.describe()
                        ),
                    );
                }
            }
        }
        let mut folder = path.as_str();
        while let Some(at) = folder.rfind('/').filter(|at| *at > 0) {
            folder = &folder[..at];
            let Some(parents) = files.get(folder) else { continue };
            for (a, a_path) in parents {
                for (b, b_path) in givers {
                    if a.selector.overlaps(&b.selector) {
                        found.push(
                            "prefix",
                            format!(
                                "FILE {a_path} ({}) is a folder of FILE {b_path} ({}): a workload both select cannot have both",
                                a.describe(),
                                b.describe()
                            ),
                        );
                    }
                }
            }
        }
    }
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
