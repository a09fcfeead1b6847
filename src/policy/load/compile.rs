//! The compiler: secrets resolved once (templates spliced, sealed values opened, files
//! read), grants checked and turned into items, every problem recorded.

use std::path::PathBuf;
use std::sync::Arc;

use ahash::{HashMap, HashMapExt as _};

use super::super::files::{Contents, Fingerprint};
use super::super::index::order_of;
use super::super::item::ItemSet;
use super::super::model::{EnvSpec, GrantSpec, PolicyDoc, SourceSpec};
use super::super::template::{self, Part, RawPart, Template};
use super::super::value::Value;
use super::super::{Grant, Policy};
use super::conflicts::find_conflicts;
use super::incremental::Reusable;
use super::source::{seen_of, Source};
use super::{no_grants, one_source, read_plain_seen, PolicyError, MAX_TEMPLATE_DEPTH, MAX_VALUE_BYTES};
use crate::seal::Keyring;
use crate::secret::SecretBytes;

/// A named secret as written, until it is resolved.
pub(super) struct Definition {
    pub(super) source: usize,
    pub(super) location: String,
    pub(super) raw: SourceSpec,
}

pub(super) struct Compiler<'a> {
    pub(super) sources: &'a [Source],
    pub(super) keyring: &'a Keyring,
    pub(super) problems: Vec<String>,
    pub(super) definitions: HashMap<String, Definition>,
    /// Where each secret was first defined, kept after its definition is resolved.
    pub(super) defined: HashMap<String, String>,
    /// Secrets resolved so far; `None` for one whose problem is already recorded.
    pub(super) resolved: HashMap<String, Option<Value>>,
    /// Every file read, policy files included: what a reload must watch.
    pub(super) inputs: Vec<PathBuf>,
    /// How each file read looked: what a reload compares to tell a change it missed.
    pub(super) seen: Vec<(PathBuf, Fingerprint)>,
    /// What each file read held: what a reload compares to tell that nothing changed.
    pub(super) contents: Contents,
    /// What loads but is likely a mistake; never a value.
    pub(super) warnings: Vec<String>,
    /// The texts items repeat (ENV keys, FILE paths, origins: "secret `NAME`"), once
    /// each: 100,000 grants name far fewer than they have items.
    pub(super) shared: ahash::HashSet<Arc<str>>,
    /// The items compiled so far, each once: most of a fleet's items repeat another's.
    pub(super) items: ItemSet,
}

/// Compiles documents as they come. A grant whose secrets are all defined already is
/// compiled at once and its document dropped, so that a policy folder of many files
/// never holds every parsed file at the same time; the others wait for the last file.
pub(super) fn compile_docs(
    sources: &[Source],
    docs: impl Iterator<Item = Result<(usize, PolicyDoc), Vec<String>>>,
    keyring: &Keyring,
    require_grants: bool,
) -> Result<Policy, PolicyError> {
    let mut compiler = Compiler::new(sources, keyring);
    // Which files define secrets: a reload may compile again only files that do not.
    let mut defines_secrets = vec![false; sources.len()];
    let mut syntax = Vec::new();
    let mut waiting = Vec::new();
    let mut grants: Vec<(u64, Grant)> = Vec::new();
    let mut position = 0;
    for doc in docs {
        let (index, raw) = match doc {
            Ok(parsed) => parsed,
            Err(problems) => {
                syntax.extend(problems);
                continue;
            }
        };
        let source = &sources[index];
        defines_secrets[index] = !raw.secrets.is_empty();
        for (name, spanned) in raw.secrets {
            let location = source.location(spanned.span().start);
            if !valid_secret_name(&name) {
                compiler.problems.push(format!(
                    "{location}: secret name `{name}` may only use letters, digits, `_`, `-` and `.`"
                ));
            }
            if let Some(first) = compiler.defined.get(&name) {
                compiler
                    .problems
                    .push(format!("{location}: secret `{name}` is already defined at {first}"));
                continue;
            }
            compiler.defined.insert(name.clone(), location.clone());
            compiler.definitions.insert(
                name,
                Definition {
                    source: index,
                    location,
                    raw: spanned.into_inner(),
                },
            );
        }
        for (in_file, spanned) in raw.grants.into_iter().enumerate() {
            position += 1;
            let order = order_of(index, in_file);
            let location = source.place(spanned.span().start);
            let grant = spanned.into_inner();
            if !syntax.is_empty() || !compiler.ready_for(&grant) {
                waiting.push((order, index, location, grant));
            } else if let Some(grant) = compiler.grant(index, location, grant) {
                grants.push((order, grant));
            }
        }
        source.release();
    }
    if !syntax.is_empty() {
        return Err(PolicyError::new(syntax));
    }
    if require_grants && position == 0 {
        compiler.problems.push(no_grants(sources));
    }
    let mut names: Vec<String> = compiler.defined.keys().cloned().collect();
    names.sort();
    for name in &names {
        compiler.resolve_secret(name, &mut Vec::new());
    }
    for (order, index, location, grant) in waiting {
        if let Some(grant) = compiler.grant(index, location, grant) {
            grants.push((order, grant));
        }
    }
    // Policy order, whatever order the grants were compiled in.
    grants.sort_by_key(|(order, _)| *order);
    let grants: Vec<(u64, Arc<Grant>)> = grants
        .into_iter()
        .map(|(order, grant)| (order, Arc::new(grant)))
        .collect();
    let all: Vec<&Grant> = grants.iter().map(|(_, grant)| &**grant).collect();
    compiler.problems.extend(find_conflicts(&all));
    drop(all);
    if compiler.problems.is_empty() {
        compiler.warnings.sort();
        compiler.warnings.dedup();
        // Kept for a reload of files, which may then compile only those that changed.
        let reusable = sources.iter().all(|s| s.digest.is_some()).then(|| {
            Arc::new(Reusable {
                defined: std::mem::take(&mut compiler.defined),
                resolved: std::mem::take(&mut compiler.resolved),
                defines_secrets,
            })
        });
        Ok(Policy::new(grants, names.len(), compiler.inputs, compiler.seen)
            .with_contents(compiler.contents)
            .with_reusable(reusable)
            .with_warnings(compiler.warnings))
    } else {
        Err(PolicyError {
            problems: compiler.problems,
            inputs: compiler.inputs,
        })
    }
}

pub(super) fn valid_secret_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

impl<'a> Compiler<'a> {
    pub(super) fn new(sources: &'a [Source], keyring: &'a Keyring) -> Self {
        Self {
            sources,
            keyring,
            problems: Vec::new(),
            definitions: HashMap::new(),
            defined: HashMap::new(),
            resolved: HashMap::new(),
            inputs: sources.iter().filter_map(|s| s.path.clone()).collect(),
            seen: seen_of(sources),
            contents: Contents {
                policy_files: sources.iter().filter_map(|s| s.path.clone().zip(s.digest)).collect(),
                value_files: Vec::new(),
            },
            shared: Default::default(),
            items: ItemSet::default(),
            warnings: Vec::new(),
        }
    }
}

impl Compiler<'_> {
    /// Whether every secret `grant` names (directly or through templates) is defined yet.
    /// A walk with a seen-set and a stack of its own: linear in the secrets, whatever the
    /// shape of the templates (a deep chain, a doubling one).
    pub(super) fn ready_for(&self, grant: &GrantSpec) -> bool {
        let mut pending: Vec<String> = Vec::new();
        let push_template = |pending: &mut Vec<String>, template: &str| {
            if let Ok(parts) = template::parse(template) {
                pending.extend(parts.into_iter().filter_map(|part| match part {
                    RawPart::Secret(name) => Some(name),
                    _ => None,
                }));
            }
        };
        for (_, entry) in &grant.env {
            match entry {
                EnvSpec::Secret(name) => pending.push(name.clone()),
                EnvSpec::Inline(spec) => {
                    if let Some(template) = &spec.template {
                        push_template(&mut pending, template);
                    }
                }
            }
        }
        for file in &grant.files {
            match (&file.secret, &file.template) {
                (Some(name), _) => pending.push(name.clone()),
                (None, Some(template)) => push_template(&mut pending, template),
                (None, None) => {}
            }
        }
        let mut seen = ahash::HashSet::default();
        while let Some(name) = pending.pop() {
            if self.resolved.contains_key(&name) || !seen.insert(name.clone()) {
                continue;
            }
            match self.definitions.get(&name) {
                None => return false,
                Some(definition) => {
                    if let Some(template) = &definition.raw.template {
                        push_template(&mut pending, template);
                    }
                }
            }
        }
        true
    }

    /// `text`, shared with every other item that says the same.
    pub(super) fn shared(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.shared.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.shared.insert(shared.clone());
        shared
    }

    pub(super) fn secret_origin(&mut self, name: &str) -> Arc<str> {
        self.shared(&format!("secret `{name}`"))
    }

    /// Resolves a named secret (and, for a template, those it names), once.
    pub(super) fn resolve_secret(&mut self, name: &str, stack: &mut Vec<String>) -> Option<Value> {
        if let Some(done) = self.resolved.get(name) {
            return done.clone();
        }
        let Some(definition) = self.definitions.remove(name) else {
            // Only a secret being resolved further up the stack is missing from both maps.
            let mut cycle = stack.clone();
            cycle.push(name.to_owned());
            let first = stack.iter().position(|s| s == name).unwrap_or(0);
            self.problems.push(format!(
                "secret `{name}`: template refers back to itself: {}",
                cycle[first..].join(" → ")
            ));
            return None;
        };
        let what = format!("secret `{name}` ({})", definition.location);
        if stack.len() >= MAX_TEMPLATE_DEPTH {
            // Resolution recurses once per level: a bound keeps a hostile chain from
            // overflowing the stack of the thread that loads (and serves).
            self.problems.push(format!(
                "{what}: templates nest more than {MAX_TEMPLATE_DEPTH} levels deep"
            ));
            self.resolved.insert(name.to_owned(), None);
            return None;
        }
        stack.push(name.to_owned());
        let value = self.read_source(definition.source, &what, name, &definition.raw, stack);
        stack.pop();
        self.resolved.insert(name.to_owned(), value.clone());
        value
    }

    /// A secret named by a grant or a template, which must be defined.
    pub(super) fn named_secret(&mut self, what: &str, name: &str, stack: &mut Vec<String>) -> Option<Value> {
        if !self.resolved.contains_key(name) && !self.definitions.contains_key(name) && !stack.iter().any(|s| s == name)
        {
            self.problems
                .push(format!("{what}: names secret `{name}`, which is not defined"));
            return None;
        }
        self.resolve_secret(name, stack)
    }

    /// Reads the value that `raw` describes, or records why it cannot. `name` is the
    /// associated data a sealed value was sealed for: the secret's name, or for an
    /// inline value the ENV key or FILE path.
    pub(super) fn read_source(
        &mut self,
        source: usize,
        what: &str,
        name: &str,
        raw: &SourceSpec,
        stack: &mut Vec<String>,
    ) -> Option<Value> {
        if let Err(problem) = one_source(raw) {
            self.problems.push(format!("{what}: {problem}"));
            return None;
        }
        if let Some(file) = &raw.file {
            self.inputs.push(self.sources[source].resolve(file));
        }
        match read_plain_seen(raw, self.sources[source].base.as_deref()) {
            Ok(Some((bytes, read))) => {
                if let (Some((fingerprint, digest)), Some(file)) = (read, &raw.file) {
                    let path = self.sources[source].resolve(file);
                    self.contents.value_files.push((path.clone(), digest));
                    self.seen.push((path, fingerprint));
                }
                return Some(Value::Static(bytes));
            }
            Ok(None) => {}
            Err(problem) => {
                self.problems.push(format!("{what}: {problem}"));
                return None;
            }
        }
        if let Some(sealed) = &raw.sealed {
            return match self.keyring.open(name, sealed) {
                Ok(bytes) if bytes.len() > MAX_VALUE_BYTES => {
                    self.problems.push(format!(
                        "{what}: the sealed value opens to more than {MAX_VALUE_BYTES} bytes"
                    ));
                    None
                }
                Ok(bytes) => Some(Value::Static(bytes)),
                Err(e) => {
                    self.problems.push(format!("{what}: sealed value: {e}"));
                    None
                }
            };
        }
        let text = raw.template.as_deref().expect("one source is given");
        let parts = match template::parse(text) {
            Ok(parts) => parts,
            Err(e) => {
                self.problems.push(format!("{what}: template: {e}"));
                return None;
            }
        };
        let mut spliced = Vec::with_capacity(parts.len());
        let mut complete = true;
        for part in parts {
            match part {
                RawPart::Text(text) => spliced.push(Part::Text(SecretBytes::new(text.into_bytes()))),
                RawPart::Claim(claim) => spliced.push(Part::Claim(claim)),
                RawPart::Secret(secret) => match self.named_secret(&format!("{what}: template"), &secret, stack) {
                    Some(Value::Static(bytes)) => {
                        if bytes.expose().last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            self.warnings.push(format!(
                                "{what}: the template splices secret `{secret}`, whose value ends with a newline, and keeps it (a file written by `echo`? write it with `printf %s`)"
                            ));
                        }
                        spliced.push(Part::Text(bytes))
                    }
                    Some(Value::Template(inner)) => spliced.extend(inner.parts().iter().cloned()),
                    None => complete = false,
                },
            }
        }
        let size: usize = spliced
            .iter()
            .map(|p| if let Part::Text(t) = p { t.len() } else { 0 })
            .sum();
        if complete && size > MAX_VALUE_BYTES {
            self.problems.push(format!(
                "{what}: the template renders to more than {MAX_VALUE_BYTES} bytes"
            ));
            return None;
        }
        complete.then(|| match Template::new(spliced) {
            Ok(template) => Value::Template(template),
            Err(text) => Value::Static(text),
        })
    }
}

#[cfg(unix)]
pub(super) fn os_bytes(value: std::ffi::OsString) -> Vec<u8> {
    std::os::unix::ffi::OsStringExt::into_vec(value)
}

#[cfg(not(unix))]
pub(super) fn os_bytes(value: std::ffi::OsString) -> Vec<u8> {
    value.to_string_lossy().into_owned().into_bytes()
}
