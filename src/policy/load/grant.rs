//! A grant compiled: its selector parsed, each ENV and FILE entry checked and turned
//! into an item with its value and attributes.

use std::sync::Arc;

use super::super::item::{FileAttributes, Item, Target};
use super::super::model::{EnvSpec, GrantSpec, SourceSpec};
use super::super::selector::{Pattern, Selector};
use super::super::value::Value;
use super::super::{Grant, Location};
use super::compile::Compiler;
use super::sources_given;

impl Compiler<'_> {
    pub(super) fn grant(&mut self, source: usize, location: Location, raw: GrantSpec) -> Option<Grant> {
        let what = match &raw.name {
            Some(name) => format!("grant `{name}` ({location})"),
            None => format!("grant at {location}"),
        };
        let before = self.problems.len();

        let mut pattern = |field: &str, text: Option<&str>| {
            Pattern::parse(text).unwrap_or_else(|e| {
                self.problems.push(format!("{what}: {field}: {e}"));
                Pattern::Any
            })
        };
        let (project, kind, id) = (
            pattern("project", raw.project.as_deref()),
            pattern("type", raw.kind.as_deref()),
            pattern("id", raw.id.as_deref()),
        );
        // Ids are the workloads' own; projects and types repeat.
        let selector = Selector {
            project: project.share(|text| self.shared(text)),
            kind: kind.share(|text| self.shared(text)),
            id,
        };
        let selector_ok = self.problems.len() == before;

        let mut items: Vec<Item> = Vec::with_capacity(raw.env.len() + raw.files.len());
        for (key, value) in raw.env {
            if !valid_env_key(&key) {
                self.problems.push(format!(
                    "{what}: ENV key `{key}` is not a variable name (letters, digits and `_`, not starting with a digit)"
                ));
                continue;
            }
            let (origin, value) = match value {
                EnvSpec::Secret(name) => (
                    self.secret_origin(&name),
                    self.named_secret(&format!("{what}: ENV {key}"), &name, &mut Vec::new()),
                ),
                EnvSpec::Inline(raw) => (
                    self.shared(&inline_origin(&raw)),
                    self.read_source(source, &format!("{what}: ENV {key}"), &key, &raw, &mut Vec::new()),
                ),
            };
            if let Some(value) = value {
                let target = Target::Env(self.shared(&key));
                self.push_item(&what, &mut items, target, origin, value, FileAttributes::default());
            }
        }
        for file in raw.files {
            if let Err(why) = valid_file_path(&file.path) {
                self.problems.push(format!("{what}: FILE path `{}` {why}", file.path));
                continue;
            }
            let target = Target::File(self.shared(&file.path));
            let attributes = self.file_attributes(&what, &target, &file);
            let inline = SourceSpec {
                value: file.value,
                env: file.env,
                file: file.file,
                sealed: file.sealed,
                template: file.template,
            };
            let has_inline = sources_given(&inline) > 0;
            let (origin, value) = match (file.secret, has_inline) {
                (Some(name), false) => (
                    self.secret_origin(&name),
                    self.named_secret(&format!("{what}: {target}"), &name, &mut Vec::new()),
                ),
                (None, true) => (
                    self.shared(&inline_origin(&inline)),
                    self.read_source(
                        source,
                        &format!("{what}: {target}"),
                        &file.path,
                        &inline,
                        &mut Vec::new(),
                    ),
                ),
                (Some(_), true) => {
                    self.problems.push(format!(
                        "{what}: {target}: give either `secret` or one inline source, not both"
                    ));
                    continue;
                }
                (None, false) => {
                    self.problems.push(format!(
                        "{what}: {target}: give `secret` or one of `value`, `env`, `file`, `sealed`, `template`"
                    ));
                    continue;
                }
            };
            if let (Some(value), Some(attributes)) = (value, attributes) {
                self.push_item(&what, &mut items, target, origin, value, attributes);
            }
        }
        // A grant with other problems is kept with the items that did compile: the
        // policy fails to load anyway, and its conflicts are reported in the same run.
        // With a selector that did not parse, a conflict would be a guess.
        if !selector_ok {
            return None;
        }
        items.sort_by(|a, b| a.target().cmp(b.target()));
        let specificity = selector.specificity();
        Some(Grant {
            name: raw.name.map(String::into_boxed_str),
            location,
            selector,
            specificity,
            items: items.into_boxed_slice(),
        })
    }

    pub(super) fn push_item(
        &mut self,
        what: &str,
        items: &mut Vec<Item>,
        target: Target,
        origin: Arc<str>,
        value: Value,
        attributes: FileAttributes,
    ) {
        if items.iter().any(|i| *i.target() == target) {
            self.problems.push(format!("{what}: {target} is given twice"));
            return;
        }
        match Item::new(target, origin, value, attributes) {
            Ok(item) => items.push(self.items.intern(item)),
            Err(problem) => self.problems.push(format!("{what}: {problem}")),
        }
    }
}

pub(super) fn valid_env_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(super) fn valid_file_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must be absolute");
    }
    if path.ends_with('/') {
        return Err("must name a file, not a folder");
    }
    if path.chars().any(char::is_control) {
        return Err("may not contain control characters");
    }
    if path.split('/').any(|part| part == ".." || part == ".") {
        return Err("may not contain `.` or `..` parts");
    }
    Ok(())
}

pub(super) fn inline_origin(raw: &SourceSpec) -> String {
    if let Some(var) = &raw.env {
        format!("env `{var}`")
    } else if let Some(file) = &raw.file {
        format!("file `{file}`")
    } else if raw.sealed.is_some() {
        "inline sealed value".into()
    } else if raw.template.is_some() {
        "inline template".into()
    } else {
        "inline value".into()
    }
}
