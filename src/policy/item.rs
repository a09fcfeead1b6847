//! What a grant gives: ENV variables and FILEs, rendered once into the exact JSON the
//! protocol wants so that answering is a matter of concatenation.

use std::fmt;

use base64::Engine as _;
use serde::Serialize;

use super::value::SecretBytes;

/// Where an item lands in the workload. ENV items sort before FILE items, each by name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Env(String),
    File(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(key) => write!(f, "ENV {key}"),
            Self::File(path) => write!(f, "FILE {path}"),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Target {
    /// The name the audit line records.
    pub fn name(&self) -> &str {
        match self {
            Self::Env(key) | Self::File(key) => key,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "policy")]
pub enum Ownership {
    AlwaysSetExplicit { value: String },
    KeepOrSetExplicit { value: String },
    AlwaysSetInherited,
    KeepOrSetInherited,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Permissions {
    pub policy: PermissionPolicy,
    pub mode: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PermissionPolicy {
    AlwaysSet,
    KeepOrSet,
}

/// The attributes a FILE item may carry besides its data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileAttributes {
    /// Asked for in the policy; `None` means chosen from the bytes.
    pub encoding: Option<Encoding>,
    pub owner: Option<Ownership>,
    pub group: Option<Ownership>,
    pub permissions: Option<Permissions>,
}

/// One ENV or FILE item of a grant, with its value and its wire form.
pub struct Item {
    pub target: Target,
    /// Where the value comes from, for `explain`: "secret `db_password`", "inline env `X`"...
    pub origin: String,
    pub value: SecretBytes,
    pub attributes: FileAttributes,
    /// The item exactly as it goes on the wire.
    json: SecretBytes,
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("target", &self.target)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Item {
    /// Renders an item. An ENV value must be UTF-8; a FILE value that is not is sent
    /// base64 unless the policy asked for UTF-8, which is then an error.
    pub fn new(target: Target, origin: String, value: SecretBytes, attributes: FileAttributes) -> Result<Self, String> {
        let json = match &target {
            Target::Env(key) => {
                let text = std::str::from_utf8(value.expose())
                    .map_err(|_| format!("{target}: the value of {origin} is not UTF-8 text"))?;
                serde_json::to_vec(&EnvWire {
                    kind: "ENV",
                    key,
                    value: text,
                })
            }
            Target::File(path) => {
                let (data, encoding) = match (attributes.encoding, std::str::from_utf8(value.expose())) {
                    (Some(Encoding::Base64), _) | (None, Err(_)) => (
                        zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value.expose())),
                        Some(Encoding::Base64),
                    ),
                    (Some(Encoding::Utf8), Ok(text)) => {
                        (zeroize::Zeroizing::new(text.to_owned()), Some(Encoding::Utf8))
                    }
                    (None, Ok(text)) => (zeroize::Zeroizing::new(text.to_owned()), None),
                    (Some(Encoding::Utf8), Err(_)) => {
                        return Err(format!(
                            "{target}: encoding \"utf-8\" was asked for but the value of {origin} is not UTF-8 text"
                        ))
                    }
                };
                serde_json::to_vec(&FileWire {
                    kind: "FILE",
                    path,
                    data: &data,
                    encoding,
                    owner: attributes.owner.as_ref(),
                    group: attributes.group.as_ref(),
                    permissions: attributes.permissions.as_ref(),
                })
            }
        }
        .expect("serialising strings cannot fail");
        Ok(Self {
            target,
            origin,
            value,
            attributes,
            json: SecretBytes::new(json),
        })
    }

    /// The item on the wire.
    pub fn json(&self) -> &[u8] {
        self.json.expose()
    }
}

#[derive(Serialize)]
struct EnvWire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    key: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct FileWire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    path: &'a str,
    data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<Encoding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a Ownership>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a Ownership>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<&'a Permissions>,
}
