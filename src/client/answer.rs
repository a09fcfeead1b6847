//! The protocol's answer (SPEC §1) as a client reads it: every form the protocol allows,
//! from envoi or from any other server that speaks it, parsed once into typed items.

use base64::Engine as _;
use serde::Deserialize;

use crate::secret::SecretBytes;

/// A parsed answer. The body is kept as received so that `fetch --format json` can print
/// it byte for byte; `Debug` shows keys and paths, never a value or the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub body: SecretBytes,
    pub env: Vec<EnvItem>,
    pub files: Vec<FileItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvItem {
    pub key: String,
    pub value: SecretBytes,
}

/// A FILE item with its data decoded (`encoding: base64` is undone here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileItem {
    pub path: String,
    pub data: SecretBytes,
    pub owner: Option<Ownership>,
    pub group: Option<Ownership>,
    pub permissions: Option<Permissions>,
}

/// `owner` or `group`: the four policies of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// `AlwaysSetExplicit`: set to this name or numeric id every time.
    AlwaysSetExplicit(String),
    /// `KeepOrSetExplicit`: set on a new file, an existing file keeps its own.
    KeepOrSetExplicit(String),
    /// `AlwaysSetInherited`: the user (or group) the command runs as, every time.
    AlwaysSetInherited,
    /// `KeepOrSetInherited`: as the command's, on a new file only.
    KeepOrSetInherited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// `AlwaysSet` (true) or `KeepOrSet` (false).
    pub always: bool,
    /// The mode bits, at most 0o7777.
    pub mode: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    /// serde_json's message names a position and an expected shape, not the input.
    #[error("the answer is not the protocol's JSON: {0}")]
    Shape(String),
    #[error("FILE {path}: its data is not valid base64")]
    Base64 { path: String },
    #[error("FILE {path}: encoding `{encoding}` is neither utf-8 nor base64")]
    Encoding { path: String, encoding: String },
    #[error("FILE {path}: mode {mode} is not an octal mode such as \"0400\" or a number up to 4095")]
    Mode { path: String, mode: String },
    #[error("an item of type `{0}` is neither ENV nor FILE")]
    Type(String),
}

#[derive(Deserialize)]
struct RawAnswer {
    secrets: Vec<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(rename = "type")]
    kind: String,
    key: Option<String>,
    #[serde(default, deserialize_with = "secret")]
    value: Option<SecretBytes>,
    path: Option<String>,
    #[serde(default, deserialize_with = "secret")]
    data: Option<SecretBytes>,
    encoding: Option<String>,
    owner: Option<RawOwnership>,
    group: Option<RawOwnership>,
    permissions: Option<RawPermissions>,
}

#[derive(Deserialize)]
#[serde(tag = "policy")]
enum RawOwnership {
    AlwaysSetExplicit { value: NameOrId },
    KeepOrSetExplicit { value: NameOrId },
    AlwaysSetInherited,
    KeepOrSetInherited,
}

/// A name, or a numeric id given as a JSON number.
#[derive(Deserialize)]
#[serde(untagged)]
enum NameOrId {
    Name(String),
    Id(u32),
}

#[derive(Deserialize)]
#[serde(tag = "policy")]
enum RawPermissions {
    AlwaysSet { mode: RawMode },
    KeepOrSet { mode: RawMode },
}

/// `"0400"` (octal text) or `256` (a decimal number): the protocol allows both.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawMode {
    Octal(String),
    Number(u64),
}

/// A value straight into [`SecretBytes`], so that no plain `String` of it outlives parsing.
fn secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SecretBytes>, D::Error> {
    let text = zeroize::Zeroizing::new(String::deserialize(deserializer)?);
    Ok(Some(SecretBytes::new(text.as_bytes().to_vec())))
}

impl NameOrId {
    fn into_text(self) -> String {
        match self {
            Self::Name(name) => name,
            Self::Id(id) => id.to_string(),
        }
    }
}

impl From<RawOwnership> for Ownership {
    fn from(raw: RawOwnership) -> Self {
        match raw {
            RawOwnership::AlwaysSetExplicit { value } => Self::AlwaysSetExplicit(value.into_text()),
            RawOwnership::KeepOrSetExplicit { value } => Self::KeepOrSetExplicit(value.into_text()),
            RawOwnership::AlwaysSetInherited => Self::AlwaysSetInherited,
            RawOwnership::KeepOrSetInherited => Self::KeepOrSetInherited,
        }
    }
}

/// Parses a mode as the protocol gives it: octal digits in a string (`"0400"`, `"400"`,
/// `"0o400"`), or a decimal number (`256`).
pub fn parse_mode(raw: &RawModeView<'_>) -> Option<u32> {
    let mode = match raw {
        RawModeView::Text(text) => {
            let digits = text.strip_prefix("0o").unwrap_or(text);
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            u32::from_str_radix(digits, 8).ok()?
        }
        RawModeView::Number(number) => u32::try_from(*number).ok()?,
    };
    (mode <= 0o7777).then_some(mode)
}

/// A mode before it is checked (public for the unit tests of [`parse_mode`]).
pub enum RawModeView<'a> {
    Text(&'a str),
    Number(u64),
}

impl Answer {
    /// Parses a protocol body. Unknown fields are ignored (a newer server may add some);
    /// an unknown item type, encoding or a bad mode is refused, naming the item.
    pub fn parse(body: Vec<u8>) -> Result<Self, AnswerError> {
        let body = SecretBytes::new(body);
        let raw: RawAnswer = serde_json::from_slice(body.expose()).map_err(|e| AnswerError::Shape(shape(&e)))?;
        let mut env = Vec::new();
        let mut files = Vec::new();
        for item in raw.secrets {
            match item.kind.as_str() {
                "ENV" => {
                    let (Some(key), Some(value)) = (item.key, item.value) else {
                        return Err(AnswerError::Shape("an ENV item needs `key` and `value`".into()));
                    };
                    env.push(EnvItem { key, value });
                }
                "FILE" => files.push(file(item)?),
                other => return Err(AnswerError::Type(other.chars().take(32).collect())),
            }
        }
        Ok(Self { body, env, files })
    }
}

fn file(item: RawItem) -> Result<FileItem, AnswerError> {
    let (Some(path), Some(data)) = (item.path, item.data) else {
        return Err(AnswerError::Shape("a FILE item needs `path` and `data`".into()));
    };
    let data = match item.encoding.as_deref() {
        None | Some("utf-8") => data,
        Some("base64") => {
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            let text: Vec<u8> = data
                .expose()
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let decoded = engine
                .decode(&text)
                .map_err(|_| AnswerError::Base64 { path: path.clone() })?;
            SecretBytes::new(decoded)
        }
        Some(other) => {
            return Err(AnswerError::Encoding {
                path,
                encoding: other.chars().take(32).collect(),
            })
        }
    };
    let permissions = match item.permissions {
        None => None,
        Some(raw) => {
            let (always, mode) = match raw {
                RawPermissions::AlwaysSet { mode } => (true, mode),
                RawPermissions::KeepOrSet { mode } => (false, mode),
            };
            let (view, shown) = match &mode {
                RawMode::Octal(text) => (RawModeView::Text(text), format!("{text:?}")),
                RawMode::Number(number) => (RawModeView::Number(*number), number.to_string()),
            };
            let mode = parse_mode(&view).ok_or(AnswerError::Mode {
                path: path.clone(),
                mode: shown,
            })?;
            Some(Permissions { always, mode })
        }
    };
    Ok(FileItem {
        path,
        data,
        owner: item.owner.map(Ownership::from),
        group: item.group.map(Ownership::from),
        permissions,
    })
}

/// serde_json's message without any part of the input: its category, line and column.
fn shape(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Io => "it could not be read",
        serde_json::error::Category::Syntax => "it is not JSON",
        serde_json::error::Category::Data => "a field is missing or has the wrong type",
        serde_json::error::Category::Eof => "it ends too early",
    };
    format!("{what} (line {}, column {})", error.line(), error.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Answer, AnswerError> {
        Answer::parse(body.as_bytes().to_vec())
    }

    #[test]
    fn every_form_of_the_protocol_is_accepted() {
        let answer = parse(
            r#"{"secrets":[
            {"type":"ENV","key":"A","value":"x\"y"},
            {"type":"FILE","path":"/a","data":"plain"},
            {"type":"FILE","path":"/b","data":"/wAB","encoding":"base64",
             "owner":{"policy":"AlwaysSetExplicit","value":"app"},
             "group":{"policy":"KeepOrSetExplicit","value":1000},
             "permissions":{"policy":"AlwaysSet","mode":"0400"}},
            {"type":"FILE","path":"/c","data":"t","encoding":"utf-8",
             "owner":{"policy":"AlwaysSetInherited"},
             "group":{"policy":"KeepOrSetInherited"},
             "permissions":{"policy":"KeepOrSet","mode":256},"future":true}
        ]}"#,
        )
        .unwrap();
        assert_eq!(answer.env[0].key, "A");
        assert_eq!(answer.env[0].value.expose(), b"x\"y");
        assert_eq!(answer.files[0].data.expose(), b"plain");
        assert_eq!(answer.files[0].permissions, None);
        let b = &answer.files[1];
        assert_eq!(b.data.expose(), &[0xff, 0x00, 0x01]);
        assert_eq!(b.owner, Some(Ownership::AlwaysSetExplicit("app".into())));
        assert_eq!(b.group, Some(Ownership::KeepOrSetExplicit("1000".into())));
        assert_eq!(
            b.permissions,
            Some(Permissions {
                always: true,
                mode: 0o400
            })
        );
        let c = &answer.files[2];
        assert_eq!(c.owner, Some(Ownership::AlwaysSetInherited));
        assert_eq!(c.group, Some(Ownership::KeepOrSetInherited));
        assert_eq!(
            c.permissions,
            Some(Permissions {
                always: false,
                mode: 0o400
            })
        );
    }

    #[test]
    fn modes_are_octal_text_or_decimal_numbers_up_to_07777() {
        assert_eq!(parse_mode(&RawModeView::Text("0400")), Some(0o400));
        assert_eq!(parse_mode(&RawModeView::Text("600")), Some(0o600));
        assert_eq!(parse_mode(&RawModeView::Text("0o640")), Some(0o640));
        assert_eq!(parse_mode(&RawModeView::Number(256)), Some(0o400));
        for bad in ["", "0800", "rw", "17777", "-1"] {
            assert_eq!(parse_mode(&RawModeView::Text(bad)), None, "{bad:?}");
        }
        assert_eq!(parse_mode(&RawModeView::Number(4096)), None);
    }

    #[test]
    fn malformed_answers_are_refused_naming_the_item_but_no_value() {
        let cases = [
            (r#"{"secrets":[{"type":"SECRET","key":"A","value":"v"}]}"#, "SECRET"),
            (
                r#"{"secrets":[{"type":"FILE","path":"/p","data":"hunter2!","encoding":"base64"}]}"#,
                "/p",
            ),
            (
                r#"{"secrets":[{"type":"FILE","path":"/p","data":"d","encoding":"rot13"}]}"#,
                "rot13",
            ),
            (
                r#"{"secrets":[{"type":"FILE","path":"/p","data":"d","permissions":{"policy":"AlwaysSet","mode":"999"}}]}"#,
                "/p",
            ),
            (r#"{"secrets":[{"type":"ENV","key":"A"}]}"#, "ENV"),
            (r#"{"secrets":"hunter2"}"#, "line 1"),
            ("hunter2", "not JSON"),
        ];
        for (body, named) in cases {
            let error = parse(body).unwrap_err().to_string();
            assert!(error.contains(named), "{body}: {error}");
            assert!(!error.contains("hunter2"), "{body}: {error}");
        }
    }

    #[test]
    fn debug_never_shows_a_value() {
        let answer = parse(
            r#"{"secrets":[{"type":"ENV","key":"A","value":"hunter2"},{"type":"FILE","path":"/p","data":"hunter3"}]}"#,
        )
        .unwrap();
        let shown = format!("{answer:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("\"A\"") && shown.contains("/p"), "{shown}");
    }
}
