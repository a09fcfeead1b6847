//! The answer's shape (SPEC §1), checked independently of envoi, and the wire format
//! written by hand.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A JSON value that keeps the order of object members, so that shapes can be checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Number(n as f64))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Number(n as f64))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
                Ok(Json::Number(n))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::String(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Json::Object(members))
            }
        }
        d.deserialize_any(V)
    }
}

impl Json {
    fn keys(&self) -> Vec<&str> {
        match self {
            Json::Object(members) => members.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Checks `body` against SPEC §1: `{"secrets":[...]}`; ENV items exactly
/// `{"type","key","value"}`; FILE items `{"type","path","data"}` then only set members
/// among `encoding`, `owner`, `group`, `permissions`, each of the allowed forms, never
/// null; ENV items by key, then FILE items by path, in byte order.
pub fn check_answer(body: &str) -> Result<(), String> {
    let top: Json = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if top.keys() != ["secrets"] {
        return Err(format!("top-level members {:?}, not [\"secrets\"]", top.keys()));
    }
    let Some(Json::Array(items)) = top.get("secrets") else {
        return Err("`secrets` is not an array".into());
    };
    let mut last: Option<(u8, String)> = None;
    for (n, item) in items.iter().enumerate() {
        let at = |why: String| format!("item {n}: {why}");
        let keys = item.keys();
        let text = |key: &str| -> Result<String, String> {
            item.get(key)
                .and_then(Json::str)
                .map(str::to_owned)
                .ok_or_else(|| at(format!("`{key}` is not a string")))
        };
        let sort_key = match item.get("type").and_then(Json::str) {
            Some("ENV") => {
                if keys != ["type", "key", "value"] {
                    return Err(at(format!("ENV members {keys:?}, not [type, key, value]")));
                }
                text("value")?;
                (0, text("key")?)
            }
            Some("FILE") => {
                if keys.len() < 3 || keys[..3] != ["type", "path", "data"] {
                    return Err(at(format!(
                        "FILE members {keys:?} do not start with [type, path, data]"
                    )));
                }
                let data = text("data")?;
                let mut seen = Vec::new();
                for key in &keys[3..] {
                    if seen.contains(key) {
                        return Err(at(format!("`{key}` twice")));
                    }
                    seen.push(key);
                    let value = item.get(key).expect("listed");
                    match *key {
                        "encoding" => match value.str() {
                            Some("utf-8") => {}
                            Some("base64") => {
                                STANDARD
                                    .decode(&data)
                                    .map_err(|e| at(format!("data is not standard base64: {e}")))?;
                            }
                            _ => return Err(at(format!("encoding {value:?}"))),
                        },
                        "owner" | "group" => check_ownership(value).map_err(|e| at(format!("{key}: {e}")))?,
                        "permissions" => check_permissions(value).map_err(|e| at(format!("permissions: {e}")))?,
                        other => return Err(at(format!("unexpected FILE member `{other}`"))),
                    }
                }
                (1, text("path")?)
            }
            other => return Err(at(format!("type {other:?}"))),
        };
        if let Some(previous) = &last {
            // Byte order: String's Ord compares bytes.
            if *previous >= sort_key {
                return Err(at(format!("{sort_key:?} does not sort after {previous:?}")));
            }
        }
        last = Some(sort_key);
    }
    Ok(())
}

fn check_ownership(value: &Json) -> Result<(), String> {
    let keys = value.keys();
    match value.get("policy").and_then(Json::str) {
        Some("AlwaysSetExplicit" | "KeepOrSetExplicit") => {
            if keys != ["policy", "value"] {
                return Err(format!("members {keys:?}, not [policy, value]"));
            }
            match value.get("value").and_then(Json::str) {
                Some(v) if !v.is_empty() => Ok(()),
                _ => Err("`value` is not a non-empty string".into()),
            }
        }
        Some("AlwaysSetInherited" | "KeepOrSetInherited") if keys == ["policy"] => Ok(()),
        _ => Err(format!("not an ownership of SPEC §1: {value:?}")),
    }
}

fn check_permissions(value: &Json) -> Result<(), String> {
    if value.keys() != ["policy", "mode"] {
        return Err(format!("members {:?}, not [policy, mode]", value.keys()));
    }
    if !matches!(value.get("policy").and_then(Json::str), Some("AlwaysSet" | "KeepOrSet")) {
        return Err(format!("policy {:?}", value.get("policy")));
    }
    match value.get("mode").and_then(Json::str) {
        Some(mode) if mode.len() == 4 && mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) => Ok(()),
        other => Err(format!("mode {other:?} is not four octal digits")),
    }
}

/// `{"type":"ENV","key":K,"value":V}` as the wire has it.
pub fn env_item(key: &str, value: &str) -> String {
    format!(
        r#"{{"type":"ENV","key":{},"value":{}}}"#,
        Value::from(key),
        Value::from(value)
    )
}

/// `{"type":"FILE","path":P,"data":D}` as the wire has it, for data sent as UTF-8 text.
pub fn file_item(path: &str, data: &str) -> String {
    format!(
        r#"{{"type":"FILE","path":{},"data":{}}}"#,
        Value::from(path),
        Value::from(data)
    )
}

/// `{"secrets":[items...]}`.
pub fn secrets_body(items: &[String]) -> String {
    format!(r#"{{"secrets":[{}]}}"#, items.join(","))
}

/// The items of `{"secrets":[...]}` as their JSON texts, re-serialised in order from an
/// order-keeping parse (so a mismatch names the item).
pub fn split_items(body: &str) -> Vec<String> {
    let inner = body
        .strip_prefix(r#"{"secrets":["#)
        .and_then(|b| b.strip_suffix("]}"))
        .unwrap_or_else(|| panic!("not {{\"secrets\":[...]}}: {body}"));
    // Items are objects; split at `},{` outside strings.
    let (mut items, mut depth, mut in_string, mut escaped, mut start) = (Vec::new(), 0, false, false, 0);
    for (i, c) in inner.char_indices() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_string = false,
            (false, _, '"') => in_string = true,
            (false, _, '{') => depth += 1,
            (false, _, '}') => {
                depth -= 1;
                if depth == 0 {
                    items.push(inner[start..=i].to_owned());
                    start = i + 2;
                }
            }
            _ => {}
        }
    }
    items
}

#[test]
fn the_shape_checker_refuses_what_the_spec_does_not_allow() {
    // The checker is part of the tests: make sure it can fail.
    let bad = [
        r#"{"secrets":[],"x":1}"#,
        r#"{"secrets":[{"type":"ENV","value":"v","key":"K"}]}"#,
        r#"{"secrets":[{"type":"FILE","path":"/a","data":"x","owner":null}]}"#,
        r#"{"secrets":[{"type":"FILE","path":"/a","data":"x","permissions":{"policy":"AlwaysSet","mode":"400"}}]}"#,
        r#"{"secrets":[{"type":"FILE","path":"/a","data":"x","owner":{"policy":"AlwaysSetInherited","value":"1"}}]}"#,
        r#"{"secrets":[{"type":"FILE","path":"/a","data":"%%%","encoding":"base64"}]}"#,
        r#"{"secrets":[{"type":"FILE","path":"/a","data":"x"},{"type":"ENV","key":"K","value":"v"}]}"#,
        r#"{"secrets":[{"type":"ENV","key":"b","value":"v"},{"type":"ENV","key":"a","value":"v"}]}"#,
        r#"{"secrets":[{"type":"ENV","key":"a","value":"v"},{"type":"ENV","key":"a","value":"v"}]}"#,
    ];
    for body in bad {
        assert!(check_answer(body).is_err(), "the checker accepts {body}");
    }
    let good = r#"{"secrets":[{"type":"ENV","key":"A","value":"1"},{"type":"ENV","key":"a","value":"2"},{"type":"FILE","path":"/a","data":"AA==","encoding":"base64","owner":{"policy":"KeepOrSetExplicit","value":"app"},"group":{"policy":"AlwaysSetInherited"},"permissions":{"policy":"KeepOrSet","mode":"0640"}}]}"#;
    check_answer(good).unwrap();
    check_answer(r#"{"secrets":[]}"#).unwrap();
}
