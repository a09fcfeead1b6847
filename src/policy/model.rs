//! The policy as ops write it (SPEC §2), before it is checked: what the TOML files
//! parse into, what the Postgres store reads its rows into, and what `db export` writes.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::item::{Encoding, PermissionPolicy};

#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Spanned<SourceSpec>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Spanned<GrantSpec>>,
}

/// Exactly one of these says where a value comes from.
#[derive(Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(rename = "type")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "EnvTable::is_empty")]
    pub env: EnvTable,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
}

/// An ENV entry: a secret's name, or an inline source.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EnvSpec {
    Secret(String),
    Inline(Box<SourceSpec>),
}

impl<'de> Deserialize<'de> for EnvSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a secret name or an inline table with one of value, env, file, sealed, template")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(EnvSpec::Secret(s.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                SourceSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|s| EnvSpec::Inline(Box::new(s)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A `[[grants.files]]` entry. Its inline source fields repeat `SourceSpec`'s: serde's
/// `flatten` cannot be combined with `deny_unknown_fields`, and unknown keys must fail.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<PermissionsSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<OwnerSpec>,
}

#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsSpec {
    pub policy: PermissionPolicy,
    pub mode: String,
}

impl<'de> Deserialize<'de> for PermissionPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// `owner`/`group`: a name or id (`AlwaysSetExplicit`), or the long form.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum OwnerSpec {
    Short(String),
    Long {
        policy: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
}

impl<'de> Deserialize<'de> for OwnerSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            policy: String,
            value: Option<String>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OwnerSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a user or group name or id, or a table { policy = ..., value = ... }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(OwnerSpec::Short(s.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                if n < 0 {
                    return Err(E::custom("a user or group id cannot be negative"));
                }
                Ok(OwnerSpec::Short(n.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let long = Long::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(OwnerSpec::Long {
                    policy: long.policy,
                    value: long.value,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A grant's `env` table, kept as a list: a map per grant would cost a B-tree node
/// (over half a kilobyte) each, which for a policy of 100,000 grants is tens of megabytes.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EnvTable(Vec<(String, EnvSpec)>);

impl EnvTable {
    pub fn insert(&mut self, key: String, value: EnvSpec) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for EnvTable {
    type Item = (String, EnvSpec);
    type IntoIter = std::vec::IntoIter<(String, EnvSpec)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a EnvTable {
    type Item = &'a (String, EnvSpec);
    type IntoIter = std::slice::Iter<'a, (String, EnvSpec)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Serialize for EnvTable {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for EnvTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvTable;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of ENV keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry::<String, EnvSpec>()? {
                    entries.push(entry);
                }
                Ok(EnvTable(entries))
            }
        }
        d.deserialize_map(V)
    }
}
