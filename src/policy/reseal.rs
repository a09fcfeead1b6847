//! `envoi reseal`: every sealed value of a policy file sealed again under the newest
//! master key. toml_edit finds where each sealed string stands; only those bytes change,
//! so comments, order, quoting and line endings stay exactly as they were.

use toml_edit::{ImDocument, Item, TableLike, Value as TomlValue};

use crate::seal::Keyring;

/// What a reseal of one file did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Values sealed again under the newest key.
    pub changed: usize,
    /// Values already under the newest key.
    pub current: usize,
}

/// Reseals the sealed values of one policy file's text. Either every value opens and the
/// new text is returned, or nothing changes and every problem is named.
pub fn reseal_text(file: &str, text: &str, keyring: &Keyring) -> Result<(String, Resealed), Vec<String>> {
    let doc = ImDocument::parse(text).map_err(|e| vec![format!("{file}: {}", e.message())])?;
    let newest = keyring
        .newest_id()
        .ok_or_else(|| vec![crate::seal::SealError::NoKey.to_string()])?
        .to_owned();
    let mut found = Vec::new();

    if let Some(secrets) = doc.get("secrets").and_then(Item::as_table_like) {
        for (name, secret) in secrets.iter() {
            if let Some(secret) = secret.as_table_like() {
                collect(secret, name, &format!("secret `{name}`"), &mut found);
            }
        }
    }
    if let Some(grants) = doc.get("grants") {
        for (n, grant) in tables(grants).into_iter().enumerate() {
            let what = format!("grant #{}", n + 1);
            if let Some(env) = grant.get("env").and_then(Item::as_table_like) {
                for (key, entry) in env.iter() {
                    if let Some(entry) = entry.as_table_like() {
                        collect(entry, key, &format!("{what} ENV {key}"), &mut found);
                    }
                }
            }
            if let Some(files) = grant.get("files") {
                for entry in tables(files) {
                    if let Some(path) = entry.get("path").and_then(Item::as_str) {
                        collect(entry, path, &format!("{what} FILE {path}"), &mut found);
                    }
                }
            }
        }
    }

    let mut done = Resealed::default();
    let mut problems = Vec::new();
    let mut edits = Vec::new();
    for sealed in found {
        match Keyring::key_id(&sealed.value) {
            Ok(id) if id == newest => {
                done.current += 1;
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                problems.push(format!("{file}: {}: {e}", sealed.what));
                continue;
            }
        }
        match keyring
            .open(&sealed.name, &sealed.value)
            .and_then(|plain| keyring.seal(&sealed.name, plain.expose()))
        {
            Ok(new) => {
                edits.push((sealed.span, new));
                done.changed += 1;
            }
            Err(e) => problems.push(format!("{file}: {}: {e}", sealed.what)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // The span covers the quoted string; keep its quotes, replace what is between them.
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = text.to_owned();
    for (span, new) in edits {
        let quote = &text[span.start..span.start + 1];
        out.replace_range(span, &format!("{quote}{new}{quote}"));
    }
    Ok((out, done))
}

struct Sealed {
    /// The name it is sealed for: the secret's name, the ENV key or the FILE path.
    name: String,
    what: String,
    value: String,
    span: std::ops::Range<usize>,
}

fn collect(table: &dyn TableLike, name: &str, what: &str, found: &mut Vec<Sealed>) {
    let Some(TomlValue::String(sealed)) = table.get("sealed").and_then(Item::as_value) else {
        return;
    };
    let Some(span) = sealed.span() else { return };
    found.push(Sealed {
        name: name.to_owned(),
        what: what.to_owned(),
        value: sealed.value().clone(),
        span,
    });
}

/// The tables of an array of tables or of an array of inline tables.
fn tables(item: &Item) -> Vec<&dyn TableLike> {
    match item {
        Item::ArrayOfTables(array) => array.iter().map(|t| t as &dyn TableLike).collect(),
        Item::Value(TomlValue::Array(array)) => array
            .iter()
            .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
            .collect(),
        _ => Vec::new(),
    }
}
