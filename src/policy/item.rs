//! What a grant gives: ENV variables and FILEs, rendered once into the exact JSON the
//! protocol wants so that answering is a matter of concatenation.

use std::fmt;

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;
use zeroize::Zeroizing;

use super::template::Template;
use super::value::Value;
use crate::auth::Workload;
use crate::secret::SecretBytes;

/// Where an item lands in the workload. ENV items sort before FILE items, each by name.
///
/// The names are shared: a fleet's grants repeat the same few keys and paths.
#[derive(Clone, Eq)]
pub enum Target {
    Env(Arc<str>),
    File(Arc<str>),
}

/// The order of the derived one (kind, then the name's bytes), cheaper: every answer
/// sorts its items by target, and the derived order calls `memcmp` for each pair
/// ([`same_name`] says why that is slow). Names shared by the grants
/// are equal by address; others mostly differ in their first eight bytes.
impl Ord for Target {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (kind, name) = self.parts();
        let (other_kind, other_name) = other.parts();
        kind.cmp(&other_kind).then_with(|| {
            if std::ptr::eq(name, other_name) {
                return std::cmp::Ordering::Equal;
            }
            prefix(name)
                .cmp(&prefix(other_name))
                .then_with(|| name.bytes().cmp(other_name.bytes()))
        })
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        let ((kind, name), (other_kind, other_name)) = (self.parts(), other.parts());
        kind == other_kind && (std::ptr::eq(name, other_name) || same_name(name, other_name))
    }
}

impl std::hash::Hash for Target {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

/// Whether two names are the same, compared in line: glibc's `memcmp` (its AVX-512
/// variant) stalls on its masked load for names of a few bytes on the benchmark
/// machine, and was most of an answer's time there (bench/README.md, session 8).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// A name's first eight bytes, zero-padded, as a big-endian number: when two prefixes
/// differ they order as the names do (a name that ends first is a prefix of the other).
fn prefix(name: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let head = &name.as_bytes()[..name.len().min(8)];
    bytes[..head.len()].copy_from_slice(head);
    u64::from_be_bytes(bytes)
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

/// The start of [`Target`]'s order, held by value: its kind and the first eight bytes of
/// its name. Targets with different keys compare as their keys do.
pub(crate) type OrderKey = (u8, u64);

impl Target {
    /// The kind and the first eight bytes of the name, as [`Ord`] compares them first.
    pub(crate) fn order_key(&self) -> OrderKey {
        let (kind, name) = self.parts();
        (kind, prefix(name))
    }

    /// The name the audit line records.
    pub fn name(&self) -> &str {
        self.parts().1
    }

    /// ENV before FILE, and the name.
    fn parts(&self) -> (u8, &str) {
        match self {
            Self::Env(key) => (0, key),
            Self::File(path) => (1, path),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// `as_str` and `FromStr` from one table of names, so that what is written (to a column,
/// say) and what is read back cannot disagree. A refusal never quotes the text: it may
/// be a value pasted in the wrong place.
macro_rules! spelled {
    ($enum:ident, $refusal:literal, $($variant:ident = $name:literal),+ $(,)?) => {
        impl $enum {
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }

        impl std::str::FromStr for $enum {
            type Err = String;
            fn from_str(name: &str) -> Result<Self, String> {
                match name {
                    $($name => Ok(Self::$variant),)+
                    _ => Err($refusal.to_owned()),
                }
            }
        }
    };
}

// serde's renames on `Encoding` spell the same names; a test holds them together.
spelled!(
    Encoding,
    "encoding must be \"utf-8\" or \"base64\"",
    Utf8 = "utf-8",
    Base64 = "base64"
);
spelled!(
    PermissionPolicy,
    "permissions policy must be \"AlwaysSet\" or \"KeepOrSet\"",
    AlwaysSet = "AlwaysSet",
    KeepOrSet = "KeepOrSet",
);

/// The attributes a FILE item may carry besides its data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileAttributes {
    /// Asked for in the policy; `None` means chosen from the bytes.
    pub encoding: Option<Encoding>,
    pub owner: Option<Ownership>,
    pub group: Option<Ownership>,
    pub permissions: Option<Permissions>,
}

/// One ENV or FILE item of a grant: where it lands, where its value comes from, and its
/// wire form. A pointer: the items that say the same thing are one allocation, because a
/// fleet's grants give the same secret under the same name over and over (the 100k
/// policy's 273,000 items are 110,000 distinct ones; bench/README.md, memory).
#[derive(Clone)]
pub struct Item(Arc<ItemData>);

struct ItemData {
    target: Target,
    /// Where the value comes from, for `explain`: "secret `db_password`", "inline env `X`"...
    origin: Arc<str>,
    wire: Wire,
}

/// The item exactly as it goes on the wire: whole when the value is static, else the
/// JSON around the value, which is rendered per request.
enum Wire {
    Static(WireBytes),
    Dynamic(Box<DynamicWire>),
}

#[derive(PartialEq, Eq)]
struct DynamicWire {
    prefix: WireBytes,
    template: Template,
    base64: bool,
    suffix: WireBytes,
}

/// JSON that holds a value: one allocation, wiped on drop, never printed.
#[derive(PartialEq, Eq)]
struct WireBytes(Zeroizing<Box<[u8]>>);

impl WireBytes {
    fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes.into_boxed_slice()))
    }

    fn expose(&self) -> &[u8] {
        &self.0
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("target", &self.0.target)
            .field("origin", &self.0.origin)
            .finish_non_exhaustive()
    }
}

/// Stands for the value while the JSON around a template is rendered. Only the key or
/// path precede the value in the JSON, and neither may hold control characters, so the
/// first occurrence of the marker is the value.
const MARKER: &str = "\u{1}envoi-value\u{1}";

impl Item {
    /// Renders an item. An ENV value must be UTF-8; a FILE value that is not is sent
    /// base64 unless the policy asked for UTF-8, which is then an error.
    pub fn new(target: Target, origin: Arc<str>, value: Value, attributes: FileAttributes) -> Result<Self, String> {
        let utf8 = match &value {
            Value::Static(bytes) => std::str::from_utf8(bytes.expose()).is_ok(),
            Value::Template(template) => template.is_utf8(),
        };
        let encoding = match (&target, attributes.encoding, utf8) {
            (Target::Env(_), _, true) => None,
            (Target::Env(_), _, false) => return Err(format!("{target}: the value of {origin} is not UTF-8 text")),
            (Target::File(_), Some(Encoding::Utf8), false) => {
                return Err(format!(
                    "{target}: encoding \"utf-8\" was asked for but the value of {origin} is not UTF-8 text"
                ))
            }
            (Target::File(_), None | Some(Encoding::Base64), false) => Some(Encoding::Base64),
            (Target::File(_), asked, true) => asked,
        };
        let base64 = encoding == Some(Encoding::Base64);
        let wire = match &value {
            Value::Static(bytes) => {
                let data = if base64 {
                    Zeroizing::new(STANDARD.encode(bytes.expose()))
                } else {
                    Zeroizing::new(String::from_utf8(bytes.expose().to_vec()).expect("checked UTF-8"))
                };
                Wire::Static(WireBytes::new(wire_json(&target, &data, encoding, &attributes)))
            }
            Value::Template(template) => {
                let json = wire_json(&target, MARKER, encoding, &attributes);
                let marker = serde_json::to_vec(MARKER).expect("a string serialises");
                let at = json
                    .windows(marker.len())
                    .position(|w| w == marker.as_slice())
                    .expect("marker rendered");
                Wire::Dynamic(Box::new(DynamicWire {
                    prefix: WireBytes::new(json[..at].to_vec()),
                    template: template.clone(),
                    base64,
                    suffix: WireBytes::new(json[at + marker.len()..].to_vec()),
                }))
            }
        };
        Ok(Self(Arc::new(ItemData { target, origin, wire })))
    }

    pub fn target(&self) -> &Target {
        &self.0.target
    }

    /// Where the value comes from: "secret `db_password`", "inline env `X`"...
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// Appends the item as JSON for `workload`.
    pub fn write_json(&self, workload: &Workload, out: &mut Vec<u8>) {
        match &self.0.wire {
            Wire::Static(json) => out.extend_from_slice(json.expose()),
            Wire::Dynamic(dynamic) => {
                let DynamicWire {
                    prefix,
                    template,
                    base64,
                    suffix,
                } = &**dynamic;
                let mut value = Zeroizing::new(Vec::with_capacity(64));
                template.render_into(workload, &mut value);
                out.extend_from_slice(prefix.expose());
                if *base64 {
                    out.push(b'"');
                    let at = out.len();
                    out.resize(at + value.len().div_ceil(3) * 4, 0);
                    let written = STANDARD
                        .encode_slice(value.as_slice(), &mut out[at..])
                        .expect("sized for base64");
                    out.truncate(at + written);
                    out.push(b'"');
                } else {
                    let text = std::str::from_utf8(&value).expect("templates checked UTF-8 at load");
                    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
                }
                out.extend_from_slice(suffix.expose());
            }
        }
    }

    /// Whether two items give every workload the same bytes: the same JSON, or the same
    /// JSON around the same template.
    pub fn gives_the_same(&self, other: &Item) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || match (&self.0.wire, &other.0.wire) {
                (Wire::Static(a), Wire::Static(b)) => a == b,
                (Wire::Dynamic(a), Wire::Dynamic(b)) => a == b,
                _ => false,
            }
    }

    /// The value `workload` receives, as bytes.
    pub fn value(&self, workload: &Workload) -> SecretBytes {
        let json = match &self.0.wire {
            Wire::Static(json) => json,
            Wire::Dynamic(dynamic) => {
                let mut value = Vec::new();
                dynamic.template.render_into(workload, &mut value);
                return SecretBytes::new(value);
            }
        };
        #[derive(serde::Deserialize)]
        struct Wired {
            value: Option<String>,
            data: Option<String>,
            encoding: Option<Encoding>,
        }
        let wired: Wired = serde_json::from_slice(json.expose()).expect("envoi wrote this JSON");
        let text = zeroize::Zeroizing::new(wired.value.or(wired.data).unwrap_or_default());
        match wired.encoding {
            Some(Encoding::Base64) => SecretBytes::new(STANDARD.decode(text.as_bytes()).expect("envoi encoded this")),
            _ => SecretBytes::new(text.as_bytes().to_vec()),
        }
    }

    /// An upper bound of the static part of the item's size, to size buffers.
    pub fn size_hint(&self) -> usize {
        match &self.0.wire {
            Wire::Static(json) => json.len(),
            Wire::Dynamic(dynamic) => dynamic.prefix.len() + dynamic.suffix.len() + 64,
        }
    }
}

/// The items compiled so far, each once: [`ItemSet::intern`] gives back the one already
/// held when a new item says the same (same target, origin and bytes).
#[derive(Default)]
pub struct ItemSet(hashbrown::HashSet<Interned, ahash::RandomState>);

impl ItemSet {
    pub fn intern(&mut self, item: Item) -> Item {
        self.0.get_or_insert(Interned(item)).0.clone()
    }
}

/// An item compared by what it says. Hashes the JSON around a template, not the
/// template: items that differ only there are rare and still compare unequal.
struct Interned(Item);

impl PartialEq for Interned {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        a.target() == b.target() && a.origin() == b.origin() && a.gives_the_same(b)
    }
}

impl Eq for Interned {}

impl std::hash::Hash for Interned {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let item = &*self.0 .0;
        item.target.hash(state);
        item.origin.hash(state);
        match &item.wire {
            Wire::Static(json) => json.expose().hash(state),
            Wire::Dynamic(dynamic) => {
                dynamic.prefix.expose().hash(state);
                dynamic.suffix.expose().hash(state);
            }
        }
    }
}

fn wire_json(target: &Target, data: &str, encoding: Option<Encoding>, attributes: &FileAttributes) -> Vec<u8> {
    match target {
        Target::Env(key) => serde_json::to_vec(&EnvWire {
            kind: "ENV",
            key,
            value: data,
        }),
        Target::File(path) => serde_json::to_vec(&FileWire {
            kind: "FILE",
            path,
            data,
            encoding,
            owner: attributes.owner.as_ref(),
            group: attributes.group.as_ref(),
            permissions: attributes.permissions.as_ref(),
        }),
    }
    .expect("serialising strings cannot fail")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attribute_enum_has_one_spelling_for_serde_and_for_its_column() {
        for encoding in [Encoding::Utf8, Encoding::Base64] {
            let name = encoding.as_str();
            assert_eq!(serde_json::to_value(encoding).unwrap(), name, "{encoding:?}");
            assert_eq!(serde_json::from_value::<Encoding>(name.into()).unwrap(), encoding);
            assert_eq!(name.parse::<Encoding>(), Ok(encoding));
        }
        for policy in [PermissionPolicy::AlwaysSet, PermissionPolicy::KeepOrSet] {
            let name = policy.as_str();
            assert_eq!(serde_json::to_value(policy).unwrap(), name, "{policy:?}");
            assert_eq!(name.parse::<PermissionPolicy>(), Ok(policy));
        }
        assert!("UTF-8".parse::<Encoding>().is_err());
        assert!("alwaysset".parse::<PermissionPolicy>().is_err());
    }

    #[test]
    fn targets_order_as_their_kind_then_the_bytes_of_their_name() {
        let names = [
            "",
            "A",
            "A\0",
            "A\0x",
            "AB",
            "API_KEY",
            "API_KEY_2",
            "API_KEYS",
            "SENTRY_DSN",
            "SERVICE_NAME",
            "SERVICE_NAMEX",
            "SERVICE_",
            "/etc/a",
            "/etc/a/b",
            "/etc/ab",
            "é",
            "e\u{301}",
            "\u{10FFFF}",
        ];
        let targets: Vec<(u8, &str, Target)> = names
            .iter()
            .flat_map(|n| [(0, *n, Target::Env((*n).into())), (1, *n, Target::File((*n).into()))])
            .collect();
        for (kind, name, target) in &targets {
            for (other_kind, other_name, other) in &targets {
                let want = (kind, name.as_bytes()).cmp(&(other_kind, other_name.as_bytes()));
                assert_eq!(target.cmp(other), want, "{target:?} against {other:?}");
                assert_eq!(target == other, want.is_eq(), "{target:?} against {other:?}");
            }
            // The same name in another allocation is the same target.
            assert_eq!(target, &target.clone());
            let copy = match target {
                Target::Env(n) => Target::Env(n.to_string().into()),
                Target::File(n) => Target::File(n.to_string().into()),
            };
            assert_eq!(target.cmp(&copy), std::cmp::Ordering::Equal);
            assert_eq!(target, &copy);
        }
    }
}
