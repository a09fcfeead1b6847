//! A FILE item's attributes as the protocol carries them: the mode, the owner and the
//! group, in their short and long forms.

use super::super::item::{FileAttributes, Ownership, PermissionPolicy, Permissions, Target};
use super::super::model::{FileSpec, OwnerSpec};
use super::compile::Compiler;

/// `"0400"`, `"400"` or `"0o400"` → `"0400"`. The one reading of a mode: the TOML and
/// the Postgres stores both take it through here, so that they accept the same modes.
pub(crate) fn parse_mode(mode: &str) -> Result<String, String> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("mode \"{mode}\" is not an octal file mode such as \"0400\""));
    }
    let value = u32::from_str_radix(digits, 8).expect("checked octal digits");
    Ok(format!("{value:04o}"))
}

impl Compiler<'_> {
    pub(super) fn file_attributes(&mut self, what: &str, target: &Target, file: &FileSpec) -> Option<FileAttributes> {
        let before = self.problems.len();
        let permissions = match (&file.mode, &file.permissions) {
            (Some(_), Some(_)) => {
                self.problems
                    .push(format!("{what}: {target}: give `mode` or `permissions`, not both"));
                None
            }
            (Some(mode), None) => parse_mode(mode)
                .map(|mode| Permissions {
                    policy: PermissionPolicy::AlwaysSet,
                    mode,
                })
                .map_err(|e| self.problems.push(format!("{what}: {target}: {e}")))
                .ok(),
            (None, Some(long)) => parse_mode(&long.mode)
                .map(|mode| Permissions {
                    policy: long.policy,
                    mode,
                })
                .map_err(|e| self.problems.push(format!("{what}: {target}: {e}")))
                .ok(),
            (None, None) => None,
        };
        let mut ownership = |field: &str, raw: &Option<OwnerSpec>| -> Option<Ownership> {
            let parsed = match raw.as_ref()? {
                OwnerSpec::Short(value) if !value.is_empty() => Ok(Ownership::AlwaysSetExplicit { value: value.clone() }),
                OwnerSpec::Short(_) => Err("may not be empty".to_owned()),
                OwnerSpec::Long { policy, value } => match (policy.as_str(), value) {
                    ("AlwaysSetExplicit", Some(v)) if !v.is_empty() => Ok(Ownership::AlwaysSetExplicit { value: v.clone() }),
                    ("KeepOrSetExplicit", Some(v)) if !v.is_empty() => Ok(Ownership::KeepOrSetExplicit { value: v.clone() }),
                    ("AlwaysSetExplicit" | "KeepOrSetExplicit", _) => Err(format!("policy {policy} needs a non-empty `value`")),
                    ("AlwaysSetInherited", None) => Ok(Ownership::AlwaysSetInherited),
                    ("KeepOrSetInherited", None) => Ok(Ownership::KeepOrSetInherited),
                    ("AlwaysSetInherited" | "KeepOrSetInherited", Some(_)) => {
                        Err(format!("policy {policy} takes no `value`"))
                    }
                    _ => Err(format!(
                        "policy `{policy}` is not one of AlwaysSetExplicit, KeepOrSetExplicit, AlwaysSetInherited, KeepOrSetInherited"
                    )),
                },
            };
            parsed
                .map_err(|e| self.problems.push(format!("{what}: {target}: {field} {e}")))
                .ok()
        };
        let owner = ownership("owner", &file.owner);
        let group = ownership("group", &file.group);
        let encoding = file.encoding;
        (self.problems.len() == before).then_some(FileAttributes {
            encoding,
            owner,
            group,
            permissions,
        })
    }
}
