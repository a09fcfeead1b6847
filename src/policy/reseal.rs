//! `envoi reseal`: every sealed value of a policy file sealed again under the newest
//! master key, everything else of the file (comments, order, layout) left as it was.

use toml_edit::{DocumentMut, Item, TableLike, Value as TomlValue};

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
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| vec![format!("{file}: {}", e.message())])?;
    let newest = keyring
        .newest_id()
        .ok_or_else(|| vec![crate::seal::SealError::NoKey.to_string()])?
        .to_owned();
    let mut work = Work {
        keyring,
        newest,
        file,
        problems: Vec::new(),
        done: Resealed::default(),
    };

    if let Some(secrets) = doc.get_mut("secrets").and_then(Item::as_table_like_mut) {
        for (name, secret) in secrets.iter_mut() {
            if let Some(secret) = secret.as_table_like_mut() {
                work.reseal_in(secret, &name, &format!("secret `{name}`"));
            }
        }
    }
    if let Some(grants) = doc.get_mut("grants") {
        for (n, grant) in tables_mut(grants).into_iter().enumerate() {
            let what = format!("grant #{}", n + 1);
            if let Some(env) = grant.get_mut("env").and_then(Item::as_table_like_mut) {
                for (key, entry) in env.iter_mut() {
                    if let Some(entry) = entry.as_table_like_mut() {
                        work.reseal_in(entry, &key, &format!("{what} ENV {key}"));
                    }
                }
            }
            if let Some(files) = grant.get_mut("files") {
                for file in tables_mut(files) {
                    let Some(path) = file.get("path").and_then(Item::as_str).map(str::to_owned) else {
                        continue;
                    };
                    work.reseal_in(file, &path, &format!("{what} FILE {path}"));
                }
            }
        }
    }
    if work.problems.is_empty() {
        Ok((doc.to_string(), work.done))
    } else {
        Err(work.problems)
    }
}

/// The tables of an array of tables or of an array of inline tables.
fn tables_mut(item: &mut Item) -> Vec<&mut dyn TableLike> {
    match item {
        Item::ArrayOfTables(array) => array.iter_mut().map(|t| t as &mut dyn TableLike).collect(),
        Item::Value(TomlValue::Array(array)) => array
            .iter_mut()
            .filter_map(|v| v.as_inline_table_mut().map(|t| t as &mut dyn TableLike))
            .collect(),
        _ => Vec::new(),
    }
}

struct Work<'a> {
    keyring: &'a Keyring,
    newest: String,
    file: &'a str,
    problems: Vec<String>,
    done: Resealed,
}

impl Work<'_> {
    fn reseal_in(&mut self, table: &mut dyn TableLike, name: &str, what: &str) {
        let Some(item) = table.get_mut("sealed") else { return };
        let Some(TomlValue::String(sealed)) = item.as_value_mut() else {
            return;
        };
        let old = sealed.value().clone();
        match Keyring::key_id(&old) {
            Ok(id) if id == self.newest => {
                self.done.current += 1;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                self.problems.push(format!("{}: {what}: {e}", self.file));
                return;
            }
        }
        let result = self
            .keyring
            .open(name, &old)
            .and_then(|plain| self.keyring.seal(name, plain.expose()));
        match result {
            Ok(new) => {
                let decor = sealed.decor().clone();
                let mut replacement = toml_edit::Formatted::new(new);
                *replacement.decor_mut() = decor;
                *sealed = replacement;
                self.done.changed += 1;
            }
            Err(e) => self.problems.push(format!("{}: {what}: {e}", self.file)),
        }
    }
}
